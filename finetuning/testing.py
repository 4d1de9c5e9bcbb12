"""Tiny, offline models for tests and CPU benchmarks.

``make_tiny_llama`` writes a random-weight Llama and a byte-level BPE tokenizer trained
in-process (with a chat template) to a folder that ``AutoModelForCausalLM`` and
``AutoTokenizer`` load like any Hub checkpoint. Nothing is downloaded; the same seed gives
the same weights and vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Chat markers double as special tokens; ``<|end|>`` ends every turn and is the EOS token,
# so training on the end of an assistant turn teaches the model to stop.
SPECIAL_TOKENS = ("<pad>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_BASE_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: what is 12 plus 30? Answer: 42.",
    "Classify the document: invoice, letter, memo, form, email, resume, report.",
    "User asks a question and the assistant answers briefly and correctly.",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    '{"owner": "Jane Doe", "share": "50%"} [1, 2, 3] (a, b) - _ / \\ : ; ! ?',
]


def train_tiny_tokenizer(texts: Iterable[str] = (), vocab_size: int = 512):
    """A byte-level BPE tokenizer (any text encodes, nothing maps to unknown)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*_BASE_CORPUS, *texts]
    tokenizer.train_from_iterator(corpus * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_llama(
    path: str | Path,
    *,
    texts: Iterable[str] = (),
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    max_position_embeddings: int = 1024,
    seed: int = 0,
) -> Path:
    """Write a random-config Llama plus tokenizer to ``path`` and return it.

    ``texts`` are added to the tokenizer's training corpus so that a test's own data
    tokenizes compactly. Takes about a second on a laptop CPU.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path

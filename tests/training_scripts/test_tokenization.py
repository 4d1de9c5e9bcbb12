"""Loss masking: context is -100, assistant output and its end-of-turn token are trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_scripts.data import Conversation, DataError
from training_scripts.packing import PaddedCollator
from training_scripts.tokenization import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    ConversationTokenizer,
    conversation_segments,
    ensure_chat_template,
)


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def conversation(*turns: tuple[str, str], plain: tuple[str, str] | None = None) -> Conversation:
    return Conversation(
        source="test.jsonl line 1",
        messages=tuple({"role": r, "content": c} for r, c in turns),
        plain=plain,
    )


def trained_text(tokenizer, example) -> str:
    ids = [i for i, label in zip(example.input_ids, example.labels, strict=True) if label != -100]
    return tokenizer.decode(ids)


def test_only_the_assistant_turn_and_its_end_token_are_trained(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    chat = conversation(("user", "Say yes."), ("assistant", "The answer is yes."))
    (example,), report = ConversationTokenizer(tokenizer, max_seq_length=256)([chat])
    rendered = tokenizer.apply_chat_template(list(chat.messages), tokenize=False)
    assert tokenizer.decode(example.input_ids) == rendered.rstrip("\n") + "\n"
    assert trained_text(tokenizer, example) == "The answer is yes.<|end|>"
    # Every label is either -100 or the token at that position.
    for token, label in zip(example.input_ids, example.labels, strict=True):
        assert label in (IGNORE_INDEX, token)
    assert report.trainable_tokens == sum(label != IGNORE_INDEX for label in example.labels)
    assert report.examples == 1 and report.dropped_no_trainable_tokens == 0


def test_eos_stays_trained_when_pad_is_eos(tiny_model_pad_is_eos: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_pad_is_eos)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    short = conversation(("user", "Say no."), ("assistant", "no"))
    long = conversation(("user", "What colour is the sky?"), ("assistant", "The sky is blue."))
    examples, _ = ConversationTokenizer(tokenizer, max_seq_length=256)([short, long])
    batch = PaddedCollator(tokenizer.pad_token_id)(examples)
    eos = tokenizer.eos_token_id
    for row, example in enumerate(examples):
        n = len(example)
        labels = batch["labels"][row]
        ids = batch["input_ids"][row]
        # The end-of-turn EOS inside the example is a label...
        eos_positions = [i for i in range(n) if int(ids[i]) == eos]
        assert any(int(labels[i]) == eos for i in eos_positions)
        # ...while the padding after it, the same id, is not.
        assert all(int(label) == IGNORE_INDEX for label in labels[n:])
        assert all(int(token) == eos for token in ids[n:])
        assert batch["attention_mask"][row].sum() == n


def test_every_assistant_turn_of_a_multi_turn_conversation_is_trained(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    chat = conversation(
        ("system", "Be brief."),
        ("user", "Say yes."),
        ("assistant", "yes"),
        ("user", "Say no."),
        ("assistant", "no"),
        ("user", "Thanks"),  # nothing to learn after the last assistant turn
    )
    segments = conversation_segments(chat, tokenizer, ("<|end|>",))
    assert [(text, trained) for text, trained in segments if trained] == [
        ("yes<|end|>", True),
        ("no<|end|>", True),
    ]
    full = tokenizer.apply_chat_template(list(chat.messages[:-1]), tokenize=False)
    assert "".join(text for text, _ in segments) == full
    (example,), _ = ConversationTokenizer(tokenizer, max_seq_length=256)([chat])
    assert trained_text(tokenizer, example) == "yes<|end|>no<|end|>"
    assert "Thanks" not in tokenizer.decode(example.input_ids)


def test_prompt_completion_trains_as_plain_text_with_eos(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    record = conversation(
        ("user", "Q: what is 2 plus 2?\nA:"),
        ("assistant", " 4"),
        plain=("Q: what is 2 plus 2?\nA:", " 4"),
    )
    (example,), _ = ConversationTokenizer(tokenizer, max_seq_length=256)([record])
    assert tokenizer.decode(example.input_ids) == "Q: what is 2 plus 2?\nA: 4<|end|>"
    assert trained_text(tokenizer, example) == " 4<|end|>"
    (templated,), _ = ConversationTokenizer(
        tokenizer, max_seq_length=256, prompt_completion_chat_template=True
    )([record])
    assert tokenizer.decode(templated.input_ids).startswith("<s><|user|>\nQ: what is 2 plus 2?")


def test_completion_only_loss_off_trains_every_token_but_the_first(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    chat = conversation(("user", "Say yes."), ("assistant", "yes"))
    (example,), _ = ConversationTokenizer(
        tokenizer, max_seq_length=256, completion_only_loss=False
    )([chat])
    assert example.labels[0] == IGNORE_INDEX
    assert example.labels[1:] == example.input_ids[1:]


def test_examples_left_without_trainable_tokens_are_dropped_and_counted(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    long_prompt = conversation(("user", "What colour is grass? " * 20), ("assistant", "green"))
    fits = conversation(("user", "Say yes."), ("assistant", "yes"))
    examples, report = ConversationTokenizer(tokenizer, max_seq_length=24)([long_prompt, fits])
    assert len(examples) == 1
    assert report.records == 2 and report.examples == 1
    assert report.truncated == 1
    assert report.dropped_no_trainable_tokens == 1
    assert report.dropped_examples == ["test.jsonl line 1"]
    assert all(len(e) <= 24 for e in examples)


def test_fallback_template_for_a_tokenizer_without_one(tiny_model_no_template: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_no_template)
    assert not tokenizer.chat_template
    assert ensure_chat_template(tokenizer) is True
    assert tokenizer.chat_template == FALLBACK_CHAT_TEMPLATE
    assert ensure_chat_template(tokenizer) is False
    chat = conversation(("system", "Be brief."), ("user", "Say yes."), ("assistant", "yes"))
    (example,), _ = ConversationTokenizer(tokenizer, max_seq_length=256)([chat])
    assert tokenizer.decode(example.input_ids) == (
        "<s>Be brief.\n\n### User:\nSay yes.\n\n### Assistant:\nyes<|end|>\n\n"
    )
    assert trained_text(tokenizer, example) == "yes<|end|>"


def test_a_template_that_rewrites_earlier_turns_is_reported(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    # Shows only the last assistant message in full, as reasoning templates do with thoughts.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[a]"
        "{% else %}<{{ m['role'] }}>{{ m['content'] }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    chat = conversation(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))
    with pytest.raises(DataError, match=r"test\.jsonl line 1: the chat template renders earlier"):
        ConversationTokenizer(tokenizer, max_seq_length=256)([chat])


def test_a_template_error_names_the_record(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(tiny_model)
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
        "{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    chat = conversation(("system", "x"), ("user", "a"), ("assistant", "b"))
    with pytest.raises(DataError, match=r"test\.jsonl line 1: the chat template rejected"):
        ConversationTokenizer(tokenizer, max_seq_length=256)([chat])


def test_plain_text_gets_the_bos_the_tokenizer_adds_once(tiny_model: Path) -> None:
    from tokenizers.processors import TemplateProcessing

    tokenizer = load_tokenizer(tiny_model)
    bos = tokenizer.bos_token_id
    # Make it behave like Llama 3's tokenizer, which prepends BOS to plain text.
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    assert tokenizer("x")["input_ids"][0] == bos
    record = conversation(("user", "2 plus 2 is"), ("assistant", " 4"), plain=("2 plus 2 is", " 4"))
    (example,), _ = ConversationTokenizer(tokenizer, max_seq_length=64)([record])
    assert example.input_ids[0] == bos and example.input_ids[1] != bos
    # Chat templates write their own BOS; it is not added a second time.
    chat = conversation(("user", "Say yes."), ("assistant", "yes"))
    (templated,), _ = ConversationTokenizer(tokenizer, max_seq_length=64)([chat])
    assert templated.input_ids[0] == bos and templated.input_ids[1] != bos

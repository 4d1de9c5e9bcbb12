"""Answers from a local transformers model, a batch of prompts at a time.

One module for every local evaluation: ``finetune evaluate --local-model`` / ``--base-model-path``
and the evaluation Processing job both reach it through
:class:`finetuning.evaluation.targets.LocalModelTarget`.

Batched greedy decoding gives the tokens that one prompt at a time gives because:

- prompts are padded on the **left**, so every row's last prompt token is the last column and
  each new token is appended right after its own prompt;
- the **attention mask** hides the padding from every query;
- **position ids** count a row's real tokens only: ``generate`` derives them from the
  attention mask (``cumsum - 1``), so a row's first real token is at position 0 whatever its
  padding.

What can still differ is floating-point rounding (a padded batch runs other matrix shapes), which
changes a greedy choice only where two tokens' logits tie to within rounding;
``tests/finetuning/evaluation/test_generation.py`` checks token-for-token equality and
``bench/`` checks the scores of a real model. Sampling (``temperature > 0``) draws other random
numbers in a batch than one prompt at a time, so sampled answers are not reproducible across
batch sizes either way.

A row stops at its end of answer: the model's EOS token(s), the tokenizer's, and the chat
template's end-of-turn token (``<|im_end|>``, ``<|eot_id|>``, ...). The batch ends when every
row has stopped or hit ``max_new_tokens``; rows that stopped early are padded and cut off here.

Nothing heavy is imported at module level, so the CLI can read :data:`DEFAULT_BATCH_SIZE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Prompts answered together. On CPU a decode step for one prompt is bound by reading the
# weights, so more rows cost little more: SmolLM2-135M answered 4.3x faster per CPU second with 16
# rows and 5.9x with 48 (bench/README.md, "Local evaluation speed"). On a GPU the bound is memory:
# an 8B model in bf16 (16 GB) plus 16 rows of 2k-token prompts and 512 new tokens (128 KB of KV
# cache per token, about 5 GB) fits the 24 GB A10G of ml.g5.2xlarge, the Processing job's default.
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class Answer:
    """One prompt's answer: the text, the token counts and whether it ended by itself."""

    text: str
    token_ids: tuple[int, ...]  # the new tokens, the stop token included
    input_tokens: int
    stopped: bool  # True: the model ended its answer; False: max_new_tokens cut it

    @property
    def output_tokens(self) -> int:
        return len(self.token_ids)


def chat_messages(system: str | None, turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": role, "content": text} for role, text in turns]


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids: the chat template with the generation prompt, or plain
    ``role: content`` paragraphs ending in ``assistant:`` for a tokenizer without one."""
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
    return list(tokenizer(text)["input_ids"])


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token the chat template closes an assistant turn with, if any.

    Found by rendering a one-exchange conversation and reading the first token after the
    assistant's text; only a special (added) token counts, never ordinary text such as a
    newline.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    marker = "ANSWER-END-PROBE"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
            tokenize=False,
        )
    except Exception:  # a template that needs other roles or content: no end-of-turn known
        return None
    _, found, after = text.rpartition(marker)
    if not found or not after:
        return None
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return int(ids[0]) if ids and ids[0] in special else None


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Tokens that end an answer: the model's EOS id(s), the tokenizer's, the end of turn."""
    ids = _as_ids(getattr(model.generation_config, "eos_token_id", None))
    ids += _as_ids(tokenizer.eos_token_id)
    eot = end_of_turn_id(tokenizer)
    if eot is not None:
        ids.append(eot)
    return list(dict.fromkeys(ids))  # in order, once each


def pad_token_id(model: Any, tokenizer: Any, stop_ids: Sequence[int]) -> int:
    """The id padding uses: the tokenizer's pad token, else the model's, else the first stop
    token, else 0. Padding is masked out, so any id inside the vocabulary does."""
    for value in (tokenizer.pad_token_id, getattr(model.generation_config, "pad_token_id", None)):
        if value is not None:
            return int(value)
    return int(stop_ids[0]) if stop_ids else 0


def sampling_options(
    max_new_tokens: int, temperature: float | None, top_p: float | None, top_k: int | None
) -> dict[str, Any]:
    """``generate`` keyword arguments: greedy unless a temperature above 0 asks to sample."""
    sampling = temperature is not None and temperature > 0
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling}
    if sampling:
        options["temperature"] = temperature
        if top_p is not None:
            options["top_p"] = top_p
        if top_k is not None:
            options["top_k"] = top_k
    return options


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """``input_ids`` and ``attention_mask`` for ``prompts``, padded on the left."""
    import torch

    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    options: dict[str, Any],
    stop_ids: Sequence[int],
) -> list[Answer]:
    """Answer every prompt (token ids) in one ``generate`` call; one :class:`Answer` each.

    ``options`` are :func:`sampling_options`. The rows share one padded batch; each row's
    answer ends at its first stop token (kept in ``output_tokens``, not in the text).
    """
    import torch

    if not prompts:
        return []
    if any(not p for p in prompts):
        raise ValueError("a prompt has no tokens")
    pad_id = pad_token_id(model, tokenizer, stop_ids)
    input_ids, attention_mask = left_pad(prompts, pad_id)
    width = input_ids.shape[1]
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            pad_token_id=pad_id,
            eos_token_id=list(stop_ids) or None,
            **options,
        )
    stops = set(stop_ids)
    answers = []
    for row, prompt in enumerate(prompts):
        new = [int(t) for t in output[row, width:]]
        end = next((i for i, token in enumerate(new) if token in stops), None)
        stopped = end is not None
        if stopped:
            new = new[: end + 1]  # what follows is padding for rows that finished early
        answers.append(
            Answer(
                text=tokenizer.decode(new, skip_special_tokens=True).strip(),
                token_ids=tuple(new),
                input_tokens=len(prompt),
                stopped=stopped,
            )
        )
    return answers

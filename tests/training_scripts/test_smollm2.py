"""A real small model learns a task: SmolLM2-135M-Instruct, LoRA, greedy exact match.

The base model answers in sentences ("The capital of France is Paris."), so its exact-match
accuracy on one-word answers is near zero; a short LoRA run teaches the answer format and
the accuracy on held-out questions rises well above the base model's.

- ``test_lora_teaches_smollm2_one_word_answers`` (default suite): 8 optimizer steps.
- ``test_lora_teaches_smollm2_to_look_up_codes`` (``slow``): a task that needs more than the
  format, copying a value out of the prompt, for 40 steps. Run it with
  ``make test-slow`` or ``python -m pytest tests/training_scripts/test_smollm2.py -m slow``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.training import write_jsonl

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Japan": "Tokyo", "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo",
    "Canada": "Ottawa", "Greece": "Athens", "Portugal": "Lisbon", "Austria": "Vienna",
    "Poland": "Warsaw", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Hungary": "Budapest",
    "Belgium": "Brussels", "Thailand": "Bangkok", "Kenya": "Nairobi", "Peru": "Lima",
    "Cuba": "Havana", "Mexico": "Mexico City", "Argentina": "Buenos Aires",
    "Turkey": "Ankara", "Iran": "Tehran", "India": "New Delhi", "England": "London",
}  # fmt: skip
OBJECTS = ["kiwi", "lamp", "rope", "desk", "fork", "moon", "sock", "tree", "bell", "coin"]


def chat(system: str, user: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
    }


def capital_records() -> tuple[list[dict], list[dict]]:
    items = sorted(CAPITALS.items())
    random.Random(0).shuffle(items)
    records = [chat("Answer with one word or name.", f"Capital of {c}?", a) for c, a in items]
    return records[:14] * 3, records[14:]


def code_records(n_train: int, n_test: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(1)

    def record() -> dict:
        keys = rng.sample(OBJECTS, 3)
        codes = [str(rng.randint(10, 99)) for _ in keys]
        asked = rng.randrange(3)
        listing = ", ".join(f"{k}={c}" for k, c in zip(keys, codes, strict=True))
        return chat("Reply with the code.", f"{listing}. Code for {keys[asked]}?", codes[asked])

    return [record() for _ in range(n_train)], [record() for _ in range(n_test)]


@torch.inference_mode()
def exact_match(model: Any, tokenizer: Any, records: list[dict]) -> float:
    """Share of greedy answers equal to the reference (whitespace-trimmed)."""
    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(
            r["messages"][:-1], tokenize=False, add_generation_prompt=True
        )
        for r in records
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    output = model.generate(
        **batch, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    answers = tokenizer.batch_decode(
        output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
    )
    hits = [
        a.strip() == r["messages"][-1]["content"] for a, r in zip(answers, records, strict=True)
    ]
    return sum(hits) / len(records)


def base_and_tuned_accuracy(
    smollm2: Path, tmp_path: Path, run_train, train: list[dict], test: list[dict], *argv: Any
) -> tuple[float, float]:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    base = AutoModelForCausalLM.from_pretrained(smollm2).eval()
    base_accuracy = exact_match(base, tokenizer, test)
    del base
    out = tmp_path / "out"
    train_file = write_jsonl(tmp_path / "train.jsonl", train)
    code, _, stderr = run_train(
        "--model_name_or_path", smollm2, "--train_file", train_file, "--output_dir", out,
        "--method", "lora", "--logging_steps", 1, "--save_steps", 1000, "--seed", 0, *argv,
    )  # fmt: skip
    assert code == 0, stderr
    tuned = AutoPeftModelForCausalLM.from_pretrained(out).eval()
    tuned_accuracy = exact_match(tuned, AutoTokenizer.from_pretrained(out), test)
    print(json.dumps({"base_accuracy": base_accuracy, "tuned_accuracy": tuned_accuracy}))
    return base_accuracy, tuned_accuracy


def test_lora_teaches_smollm2_one_word_answers(smollm2: Path, tmp_path: Path, run_train) -> None:
    train, test = capital_records()
    base, tuned = base_and_tuned_accuracy(
        smollm2, tmp_path, run_train, train, test,
        "--max_steps", 8, "--learning_rate", 1e-3, "--max_seq_length", 128,
        "--per_device_train_batch_size", 2,
    )  # fmt: skip
    assert base <= 0.1
    assert tuned >= base + 0.25


@pytest.mark.slow
def test_lora_teaches_smollm2_to_look_up_codes(smollm2: Path, tmp_path: Path, run_train) -> None:
    train, test = code_records(160, 32)
    base, tuned = base_and_tuned_accuracy(
        smollm2, tmp_path, run_train, train, test,
        "--max_steps", 40, "--learning_rate", 1e-3, "--max_seq_length", 256,
        "--per_device_train_batch_size", 2,
    )  # fmt: skip
    assert base <= 0.1
    assert tuned >= 0.8

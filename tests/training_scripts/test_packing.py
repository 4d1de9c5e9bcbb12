"""Packing: bins respect the budget, and packed examples never see each other."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from training_scripts.packing import (
    PackedCollator,
    PaddedCollator,
    best_fit_decreasing,
    pack_examples,
    packing_keeps_examples_apart,
)
from training_scripts.tokenization import IGNORE_INDEX, TokenizedExample


def example(length: int, start: int = 10, trained_from: int = 2) -> TokenizedExample:
    ids = [start + (i % 50) for i in range(length)]
    labels = [IGNORE_INDEX if i < trained_from else token for i, token in enumerate(ids)]
    return TokenizedExample(input_ids=ids, labels=labels)


def test_best_fit_decreasing_places_every_example_once_within_capacity() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 64) for _ in range(500)]
    bins = best_fit_decreasing(lengths, 64)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(500))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    lower_bound = -(-sum(lengths) // 64)
    assert len(bins) <= lower_bound * 1.05 + 1  # nearly full bins
    with pytest.raises(ValueError, match="more than 64"):
        best_fit_decreasing([65], 64)


def test_packed_rows_restart_positions_per_example_and_pad_as_their_own_segment() -> None:
    rows = pack_examples([example(5), example(3, start=60), example(6, start=70)], capacity=9)
    assert sorted(len(r.input_ids) for r in rows) == [5, 9]
    batch = PackedCollator(pad_token_id=0)(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids", "num_tokens"}
    assert "attention_mask" not in batch  # the boundaries are in the position ids
    assert batch["num_tokens"] == 14
    assert batch["input_ids"].shape == (2, 16)  # padded up to a multiple of 8
    for row, packed in zip(batch["position_ids"].tolist(), rows, strict=True):
        starts = [i for i, p in enumerate(row) if p == 0]
        lengths = [b - a for a, b in zip(starts, [*starts[1:], len(row)], strict=False)]
        # Each example, and then the padding, counts from 0.
        assert sum(lengths[: len(lengths) - 1]) == packed.num_tokens
        assert all(row[s : s + n] == list(range(n)) for s, n in zip(starts, lengths, strict=True))
    padding = batch["input_ids"] == 0
    assert bool((batch["labels"][padding] == IGNORE_INDEX).all())


def load_tiny(path: Path, attn: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn)
    model.config.use_cache = False  # as in training: packing is read from position ids only then
    return model.eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_the_logits_of_each_example_alone(tiny_model: Path, attn: str) -> None:
    model = load_tiny(tiny_model, attn)
    examples = [example(7, start=20), example(11, start=40), example(5, start=90)]
    (row,) = pack_examples(examples, capacity=32)
    batch = PackedCollator(pad_token_id=0)([row])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        offset = 0
        order = [examples[i] for i in range(3)]  # pack_examples keeps input order within a bin
        for item in order:
            alone = model(input_ids=torch.tensor([item.input_ids])).logits[0]
            torch.testing.assert_close(
                packed[offset : offset + len(item)], alone, rtol=1e-4, atol=1e-4
            )
            offset += len(item)
    assert packing_keeps_examples_apart(model, model.config.vocab_size)


def test_packed_loss_equals_padded_loss(tiny_model: Path) -> None:
    model = load_tiny(tiny_model, "sdpa")
    examples = [example(7, start=20), example(11, start=40, trained_from=5), example(5, start=90)]
    packed = PackedCollator(0)(pack_examples(examples, capacity=32))
    padded = PaddedCollator(0)(examples)
    with torch.no_grad():
        packed_loss = model(
            input_ids=packed["input_ids"],
            position_ids=packed["position_ids"],
            labels=packed["labels"],
        ).loss
        padded_loss = model(
            input_ids=padded["input_ids"],
            attention_mask=padded["attention_mask"],
            labels=padded["labels"],
        ).loss
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-4, atol=1e-5)


class LeakyModel(torch.nn.Module):
    """Causal mean over all previous tokens: ignores position ids, so packing would leak."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(100, 8)

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        hidden = self.embed(input_ids).cumsum(1)
        counts = torch.arange(1, input_ids.shape[1] + 1).view(1, -1, 1)
        return SimpleNamespace(logits=hidden / counts)


def test_the_probe_catches_a_model_that_lets_examples_mix() -> None:
    torch.manual_seed(0)
    assert not packing_keeps_examples_apart(LeakyModel(), 100)

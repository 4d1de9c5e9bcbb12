"""How a micro-batch of examples becomes tensors, and which layout a run uses.

The Trainer's sampler hands the collator ``per_device_train_batch_size`` examples, in the same
order whatever the layout, so every mode trains on the same examples per optimizer step and the
loss (a mean over the step's trained tokens) is the same up to rounding. A layout only decides
how much padding and attention is computed:

- ``padding_free``: the examples back to back in one row, position ids restarting per example,
  boundaries passed as ``cu_seq_lens_*``: no padding, and with a variable-length kernel
  (flash-attention, or :mod:`training_scripts.attention` elsewhere) no mask and each example's
  own attention cost.
- ``packed``: the same, cut into rows of at most ``--max_seq_length`` tokens (best-fit
  decreasing); examples are kept apart by restarting position ids, which the model turns into a
  block-diagonal mask.
- ``padded``: one row per example, right-padded to the longest of the batch; with
  ``length_grouped`` the sampler puts examples of similar length together.

:func:`choose_batching` picks one per run from the attention kernel and the data's lengths.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from training_scripts.attention import VARLEN_KERNELS
from training_scripts.packing import (
    PAD_TO_MULTIPLE_OF,
    PackedCollator,
    best_fit_decreasing,
    pack_examples,
)
from training_scripts.tokenization import TokenizedExample

AUTO = "auto"
PADDING_FREE = "padding_free"
PACKED = "packed"
PADDED = "padded"
BATCHING_CHOICES = (AUTO, PADDING_FREE, PACKED, PADDED)

# Padded batches are grouped by length when random batches would waste more than this fraction
# of their positions on padding (grouping changes which examples meet in a batch, so it is only
# used when it pays).
LENGTH_GROUPING_MIN_PADDING = 0.10
# A block-diagonal mask (packed or padding-free rows without a variable-length kernel) is chosen
# over padding only when it saves at least this fraction of the estimated compute: masked SDPA
# runs slower than its FLOPs (16-27% per position against short padded rows on CPU, measured
# for bench/README.md), which the FLOP estimate does not see.
BLOCK_MASK_MIN_SAVING = 0.15
# HF's LengthGroupedSampler sorts megabatches of this many batches.
LENGTH_GROUP_MEGABATCH = 50
# Batches simulated to estimate each layout's cost.
SIMULATED_BATCHES = 200


@dataclass(frozen=True)
class AttentionSupport:
    """What the loaded model was checked to do (see ``packing_keeps_examples_apart``)."""

    kernel: str  # the attn_implementation padding-free batches would run with
    varlen: bool  # the kernel keeps examples apart from cu_seq_lens_*, without a mask
    position_boundaries: bool  # restarting position ids alone keep examples apart


@dataclass(frozen=True)
class BatchingPlan:
    mode: str
    length_grouped: bool
    varlen: bool  # pass cu_seq_lens_* to the model, which runs ``kernel``
    kernel: str
    reason: str
    relative_cost: dict[str, float] = field(default_factory=dict)  # per mode, padded = 1

    def describe(self, batch_size: int) -> str:
        costs = " ".join(f"{k}={v:.2f}" for k, v in sorted(self.relative_cost.items()))
        grouped = " length-grouped" if self.length_grouped else ""
        return (
            f"batching: {self.mode}{grouped}, {batch_size} examples per micro-batch in every mode; "
            f"{self.reason}" + (f" (estimated compute, padded=1: {costs})" if costs else "")
        )


def attention_pair_weight(config: Any) -> float:
    """Attention FLOPs per (query, key) pair over linear-layer FLOPs per token, one layer.

    Used to weigh a layout's attention (quadratic in row length) against its token count.
    """
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    intermediate = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    linear = 2 * (2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim)
    linear += 2 * 3 * hidden * intermediate
    return 4 * heads * head_dim / linear


def _round_up(n: int) -> int:
    return -(-n // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF


def simulated_batches(
    lengths: Sequence[int], batch_size: int, grouped: bool, seed: int = 0
) -> list[list[int]]:
    """Batches of example lengths as a random (or length-grouped) sampler would form them."""
    rng = random.Random(seed)
    order = list(lengths)
    rng.shuffle(order)
    if grouped:
        mega = batch_size * LENGTH_GROUP_MEGABATCH
        order = [n for i in range(0, len(order), mega) for n in sorted(order[i : i + mega])]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if grouped:
        rng.shuffle(batches)
    return batches[:SIMULATED_BATCHES]


def padding_fraction(batches: Sequence[Sequence[int]]) -> float:
    real = sum(sum(b) for b in batches)
    computed = sum(len(b) * _round_up(max(b)) for b in batches)
    return 1 - real / computed if computed else 0.0


def layout_cost(
    mode: str, batches: Sequence[Sequence[int]], pair_weight: float, capacity: int, varlen: bool
) -> float:
    """Estimated compute of the batches in one layout, in token-equivalents."""
    total = 0.0
    for batch in batches:
        if mode == PADDED:
            width = _round_up(max(batch))
            # A padding mask rules out the causal kernel: every pair of the row is computed.
            total += len(batch) * (width + pair_weight * width * width)
        elif mode == PADDING_FREE and varlen:
            total += sum(n + pair_weight * n * n / 2 for n in batch)
        else:  # rows with a block-diagonal mask: every pair of each row is computed
            rows = (
                [sum(batch)]
                if mode == PADDING_FREE
                else [sum(batch[i] for i in b) for b in best_fit_decreasing(batch, capacity)]
            )
            total += sum(r + pair_weight * r * r for r in rows)
    return total


def choose_batching(
    requested: str,
    *,
    lengths: Sequence[int],
    batch_size: int,
    max_seq_length: int,
    support: AttentionSupport,
    pair_weight: float,
) -> BatchingPlan:
    """The layout for this run, and why (logged)."""
    random_batches = simulated_batches(lengths, batch_size, grouped=False)
    grouped_batches = simulated_batches(lengths, batch_size, grouped=True)
    group = padding_fraction(random_batches) > LENGTH_GROUPING_MIN_PADDING
    padded_batches = grouped_batches if group else random_batches
    costs = {PADDED: layout_cost(PADDED, padded_batches, pair_weight, max_seq_length, False)}
    if support.position_boundaries or support.varlen:
        for mode in (PADDING_FREE, PACKED):
            costs[mode] = layout_cost(
                mode, random_batches, pair_weight, max_seq_length, support.varlen
            )
    relative = {mode: cost / costs[PADDED] for mode, cost in costs.items()}
    waste = padding_fraction(padded_batches)

    def padded(reason: str) -> BatchingPlan:
        grouping = (
            f"grouped by length, {waste:.0%} padding"
            if group
            else f"random batches pad only {waste:.0%}"
        )
        return BatchingPlan(PADDED, group, False, support.kernel, f"{reason}; {grouping}", relative)

    if requested == PADDED:
        return padded("requested")
    if requested in (PADDING_FREE, PACKED):
        if not (support.position_boundaries or support.varlen):
            return padded(
                f"{requested} was requested, but {support.kernel} attention lets examples in "
                "one row attend to each other, so padding instead"
            )
        # Packed rows batch several rows, which the variable-length path does not take.
        varlen = support.varlen and requested == PADDING_FREE
        return BatchingPlan(requested, False, varlen, support.kernel, "requested", relative)
    if support.varlen:
        return BatchingPlan(
            PADDING_FREE,
            False,
            True,
            support.kernel,
            f"{support.kernel} attends within each example (no padding, no mask)",
            relative,
        )
    best = min(relative, key=lambda mode: relative[mode])
    if best == PADDED or relative[best] > 1 - BLOCK_MASK_MIN_SAVING:
        return padded(
            f"{support.kernel} has no variable-length path and padding computes least here"
        )
    return BatchingPlan(
        best,
        False,
        False,
        support.kernel,
        f"{support.kernel} has no variable-length path; block-diagonal masks compute less than "
        f"padding ({waste:.0%} of padded positions would be padding)",
        relative,
    )


def _segment_kwargs(lengths: Sequence[int]) -> dict[str, Any]:
    edges = [0]
    for n in lengths:
        edges.append(edges[-1] + n)
    cu = torch.tensor(edges, dtype=torch.int32)
    longest = max(lengths)
    return {
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": longest,
        "max_length_k": longest,
    }


class PaddingFreeCollator:
    """A micro-batch as one row: examples back to back, positions restarting, no padding."""

    def __init__(self, varlen: bool) -> None:
        self.varlen = varlen

    def __call__(self, examples: Sequence[TokenizedExample]) -> dict[str, Any]:
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for example in examples:
            input_ids.extend(example.input_ids)
            labels.extend(example.labels)
            position_ids.extend(range(len(example)))
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([position_ids]),
            "num_tokens": len(input_ids),
        }
        if self.varlen:
            batch.update(_segment_kwargs([len(e) for e in examples]))
        return batch


class PackedBatchCollator:
    """A micro-batch packed into rows of at most ``capacity`` tokens (best-fit decreasing).

    The row tail is padding with restarting positions and no labels (its own segment).
    """

    def __init__(self, pad_token_id: int, capacity: int) -> None:
        self.rows = PackedCollator(pad_token_id)
        self.capacity = capacity

    def __call__(self, examples: Sequence[TokenizedExample]) -> dict[str, Any]:
        return self.rows(pack_examples(examples, self.capacity))


def make_collator(plan: BatchingPlan, pad_token_id: int, max_seq_length: int) -> Any:
    from training_scripts.packing import PaddedCollator

    if plan.mode == PADDING_FREE:
        return PaddingFreeCollator(plan.varlen)
    if plan.mode == PACKED:
        return PackedBatchCollator(pad_token_id, max_seq_length)
    return PaddedCollator(pad_token_id)


def attention_support(model: Any, vocab_size: int, attn_implementation: str) -> AttentionSupport:
    """Probe what the loaded model keeps apart; leaves its attention kernel as it found it.

    SDPA's variable-length stand-in is ``sdpa_varlen``; flash-attention kernels are their own.
    """
    from training_scripts.attention import SDPA_VARLEN, set_attention
    from training_scripts.packing import packing_keeps_examples_apart

    position = packing_keeps_examples_apart(model, vocab_size)
    if attn_implementation in VARLEN_KERNELS:
        kernel = attn_implementation
    elif attn_implementation == "sdpa":
        kernel = SDPA_VARLEN
    else:  # eager, flex_attention: what was asked for is what runs
        return AttentionSupport(attn_implementation, False, position)
    if kernel != attn_implementation:
        set_attention(model, kernel)
    try:
        varlen = packing_keeps_examples_apart(model, vocab_size, varlen=True)
    finally:
        if kernel != attn_implementation:
            set_attention(model, attn_implementation)
    return AttentionSupport(kernel, varlen, position)

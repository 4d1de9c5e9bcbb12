"""Packing examples into fixed-budget sequences, and the batch collators.

Packed rows carry ``position_ids`` that restart at 0 for every example and no attention mask.
transformers reads restarting position ids as sequence boundaries: flash-attention takes its
variable-length path, and SDPA / eager / flex attention build a block-diagonal causal mask, so no
token attends across examples. Because an architecture or kernel could ignore that signal,
:func:`packing_keeps_examples_apart` checks the loaded model before packing is used.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from training_scripts.tokenization import IGNORE_INDEX, TokenizedExample

PAD_TO_MULTIPLE_OF = 8  # tensor-core friendly shapes


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group example indices into bins of at most ``capacity`` tokens (best-fit decreasing).

    Longest first, each into the fullest bin it still fits in: bins end up nearly full, so
    little compute goes to padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    bins: list[list[int]] = []
    # (space left, bin index), kept sorted so the tightest fit is one bisect away.
    space: list[tuple[int, int]] = []
    for index in order:
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"example {index} has {length} tokens, more than {capacity}")
        position = bisect.bisect_left(space, (length, -1))
        if position < len(space):
            left, bin_index = space.pop(position)
            bins[bin_index].append(index)
            bisect.insort(space, (left - length, bin_index))
        else:
            bins.append([index])
            bisect.insort(space, (capacity - length, len(bins) - 1))
    return bins


@dataclass(frozen=True)
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    num_tokens: int


def pack_examples(examples: Sequence[TokenizedExample], capacity: int) -> list[PackedRow]:
    """Concatenate examples into rows of at most ``capacity`` tokens, positions restarting."""
    rows = []
    for bin_indices in best_fit_decreasing([len(e) for e in examples], capacity):
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for index in sorted(bin_indices):
            example = examples[index]
            input_ids.extend(example.input_ids)
            labels.extend(example.labels)
            position_ids.extend(range(len(example)))
        rows.append(PackedRow(input_ids, labels, position_ids, len(input_ids)))
    return rows


class ListDataset(torch.utils.data.Dataset):
    """A map-style dataset over a Python list (packed rows or tokenized examples)."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


def _padded_length(lengths: Sequence[int]) -> int:
    longest = max(lengths)
    return -(-longest // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF


class PackedCollator:
    """Batches :class:`PackedRow` s: ``input_ids``, ``labels``, ``position_ids``, no mask.

    Padding at the end of a row is its own segment (positions restart at 0) and has no labels, so
    it neither attends to nor is attended by real tokens.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[PackedRow]) -> dict[str, Any]:
        width = _padded_length([len(r.input_ids) for r in rows])
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row.input_ids)
            input_ids[i, :n] = torch.tensor(row.input_ids)
            labels[i, :n] = torch.tensor(row.labels)
            position_ids[i, :n] = torch.tensor(row.position_ids)
            position_ids[i, n:] = torch.arange(width - n)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "num_tokens": sum(r.num_tokens for r in rows),
        }


class PaddedCollator:
    """Batches :class:`TokenizedExample` s, right-padded, with an attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[TokenizedExample]) -> dict[str, Any]:
        width = _padded_length([len(e) for e in examples])
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, example in enumerate(examples):
            n = len(example)
            input_ids[i, :n] = torch.tensor(example.input_ids)
            labels[i, :n] = torch.tensor(example.labels)
            attention_mask[i, :n] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "num_tokens": sum(len(e) for e in examples),
        }


@torch.no_grad()
def packing_keeps_examples_apart(
    model: torch.nn.Module, vocab_size: int, *, varlen: bool = False
) -> bool:
    """True if the model, given restarting position ids, keeps packed examples apart.

    With ``varlen`` the packed row also carries the boundaries as ``cu_seq_lens_*`` (what
    padding-free batches pass to variable-length attention kernels).

    Runs two short token sequences packed into one row and compares the second one's logits
    with the logits it gets alone. To judge "equal" independently of dtype and kernel noise,
    the gap is compared with the one plain causal attention over the same row produces (what
    cross-contamination looks like for this model).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(3, vocab_size, (7,), generator=generator)
    second = torch.randint(3, vocab_size, (9,), generator=generator)
    row = torch.cat([first, second])[None].to(device)
    was_training = model.training
    model.eval()
    try:

        def logits(
            input_ids: torch.Tensor, position_ids: torch.Tensor, lengths: list[int]
        ) -> torch.Tensor:
            kwargs: dict = {}
            if varlen:
                edges = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
                cu = edges.to(device=device, dtype=torch.int32)
                kwargs = {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu}
                kwargs |= {"max_length_q": max(lengths), "max_length_k": max(lengths)}
            # No KV cache: transformers only reads packing from position ids without one.
            output = model(
                input_ids=input_ids,
                position_ids=position_ids[None].to(device),
                use_cache=False,
                **kwargs,
            )
            return output.logits[0, -len(second) :].float()

        n1, n2 = len(first), len(second)
        alone = logits(second[None].to(device), torch.arange(n2), [n2])
        packed = logits(row, torch.cat([torch.arange(n1), torch.arange(n2)]), [n1, n2])
        mixed = logits(row, torch.arange(n1 + n2), [n1 + n2])
    finally:
        model.train(was_training)
    contamination = (mixed - alone).abs().max().item()
    packing_error = (packed - alone).abs().max().item()
    if contamination == 0.0:
        return packing_error == 0.0
    return packing_error <= 0.05 * contamination

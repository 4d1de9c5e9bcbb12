"""Variable-length attention without flash-attn: each example of a padding-free row on its own.

Padding-free batches put a micro-batch's examples into one row, back to back, and pass the
example boundaries as ``cu_seq_lens_q``/``cu_seq_lens_k`` (the keyword arguments transformers'
flash-attention integration reads for its variable-length path). Without flash-attn (every CPU,
GPUs without the package) plain SDPA would need a block-diagonal mask over the whole row and
computes every masked block: a row of 8 examples of 150 tokens costs 8x the attention of the
examples alone. :func:`sdpa_varlen_attention` runs SDPA once per example with ``is_causal``
instead: the attention cost of the examples alone, no mask built, the fast causal kernel.

Registered as ``sdpa_varlen`` in transformers' ``AttentionInterface`` and deliberately not in its
mask interface, so transformers builds no mask at all for it. Without boundary arguments it is
causal SDPA over each row, which is exact for training batches (right-padded or unpadded): a
causal query never sees the padding after it, and padding carries no labels.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

SDPA_VARLEN = "sdpa_varlen"
# Kernels that read cu_seq_lens_* and keep packed examples apart without a mask.
VARLEN_KERNELS = ("flash_attention_2", "flash_attention_3", SDPA_VARLEN)


def sdpa_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: ``query`` (B, H, T, D) -> output (B, T, H, D)."""
    # Grouped-query attention without copying keys and values to every query head.
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    boundaries = kwargs.get("cu_seq_lens_q")
    if attention_mask is not None and attention_mask.dim() == 4:
        # A caller-built 4D mask (not from transformers' mask creation, which skips this kernel).
        output = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=dropout,
            scale=scaling,
            enable_gqa=gqa,
        )
    elif boundaries is None or query.shape[0] != 1:
        output = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            dropout_p=dropout,
            scale=scaling,
            is_causal=query.shape[2] > 1,
            enable_gqa=gqa,
        )
    else:
        lengths = [end - start for start, end in itertools.pairwise(boundaries.tolist())]
        # split, not one slice per example: the backward of a split is one concatenation,
        # where each slice's backward writes a zero-filled copy of the whole row.
        pieces = [
            torch.nn.functional.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout, scale=scaling, is_causal=q.shape[2] > 1, enable_gqa=gqa
            )
            for q, k, v in zip(
                query.split(lengths, dim=2),
                key.split(lengths, dim=2),
                value.split(lengths, dim=2),
                strict=True,
            )
            if q.shape[2] > 0
        ]
        output = torch.cat(pieces, dim=2)
    return output.transpose(1, 2).contiguous(), None


def register_sdpa_varlen() -> None:
    """Make ``sdpa_varlen`` a valid ``attn_implementation`` (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(SDPA_VARLEN, sdpa_varlen_attention)


def set_attention(model: Any, implementation: str) -> None:
    """Switch a loaded (possibly peft-wrapped) model's attention kernel."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if implementation == SDPA_VARLEN:
        register_sdpa_varlen()
    base.set_attn_implementation(implementation)

"""The last decoder layer's position-wise work, run only where the loss reads the output.

The loss takes logits at trained positions only (``logits_to_keep``), and after the last decoder
layer nothing else reads the other positions' hidden states: every layer before it must run at
every position (later layers attend to them), but in the last layer the query projection, the
attention output projection and the MLP are position-wise and only matter at the trained
positions (keys and values are still computed everywhere). With completion-only loss on chat
data that is a few tokens per example, so those three modules of the last layer run on a few
rows instead of the whole micro-batch: on a 4-layer model about a fifth of the compute, on a
30-layer one a few percent. The loss, the gradients and so the training are unchanged; the
skipped positions' queries are zeros and their last hidden states, which nothing reads, are not
the model's.

Only used where a probe finds the model's logits at the kept positions unchanged (see
:func:`last_layer_selection`), and not with activation checkpointing, whose recomputation in
the backward pass would run outside the forward's selection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

# Logits at the kept positions must match the full computation to this tolerance in the probe.
PROBE_TOLERANCE = 1e-4


def _decoder_layers(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return getattr(decoder, "layers", None)


def _selected(forward: Callable[..., torch.Tensor], keep: torch.Tensor) -> Callable[..., Any]:
    """``forward`` run on the rows of ``keep`` only; zeros elsewhere (read by nothing)."""

    def run(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if hidden.shape[:-1] != keep.shape:  # not a training forward of this micro-batch
            return forward(hidden, *args, **kwargs)
        kept = forward(hidden[keep], *args, **kwargs)
        output = kept.new_zeros((*keep.shape, kept.shape[-1]))
        output[keep] = kept
        return output

    return run


class LastLayerSelection:
    """Runs the last decoder layer's ``self_attn.q_proj``, ``self_attn.o_proj`` and ``mlp`` at
    kept positions only."""

    def __init__(self, modules: list[torch.nn.Module]) -> None:
        self.modules = modules

    @contextlib.contextmanager
    def only(self, keep: torch.Tensor) -> Iterator[None]:
        """Within the block, the modules compute only where ``keep`` (batch, positions) is True."""
        # Instance attributes: parameter names and saved weights stay as they are. A forward
        # already set on the instance (accelerate's hooks) is wrapped, then put back.
        saved = [module.__dict__.get("forward") for module in self.modules]
        for module in self.modules:
            module.forward = _selected(module.forward, keep)
        try:
            yield
        finally:
            for module, forward in zip(self.modules, saved, strict=True):
                if forward is None:
                    del module.forward
                else:
                    module.forward = forward


def _position_wise_modules(model: Any) -> list[torch.nn.Module] | None:
    layers = _decoder_layers(model)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return None
    last = layers[-1]
    attention = getattr(last, "self_attn", None)
    modules = [getattr(attention, "q_proj", None), getattr(attention, "o_proj", None)]
    modules.append(getattr(last, "mlp", None))
    if not all(isinstance(module, torch.nn.Module) for module in modules):
        return None
    return modules


@torch.no_grad()
def last_layer_selection(model: Any, vocab_size: int) -> LastLayerSelection | None:
    """The selection for this model, or None when it has no such layer or the probe finds the
    kept positions' logits changed by it."""
    modules = _position_wise_modules(model)
    if modules is None:
        return None
    selection = LastLayerSelection(modules)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab_size, (2, 12), generator=generator).to(device)
    keep = torch.zeros(2, 12, dtype=torch.bool)
    keep[0, [3, 7, 11]] = True
    keep[1, [0, 5]] = True
    keep = keep.to(device)
    was_training = model.training
    model.eval()
    try:
        full = model(input_ids=input_ids, use_cache=False).logits[keep].float()
        with selection.only(keep):
            selected = model(input_ids=input_ids, use_cache=False).logits[keep].float()
    except (RuntimeError, ValueError, TypeError, IndexError):  # a module that needs its shape
        return None
    finally:
        model.train(was_training)
    scale = max(full.abs().max().item(), 1.0)
    if (selected - full).abs().max().item() > PROBE_TOLERANCE * scale:
        return None
    return selection

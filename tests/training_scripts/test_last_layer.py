"""The last decoder layer at trained positions only: same loss and gradients, found by a probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.training_scripts.test_batching import COLLATORS, make_examples
from training_scripts import last_layer
from training_scripts.attention import SDPA_VARLEN, set_attention
from training_scripts.batching import PACKED, PADDED, PADDING_FREE, PaddingFreeCollator
from training_scripts.last_layer import LastLayerSelection, last_layer_selection
from training_scripts.trainer import selected_token_loss


def load(tiny_model: Path, kernel: str = "sdpa"):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    model.config.use_cache = False
    set_attention(model, kernel)
    return model


def test_probe_tolerance_is_pinned() -> None:
    assert last_layer.PROBE_TOLERANCE == 1e-4


@pytest.mark.parametrize(
    ("mode", "kernel"),
    [(PADDING_FREE, SDPA_VARLEN), (PADDED, "sdpa"), (PADDED, SDPA_VARLEN), (PACKED, "eager")],
)
def test_selection_keeps_the_loss_and_every_gradient(tiny_model: Path, mode: str, kernel: str):
    model = load(tiny_model, kernel)
    selection = last_layer_selection(model, model.config.vocab_size)
    assert selection is not None
    last = model.model.layers[-1]
    assert selection.modules == [last.self_attn.q_proj, last.self_attn.o_proj, last.mlp]
    collator = PaddingFreeCollator(varlen=True) if mode == PADDING_FREE else COLLATORS[mode]
    batch = collator(make_examples(6, seed=2))
    batch.pop("num_tokens")
    grads = []
    for used in (None, selection):
        loss_sum, count, _ = selected_token_loss(model, batch, True, used)
        (loss_sum / count).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad()
        if used is None:
            expected = loss_sum.detach()
        else:
            torch.testing.assert_close(loss_sum.detach(), expected, rtol=1e-5, atol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6)
    # The selection lives only inside its block: the modules' own forward is back.
    assert not any("forward" in module.__dict__ for module in selection.modules)


def test_selection_computes_the_modules_at_kept_positions_only(tiny_model: Path) -> None:
    model = load(tiny_model)
    selection = last_layer_selection(model, model.config.vocab_size)
    seen: list[tuple[int, ...]] = []
    hook = model.model.layers[-1].mlp.down_proj.register_forward_hook(
        lambda module, args, output: seen.append(tuple(args[0].shape))
    )
    keep = torch.zeros(1, 10, dtype=torch.bool)
    keep[0, [4, 9]] = True
    with torch.no_grad(), selection.only(keep):
        model(input_ids=torch.arange(3, 13)[None])
    model(input_ids=torch.arange(3, 13)[None])
    hook.remove()
    assert seen == [(2, model.config.intermediate_size), (1, 10, model.config.intermediate_size)]


class MixesPositions(torch.nn.Module):
    """An MLP stand-in that is not position-wise (each position sees the sequence's sum)."""

    def __init__(self, mlp: torch.nn.Module) -> None:
        super().__init__()
        self.inner = mlp

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.inner(hidden) + hidden.sum(dim=-2, keepdim=True)


def test_probe_refuses_a_last_layer_that_is_not_position_wise(tiny_model: Path) -> None:
    model = load(tiny_model)
    model.model.layers[-1].mlp = MixesPositions(model.model.layers[-1].mlp)
    assert last_layer_selection(model, model.config.vocab_size) is None
    del model.model.layers[-1].self_attn.o_proj
    assert last_layer_selection(model, model.config.vocab_size) is None


def test_the_trainer_uses_it_only_without_activation_checkpointing(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, TrainingArguments

    from training_scripts.packing import ListDataset
    from training_scripts.trainer import FinetuneTrainer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for checkpointing in (False, True):
        args = TrainingArguments(
            output_dir="unused", report_to="none", use_cpu=True,
            activation_checkpointing=checkpointing,
        )  # fmt: skip
        trainer = FinetuneTrainer(
            model=model, args=args, train_dataset=ListDataset(make_examples(4))
        )
        assert isinstance(trainer.last_layer, LastLayerSelection) is not checkpointing

"""The Trainer train.py uses: transformers' Trainer, plus real-token throughput and perplexity.

The loss is computed from logits at trained positions only: the model gets a boolean
``logits_to_keep`` mask (where the next token has a label), so the vocabulary projection and the
float32 cross-entropy never run over prompt or padding positions. With completion-only loss on
chat data that is most of a row, and the logits over a packed row were most of the memory. For
the same reason the last decoder layer's output projection and MLP run at those positions only
(:mod:`training_scripts.last_layer`).

Collators put ``num_tokens`` (tokens that are not padding) into each batch; the trainer takes it
out before the forward pass, sums it across processes at every logging step and logs
``tokens_per_second``. Counting real tokens, not ``input_ids.numel()``, makes the figure
comparable between packed and padded runs. Time spent evaluating and saving checkpoints is left
out of the interval.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from training_scripts.last_layer import LastLayerSelection, last_layer_selection
from training_scripts.reporting import perplexity
from training_scripts.tokenization import IGNORE_INDEX

NUM_TOKENS_KEY = "num_tokens"


def supports_logit_selection(model: nn.Module) -> bool:
    """True if the model's forward takes ``logits_to_keep`` (checked for masks by a probe)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def trained_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose logits predict a labelled token (the label one position later)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def selected_token_loss(
    model: nn.Module,
    inputs: dict[str, Any],
    select_logits: bool,
    last_layer: LastLayerSelection | None = None,
) -> tuple[torch.Tensor, int, Any]:
    """(summed cross-entropy over trained tokens, their count, model outputs)."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    keep = trained_positions(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    if select_logits:
        with last_layer.only(keep) if last_layer else contextlib.nullcontext():
            outputs = model(**inputs, logits_to_keep=keep)
        logits = outputs.logits
        if logits.dim() != 2 or logits.shape[0] != targets.numel():
            # A forward that takes logits_to_keep but slices it its own way (older models).
            outputs = model(**inputs)
            logits = outputs.logits[keep]
    else:
        outputs = model(**inputs)
        logits = outputs.logits[keep]
    loss = nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, int(targets.numel()), outputs


class FinetuneTrainer(Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens_since_log = 0
        self._interval_start: float | None = None
        self.train_tokens = 0  # all processes, this session
        self.train_seconds = 0.0
        self.tokens_seen = 0  # this process, every training step (for the progress line)
        self.train_lengths: list[int] | None = None  # set to group padded batches by length
        self.select_logits = supports_logit_selection(self.model)
        self.last_layer = self._last_layer_selection()

    def _last_layer_selection(self) -> LastLayerSelection | None:
        # Activation checkpointing recomputes the layer in the backward pass, outside the
        # forward's selection; FSDP wraps layers its own way. Both keep the full layer.
        if not self.select_logits or self.args.activation_checkpointing or self.is_fsdp_enabled:
            return None
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return last_layer_selection(self.model, int(config.vocab_size))

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.train_lengths is None:
            return super()._get_train_sampler(train_dataset)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=self.train_lengths,
        )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """Mean cross-entropy over the step's trained tokens, from their logits only.

        Normalised like transformers' own causal-LM loss: by the step's trained-token count
        (all micro-batches and, with ``average_tokens_across_devices``, all processes) when the
        Trainer passes it, else by this micro-batch's count.
        """
        if "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss_sum, count, outputs = selected_token_loss(
            model, inputs, self.select_logits, self.last_layer
        )
        scaled = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        if scaled:
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = loss_sum / max(count, 1)
        return (loss, outputs) if return_outputs else loss

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        if self._interval_start is None:
            self._interval_start = time.perf_counter()
        tokens = int(inputs.pop(NUM_TOKENS_KEY, 0))
        self._tokens_since_log += tokens
        self.tokens_seen += tokens
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        inputs.pop(NUM_TOKENS_KEY, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def _global_sum(self, value: int) -> int:
        if self.args.world_size <= 1:
            return value
        tensor = torch.tensor(value, device=self.args.device, dtype=torch.int64)
        return int(self.accelerator.gather(tensor).sum().item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Every process calls log() at the same points, so the collective below is matched.
        if "loss" in logs and self._interval_start is not None:
            now = time.perf_counter()
            tokens = self._global_sum(self._tokens_since_log)
            elapsed = max(now - self._interval_start, 1e-9)
            logs["tokens_per_second"] = tokens / elapsed
            self.train_tokens += tokens
            self.train_seconds += elapsed
            self._tokens_since_log = 0
            # The next interval starts at the next training step, so evaluation and checkpoint
            # saving, which follow a log, do not count as training time.
            self._interval_start = None
        if "eval_loss" in logs:
            logs["eval_perplexity"] = perplexity(logs["eval_loss"])
        super().log(logs, start_time)

    def flush_token_count(self) -> None:
        """Count the tokens of the steps after the last logging step (call on every process)."""
        if self._interval_start is None:
            return
        now = time.perf_counter()
        self.train_tokens += self._global_sum(self._tokens_since_log)
        self.train_seconds += now - self._interval_start
        self._tokens_since_log = 0
        self._interval_start = None

"""The Trainer train.py uses: transformers' Trainer, plus real-token throughput and perplexity.

Collators put ``num_tokens`` (tokens that are not padding) into each batch; the trainer takes it
out before the forward pass, sums it across processes at every logging step and logs
``tokens_per_second``. Counting real tokens, not ``input_ids.numel()``, makes the figure
comparable between packed and padded runs. Time spent evaluating and saving checkpoints is left
out of the interval.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from training_scripts.reporting import perplexity

NUM_TOKENS_KEY = "num_tokens"


class FinetuneTrainer(Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens_since_log = 0
        self._interval_start: float | None = None
        self.train_tokens = 0  # all processes, this session
        self.train_seconds = 0.0

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        if self._interval_start is None:
            self._interval_start = time.perf_counter()
        self._tokens_since_log += int(inputs.pop(NUM_TOKENS_KEY, 0))
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

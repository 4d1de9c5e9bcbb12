"""Per-step progress: a tqdm bar on a terminal, a compact line in logs (CI, SageMaker, local jobs).

On a terminal the bar moves every optimizer step and shows loss, tokens/s and the ETA. Anywhere
else (stdout is a pipe or a file) one line is printed for the first step, the last step, and
whenever :data:`LINE_INTERVAL_SECONDS` have passed since the previous line, so slow CPU steps
show every step and fast GPU steps do not flood the log::

    step: 12/60 20% loss=1.234 tokens/s=850 elapsed=41s eta=2m44s

The parsed ``progress:`` / ``metrics:`` lines (see :mod:`training_scripts.reporting`) are
unchanged; tokens/s here is this process's count times the number of processes, an estimate
between the exact figures of the ``metrics:`` lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

LINE_INTERVAL_SECONDS = 5.0


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class StepProgress(TrainerCallback):
    """Prints per-step progress on the main process."""

    def __init__(
        self,
        tokens_seen: Callable[[], int],
        *,
        interactive: bool | None = None,
        interval: float = LINE_INTERVAL_SECONDS,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens_seen = tokens_seen
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.interval = interval
        self.clock = clock
        self.bar: Any = None
        self.loss: float | None = None
        self._start_time = 0.0
        self._start_step = 0
        self._start_tokens = 0
        self._last_line = float("-inf")
        self._world_size = 1

    def write(self, line: str) -> None:
        """Print a line without breaking the bar (used for the parsed log lines)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._world_size = max(1, args.world_size)
        self._start_time = self.clock()
        self._start_step = state.global_step
        self._start_tokens = self.tokens_seen()
        if self.interactive:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def snapshot(self, state: TrainerState) -> dict[str, Any]:
        elapsed = max(self.clock() - self._start_time, 1e-9)
        done = state.global_step - self._start_step
        tokens = (self.tokens_seen() - self._start_tokens) * self._world_size
        remaining = max(state.max_steps - state.global_step, 0)
        return {
            "step": state.global_step,
            "total": state.max_steps,
            "loss": self.loss,
            "tokens_per_second": tokens / elapsed,
            "elapsed": elapsed,
            "eta": elapsed / done * remaining if done else None,
        }

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        info = self.snapshot(state)
        if self.bar is not None:
            self.bar.n = state.global_step
            postfix = {"tokens/s": f"{info['tokens_per_second']:.0f}"}
            if self.loss is not None:
                postfix["loss"] = f"{self.loss:.4g}"
            self.bar.set_postfix(postfix, refresh=True)
            return
        now = self.clock()
        first = state.global_step == self._start_step + 1
        last = state.global_step >= state.max_steps
        if first or last or now - self._last_line >= self.interval:
            self._last_line = now
            print(progress_line(info), file=self.stream, flush=True)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_line(info: dict[str, Any]) -> str:
    total = max(info["total"], 1)
    parts = [f"step: {info['step']}/{info['total']} {100 * info['step'] // total}%"]
    if info["loss"] is not None:
        parts.append(f"loss={info['loss']:.4g}")
    parts.append(f"tokens/s={info['tokens_per_second']:.0f}")
    parts.append(f"elapsed={format_duration(info['elapsed'])}")
    if info["eta"] is not None:
        parts.append(f"eta={format_duration(info['eta'])}")
    return " ".join(parts)

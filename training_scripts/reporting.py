"""What a run tells the world while it trains: stdout lines and the per-step CSV files.

stdout (rank 0 only), one line per event, parsed by SageMaker metric definitions
(:mod:`training_scripts.metric_definitions`) and by the local job service::

    progress: step=20/200
    metrics: step=20 epoch=0.5 train_loss=1.2345 learning_rate=0.000196 grad_norm=0.81
        tokens_per_second=5321.4
    eval: step=20 epoch=0.5 eval_loss=1.3012 eval_perplexity=3.67349

(each line is one line on stdout; the metrics line is wrapped here to fit)

``training_metrics.csv`` (step, epoch, loss, learning_rate, tokens_per_second) gets one row per
logging step and ``eval_metrics.csv`` (step, epoch, eval_loss, eval_perplexity) one per
evaluation. Rows are appended and flushed one at a time, so a killed run leaves a valid file; a
resumed run first drops the rows after the checkpoint it resumes from.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

TRAINING_METRICS_FILE = "training_metrics.csv"
EVAL_METRICS_FILE = "eval_metrics.csv"
TRAINING_COLUMNS = ("step", "epoch", "loss", "learning_rate", "tokens_per_second")
EVAL_COLUMNS = ("step", "epoch", "eval_loss", "eval_perplexity")


def perplexity(loss: float) -> float | None:
    """exp(mean token cross-entropy); None where it overflows a float."""
    try:
        return math.exp(loss)
    except OverflowError:
        return None


def _format(value: Any) -> str:
    """Six significant digits: short lines, and what a metric regex reads back is exact enough."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def metric_line(tag: str, values: Mapping[str, Any]) -> str:
    """``tag: k=v k=v``, skipping None values."""
    pairs = " ".join(f"{k}={_format(v)}" for k, v in values.items() if v is not None)
    return f"{tag}: {pairs}"


class CsvLog:
    """An append-only CSV file with a fixed header, safe to reopen after a kill."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(self.columns)
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def keep_through_step(self, step: int) -> None:
        """Drop rows after ``step`` (a resumed run logs those steps again)."""
        if not self.path.exists():
            return
        kept = [
            row for row in self.rows() if row.get("step", "").isdigit() and int(row["step"]) <= step
        ]
        with self.path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)


class ReportingCallback(TrainerCallback):
    """Prints the progress / metrics / eval lines and writes the CSV files (rank 0)."""

    def __init__(self, output_data_dir: Path, write: Callable[[str], None] | None = None) -> None:
        # ``write`` prints a line; the progress bar passes its own so that lines do not break it.
        self.write = write or (lambda line: print(line, flush=True))
        self.training_csv = CsvLog(output_data_dir / TRAINING_METRICS_FILE, TRAINING_COLUMNS)
        self.eval_csv = CsvLog(output_data_dir / EVAL_METRICS_FILE, EVAL_COLUMNS)
        self.last_train_log: dict[str, Any] = {}
        self.last_eval_log: dict[str, Any] = {}

    def prepare(self, resume_step: int | None, is_main_process: bool) -> None:
        """Before training: a fresh run starts new files, a resumed one trims them."""
        if not is_main_process:
            return
        for log in (self.training_csv, self.eval_csv):
            if resume_step is None:
                log.reset()
            else:
                log.keep_through_step(resume_step)

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if state.is_world_process_zero:
            self.write(f"progress: step={state.global_step}/{state.max_steps}")

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        # Always log the last step, so the CSV and the metric lines end where training ended.
        if state.global_step >= state.max_steps:
            control.should_log = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        step = state.global_step
        epoch = logs.get("epoch", state.epoch)
        if "loss" in logs:
            values = {
                "step": step,
                "epoch": epoch,
                "train_loss": logs["loss"],
                "learning_rate": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"),
                "tokens_per_second": logs.get("tokens_per_second"),
            }
            self.last_train_log = values
            self.write(f"progress: step={step}/{state.max_steps}")
            self.write(metric_line("metrics", values))
            self.training_csv.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": logs["loss"],
                    "learning_rate": logs.get("learning_rate"),
                    "tokens_per_second": logs.get("tokens_per_second"),
                }
            )
        if "eval_loss" in logs:
            values = {
                "step": step,
                "epoch": epoch,
                "eval_loss": logs["eval_loss"],
                "eval_perplexity": logs.get("eval_perplexity"),
            }
            self.last_eval_log = values
            self.write(metric_line("eval", values))
            self.eval_csv.append(values)

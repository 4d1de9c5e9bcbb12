"""Running the assembled Trainer: from the start, from the latest complete checkpoint, or (a
finished run started again) only reloading its last checkpoint to write the outputs; then the
final evaluation. A SIGTERM saves a checkpoint and ends the run as interrupted."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerState

from training_scripts import checkpoints
from training_scripts.checkpoints import Checkpoint
from training_scripts.console import say
from training_scripts.reporting import ReportingCallback
from training_scripts.trainer import FinetuneTrainer


@dataclass
class FitResult:
    train_runtime: float  # seconds, this session (0 when a finished run was only reloaded)
    train_loss_mean: float | None
    interrupted: bool  # SIGTERM before the last step; a checkpoint was saved


class SigtermFlag:
    """Remembers a SIGTERM, then lets the Trainer's own handler save a checkpoint."""

    def __init__(self) -> None:
        self.received = False
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        if callable(self._previous):
            self._previous(signum, frame)


def fit(
    trainer: FinetuneTrainer, resume: Checkpoint | None, checkpoint_dir: Path, max_steps: int
) -> FitResult:
    """Train (or reload a finished run) and count the last steps' tokens; print the
    ``checkpoint:`` and ``interrupted:`` lines."""
    sigterm = SigtermFlag()
    train_runtime = 0.0
    train_loss_mean = None
    if resume is not None and checkpoints.reached_max_steps(resume, max_steps):
        say(f"checkpoint: {resume.path} is the last step of a finished run; writing outputs")
        # Trainer's own loader handles adapters, sharded and FSDP checkpoints alike.
        trainer._load_from_checkpoint(str(resume.path))
        trainer.state = TrainerState.load_from_json(str(resume.path / checkpoints.TRAINER_STATE))
    else:
        if resume is not None:
            say(f"checkpoint: resuming from {resume.path} (step {resume.step})")
        result = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        train_runtime = float(result.metrics.get("train_runtime", 0.0))
        train_loss_mean = result.training_loss
    trainer.flush_token_count()
    state = trainer.state
    interrupted = sigterm.received and state.global_step < state.max_steps
    if interrupted:
        saved = checkpoints.latest_complete(checkpoint_dir)
        say(
            f"interrupted: SIGTERM at step {state.global_step}/{state.max_steps}; the next start "
            f"resumes from {saved.path if saved else 'the beginning'} "
            f"(checkpoint step {saved.step if saved else 0})"
        )
    return FitResult(train_runtime, train_loss_mean, interrupted)


def final_eval_loss(trainer: FinetuneTrainer, reporting: ReportingCallback) -> float | None:
    """The evaluation loss of the final model: the last evaluation's when it was of the last
    step (and the best model is not reloaded), else a new evaluation; None without
    validation data."""
    if trainer.eval_dataset is None:
        return None
    last = reporting.last_eval_log
    if last.get("step") == trainer.state.global_step and not trainer.args.load_best_model_at_end:
        return last["eval_loss"]
    return trainer.evaluate()["eval_loss"]

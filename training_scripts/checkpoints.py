"""Spot-safe checkpoints: which checkpoint to resume from, and which to throw away.

A spot interruption or a kill can leave a half-written checkpoint. The Trainer writes
``trainer_state.json`` last, and its SIGTERM checkpoint keeps a sentinel file until it is done, so
a checkpoint is complete when its state file parses, names the step in the directory name, sits
next to weights and optimizer state, and no sentinel is left. Incomplete ones are deleted before
training starts, so checkpoint rotation never counts them.

A marker file records which model and method the checkpoints belong to, so a checkpoint
directory reused for a different run is reported instead of silently mixed in;
``run_identity`` is what it records, ``prepare_resume`` the start-of-run step.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training_scripts.arguments import UsageError
from training_scripts.console import say

if TYPE_CHECKING:
    from training_scripts.arguments import ScriptArguments
    from training_scripts.data import PreparedData

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
INCOMPLETE_SENTINEL = "checkpoint-is-incomplete.txt"  # written by the Trainer's SIGTERM save
RUN_MARKER = "finetune_run.json"
WEIGHT_FILES = (
    "adapter_model.safetensors",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "adapter_model.bin",
)


class CheckpointDirError(UsageError):
    """The checkpoint directory holds another run's checkpoints."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def _has_weights(path: Path) -> bool:
    if any((path / name).is_file() for name in WEIGHT_FILES):
        return True
    # FSDP: pytorch_model_fsdp.bin (full state) or pytorch_model_fsdp_0/ (sharded state).
    return any(p.name.startswith("pytorch_model_fsdp") for p in path.iterdir())


def _has_optimizer(path: Path) -> bool:
    if (path / "optimizer.pt").is_file() or (path / "optimizer.bin").is_file():
        return True
    return any(p.name.startswith("optimizer_") for p in path.iterdir())


def is_complete(path: Path) -> bool:
    """True if ``path`` is a checkpoint the Trainer can resume from."""
    step = checkpoint_step(path)
    if step is None or not path.is_dir() or (path / INCOMPLETE_SENTINEL).exists():
        return False
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if state.get("global_step") != step:
        return False
    return _has_weights(path) and _has_optimizer(path)


def reached_max_steps(checkpoint: Checkpoint, max_steps: int) -> bool:
    """True if ``checkpoint`` is the last step of its run and ``max_steps`` asks for no more.

    Resuming such a checkpoint would make the Trainer run one step past the end, so train.py
    writes its outputs from the checkpoint instead.
    """
    state = json.loads((checkpoint.path / TRAINER_STATE).read_text(encoding="utf-8"))
    planned = int(state.get("max_steps") or 0)
    finished = planned > 0 and checkpoint.step >= planned
    return finished and (max_steps <= 0 or max_steps <= checkpoint.step)


def list_checkpoints(checkpoint_dir: Path) -> list[Path]:
    if not checkpoint_dir.is_dir():
        return []
    found = [p for p in checkpoint_dir.iterdir() if checkpoint_step(p) is not None and p.is_dir()]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def remove_incomplete(checkpoint_dir: Path) -> list[Path]:
    """Delete checkpoint directories that cannot be resumed from; returns what was deleted."""
    removed = []
    for path in list_checkpoints(checkpoint_dir):
        if not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def latest_complete(checkpoint_dir: Path) -> Checkpoint | None:
    """The complete checkpoint with the highest step, if any."""
    for path in reversed(list_checkpoints(checkpoint_dir)):
        if is_complete(path):
            return Checkpoint(path=path, step=checkpoint_step(path) or 0)
    return None


def claim(checkpoint_dir: Path, identity: dict[str, str]) -> None:
    """Record which run owns ``checkpoint_dir``; raise if it holds another run's checkpoints."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker = checkpoint_dir / RUN_MARKER
    if marker.exists():
        try:
            owner = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            owner = None
        if owner is not None and owner != identity and list_checkpoints(checkpoint_dir):
            raise CheckpointDirError(
                f"--checkpoint_dir {checkpoint_dir} holds checkpoints of another run "
                f"({json.dumps(owner, sort_keys=True)}), not of this one "
                f"({json.dumps(identity, sort_keys=True)}); use an empty directory"
            )
    marker.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_identity(
    args: ScriptArguments, prepared: PreparedData, length_grouped: bool
) -> dict[str, str]:
    """What a checkpoint must match to be resumed by this command line."""
    model, data = args.model, args.data
    return {
        "model_name_or_path": str(model.model_name_or_path),
        "method": model.method,
        "lora": f"r={model.lora_r},alpha={model.lora_alpha},modules={model.lora_target_modules}",
        "max_seq_length": str(data.max_seq_length),
        # Batching layouts train on the same examples per step; only the length-grouped
        # sampler orders them differently, and the order is part of a resumable state.
        "length_grouped": str(length_grouped),
        "train_data_sha256": prepared.train_sha256,
    }


def prepare_resume(
    checkpoint_dir: Path, identity: dict[str, str], training_arguments: Any
) -> Checkpoint | None:
    """Claim ``checkpoint_dir`` for this run and drop incomplete checkpoints (once per node),
    then return the checkpoint to resume from, if any."""
    with training_arguments.main_process_first(local=True):
        if training_arguments.local_process_index == 0:
            claim(checkpoint_dir, identity)
            for removed in remove_incomplete(checkpoint_dir):
                say(f"checkpoint: removed incomplete {removed}")
    return latest_complete(checkpoint_dir)

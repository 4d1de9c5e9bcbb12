"""Spot safety: a killed run resumes from its last complete checkpoint and ends on time.

The sequence is what a spot interruption does to a SageMaker job: the process is killed
outright (SIGKILL), started again, stopped gracefully (SIGTERM, where train.py saves a
checkpoint at once), and started again until it finishes.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.training import (
    REPO_ROOT,
    TRAIN_SCRIPT,
    chat_records,
    subprocess_env,
    write_jsonl,
)
from training_scripts import checkpoints

MAX_STEPS = 60


def start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO_ROOT,
    )


def signal_at_step(process: subprocess.Popen[str], step: int, signum: int) -> list[str]:
    """Read stdout until ``progress: step=<step or more>``, then send ``signum``."""
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        match = re.match(r"progress: step=(\d+)/", line)
        if match and int(match.group(1)) >= step:
            process.send_signal(signum)
            break
    lines.extend(line.rstrip("\n") for line in process.stdout)
    process.wait(timeout=120)
    return lines


def test_kill_then_sigterm_then_finish(tiny_model: Path, tmp_path: Path) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(32))
    out = tmp_path / "out"
    argv = [
        "--model_name_or_path", str(tiny_model), "--train_file", str(train_file),
        "--output_dir", str(out), "--max_steps", str(MAX_STEPS), "--logging_steps", "1",
        "--save_steps", "5", "--save_total_limit", "2", "--per_device_train_batch_size", "2",
        "--max_seq_length", "64",
    ]  # fmt: skip
    checkpoint_dir = out / "checkpoints"

    # 1. Killed without warning mid-training.
    first = start(argv)
    signal_at_step(first, 7, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    saved = checkpoints.latest_complete(checkpoint_dir)
    assert saved is not None and 5 <= saved.step < MAX_STEPS

    # 2. Started again: resumes from that checkpoint; then stopped gracefully.
    second = start(argv)
    lines = signal_at_step(second, saved.step + 3, signal.SIGTERM)
    assert second.returncode == 143, second.stderr.read() if second.stderr else ""
    assert f"checkpoint: resuming from {saved.path} (step {saved.step})" in lines
    progress = [
        int(m.group(1)) for m in map(re.compile(r"progress: step=(\d+)/").match, lines) if m
    ]
    assert progress[0] == saved.step and progress[1] == saved.step + 1
    interrupted = [line for line in lines if line.startswith("interrupted: SIGTERM at step")]
    assert interrupted, lines
    # The SIGTERM checkpoint is taken at the step boundary where the signal was noticed.
    stopped_at = int(re.search(r"\(checkpoint step (\d+)\)", interrupted[0]).group(1))
    latest = checkpoints.latest_complete(checkpoint_dir)
    assert latest is not None and latest.step == stopped_at
    assert stopped_at >= saved.step + 3
    assert not (out / "metrics.json").exists()

    # 3. Started again: resumes from the SIGTERM checkpoint and finishes at the same total.
    third = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *argv],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr
    assert f"checkpoint: resuming from {latest.path} (step {stopped_at})" in third.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS
    assert metrics["resumed_from_step"] == stopped_at
    with (out / "training_metrics.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(1, MAX_STEPS + 1))  # no step lost, none logged twice

"""Helpers shared by the training-script tests (data records, running train.py, parsing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "training_scripts" / "train.py"

QUESTIONS = [
    ("What colour is the sky?", "blue"),
    ("What colour is grass?", "green"),
    ("What is 2 plus 2?", "4"),
    ("Name a fruit.", "apple"),
    ("What do cows drink?", "water"),
    ("Say yes.", "yes"),
    ("Say no.", "no"),
    ("What is the opposite of hot?", "cold"),
]


def chat_records(n: int) -> list[dict[str, Any]]:
    """``messages`` records cycling through :data:`QUESTIONS` (a pattern a tiny model learns)."""
    records = []
    for i in range(n):
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        records.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": f"The answer is {answer}."},
                ]
            }
        )
    return records


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def read_metric_lines(stdout: str, tag: str) -> list[dict[str, str]]:
    """Parse ``tag: k=v k=v`` lines."""
    rows = []
    for line in stdout.splitlines():
        if line.startswith(f"{tag}: "):
            rows.append(dict(pair.split("=", 1) for pair in line[len(tag) + 2 :].split()))
    return rows


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["OMP_NUM_THREADS"] = "1"  # see one_torch_thread in conftest.py
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def run_script(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run train.py as a separate process, the way SageMaker and the job service do."""
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *map(str, argv)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )

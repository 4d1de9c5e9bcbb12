"""train.py under torchrun: two CPU processes (gloo), one set of outputs."""

from __future__ import annotations

import json
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


def test_torchrun_two_processes(tiny_model: Path, tmp_path: Path) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(40))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(TRAIN_SCRIPT)]
    command += ["--model_name_or_path", str(tiny_model), "--train_file", str(train_file)]
    command += ["--output_dir", str(out), "--method", "lora", "--max_steps", "10"]
    command += ["--logging_steps", "2", "--max_seq_length", "64", "--validation_split", "0.1"]
    command += ["--per_device_train_batch_size", "2", "--merge_adapter", "true"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Only rank 0 reports.
    assert result.stdout.count("done: outputs in") == 1
    assert result.stdout.count("progress: step=2/10") == 1
    config = json.loads((out / "training_config.json").read_text())
    assert config["resolved"]["world_size"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 10
    # Tokens are summed over both processes: 10 steps of 2 x 2 examples go through more than
    # one epoch of the 36 training examples, which one process alone (20) would not see.
    assert metrics["train_tokens"] > config["data"]["train_tokenization"]["tokens"]
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    AutoPeftModelForCausalLM.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out / "merged")

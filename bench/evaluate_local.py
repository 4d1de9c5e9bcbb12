#!/usr/bin/env python
"""Local-model evaluation speed: one prompt at a time against batched generation, same scores.

Runs ``finetuning.evaluation.evaluator.evaluate`` (what ``finetune evaluate --local-model`` and
the evaluation Processing job call) on SmolLM2-135M-Instruct over a generated test set of
document-classification chats, once per batch size. Batch size 1 is the per-sample path the
CLI had before batching (one prompt, no padding, an all-ones attention mask, the model's EOS).
Each run reports

    samples/s (wall) = samples answered / wall-clock seconds of generation (model loading excluded)
    samples/s (CPU)  = samples answered / CPU seconds of this process during generation

and the run's scores and answers are compared with batch size 1's, answer by answer. CPU time
is given beside wall time because the 2-core machine this runs on is shared: wall time measures
the neighbours too (the load average is recorded).

Usage (results go to stdout and ``bench/results/evaluate_local_<model>.json``)::

    python bench/evaluate_local.py                                  # 48 items, batch 1 and 16
    python bench/evaluate_local.py --batch-sizes 1,16,48 --max-tokens 32
    python bench/evaluate_local.py --model tiny --items 24          # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from train_cpu_vs_trl import prepare_model  # noqa: E402  (one GGUF conversion for bench/)

RESULTS_DIR = REPO_ROOT / "bench" / "results"
LABELS = ("invoice", "letter", "memo", "receipt")
NAMES = ("Acme Corp", "Jane Doe", "Northwind", "Blue Harbor Ltd", "Sam Lee", "Orbit Labs")
ITEMS = ("consulting", "printer paper", "coffee", "software licence", "repairs", "catering")


def document(label: str, rng: random.Random) -> str:
    """A short document of one type, about 40 to 60 tokens."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    amount = f"${rng.randint(5, 5000):,}.{rng.randint(0, 99):02d}"
    day = f"{rng.choice(('March', 'June', 'October'))} {rng.randint(1, 28)}"
    if label == "invoice":
        return (
            f"INVOICE No. {rng.randint(1000, 9999)}. Bill to: {name}. {item.title()}: {amount}. "
            f"Payment due within {rng.choice((14, 30, 60))} days of {day}."
        )
    if label == "letter":
        return (
            f"Dear {name}, thank you for your note of {day}. I am writing about the {item} "
            f"we discussed and will call you next week. Yours sincerely, {rng.choice(NAMES)}."
        )
    if label == "memo":
        return (
            f"MEMO. To: all staff. From: {name}. Subject: {item}. From {day} the budget for "
            f"{item} is {amount} per team; ask your manager before ordering more."
        )
    return (
        f"RECEIPT. {name}, store {rng.randint(10, 999)}. {item.title()} {amount}. "
        f"Paid by card on {day}. Thank you for shopping with us."
    )


def test_set(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` chats asking for a document's type; the reference is the one-word label."""
    rng = random.Random(seed)
    records = []
    for index in range(n):
        label = LABELS[index % len(LABELS)]
        question = f"What type of document is this: {', '.join(LABELS)}?\n\n{document(label, rng)}"
        records.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": label},
                ]
            }
        )
    return records


def run_once(model: Path, data: Path, batch_size: int, max_tokens: int) -> dict[str, Any]:
    import torch

    from finetuning.evaluation.evaluator import EvaluationSettings, evaluate
    from finetuning.evaluation.runner import RunOptions
    from finetuning.evaluation.samples import read_test_set
    from finetuning.evaluation.targets import InferenceParameters, LocalModelTarget

    samples = read_test_set(data)
    target = LocalModelTarget(model, device="cpu")
    target.load()  # loading is not part of the figure
    settings = EvaluationSettings(
        params=InferenceParameters(max_tokens=max_tokens),
        run=RunOptions(concurrency=1, progress=False, batch_size=batch_size),
    )
    load_before = os.getloadavg()[0]
    cpu = time.process_time()
    document = evaluate(target, samples, settings)
    cpu = time.process_time() - cpu
    metrics = document.tuned.metrics
    quality = ("accuracy", "macro_f1", "weighted_f1", "correct_predictions")
    return {
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "samples": len(samples),
        "generation_seconds_wall": metrics["generation_seconds"],
        "generation_seconds_cpu": round(cpu, 3),
        "samples_per_second_wall": metrics["samples_per_second"],
        "samples_per_second_cpu": round(len(samples) / cpu, 4),
        "output_tokens": metrics["output_tokens"],
        "stopped_by_model": sum(r["stop_reason"] == "end_turn" for r in document.tuned.results),
        "scores": {k: metrics.get(k) for k in quality},
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "answers": [r["response_text"] for r in document.tuned.results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny, or a model directory")
    parser.add_argument("--items", type=int, default=48, help="test items generated")
    parser.add_argument("--batch-sizes", default="1,16", help="comma-separated; 1 comes first")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=32,
        help="new tokens at most per answer (the CLI's default is 512; the model's rambling "
        "answers hit this cap, so it sets the run's length)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "finetune-bench"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sizes = sorted({int(x) for x in args.batch_sizes.split(",")} | {1})
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model = prepare_model(args.model, cache)
    work = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    data = work / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in test_set(args.items)))

    runs = []
    for size in sizes:
        run = run_once(model, data, size, args.max_tokens)
        runs.append(run)
        print(
            f"batch {size:3d}: {run['samples']} samples, {run['output_tokens']} new tokens, "
            f"{run['generation_seconds_wall']:.1f} s wall ({run['samples_per_second_wall']:.3f}/s),"
            f" {run['generation_seconds_cpu']:.1f} s CPU ({run['samples_per_second_cpu']:.3f}/s),"
            f" scores {run['scores']}, load {run['load_average_1min']}",
            flush=True,
        )
    baseline = runs[0]
    for run in runs:
        run["same_answers_as_batch_1"] = run["answers"] == baseline["answers"]
        run["same_scores_as_batch_1"] = run["scores"] == baseline["scores"]
        run["speedup_wall"] = round(
            run["samples_per_second_wall"] / baseline["samples_per_second_wall"], 2
        )
        run["speedup_cpu"] = round(
            run["samples_per_second_cpu"] / baseline["samples_per_second_cpu"], 2
        )
    report = {
        "model": args.model,
        "items": args.items,
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
    }
    name = Path(args.model).name
    results = RESULTS_DIR / f"evaluate_local_{name}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    summary = [
        {k: r[k] for k in r if k not in ("answers",)} | {"answers": len(r["answers"])} for r in runs
    ]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

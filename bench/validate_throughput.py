"""Validation throughput and peak memory against bare ``json.loads`` on the same lines.

Generates a text-only JSONL file of the requested size in a temporary directory (never in
the repository), then, each in a fresh Python process so that peak memory is that run's own:

1. ``bare``: read the file line by line and ``json.loads`` every line (the floor);
2. ``validate``: ``finetuning.data.validate_path`` on the same file for the given model.

Prints MB/s for both, the ratio, and the peak resident memory of each process.

    python bench/validate_throughput.py --size-mb 1024
    python bench/validate_throughput.py --size-mb 256 --model amazon.titan-text-express-v1

Goals (issue #4): at least 50 MB/s, within 3x of the bare parse, peak memory under 200 MB
whatever the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "customer",
    "order",
    "shipment",
    "delivery",
    "address",
    "payment",
    "terms",
    "net",
    "thirty",
    "days",
    "account",
    "number",
    "reference",
    "balance",
    "credit",
    "memo",
    "tax",
    "rate",
    "subtotal",
    "quantity",
    "unit",
    "price",
    "description",
    "item",
    "product",
    "service",
    "date",
    "period",
    "summary",
    "report",
    "quarter",
    "revenue",
    "growth",
    "margin",
    "cost",
    "forecast",
    "budget",
    "approval",
    "department",
    "manager",
    "review",
    "signature",
    "page",
]


def generate(path: Path, size_bytes: int, model_format: str, seed: int = 7) -> int:
    """Write unique, realistic text-only records until the file reaches ``size_bytes``."""
    rng = random.Random(seed)
    written = records = 0
    with path.open("wb") as out:
        while written < size_bytes:
            question = " ".join(rng.choices(WORDS, k=rng.randint(60, 260)))
            answer = " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))
            question = f"Record {records}: {question}?"
            if model_format == "bedrock-conversation-2024":
                record = {
                    "schemaVersion": "bedrock-conversation-2024",
                    "system": [{"text": "You extract fields from business documents."}],
                    "messages": [
                        {"role": "user", "content": [{"text": question}]},
                        {"role": "assistant", "content": [{"text": answer}]},
                    ],
                }
            else:
                record = {"prompt": question, "completion": answer}
            line = json.dumps(record).encode() + b"\n"
            out.write(line)
            written += len(line)
            records += 1
    return records


_BARE = """
import json, resource, sys, time
start, cpu = time.perf_counter(), time.process_time()
count = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        json.loads(line)
        count += 1
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(cpu, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, count)
"""

_VALIDATE = """
import resource, sys, time
from finetuning.data import validate_path
start, cpu = time.perf_counter(), time.process_time()
report = validate_path(sys.argv[1], sys.argv[2])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(cpu, elapsed, peak, report.records, report.errors, report.warnings, report.tokens)
"""


def run(script: str, *args: str) -> tuple[float, float, float, list[str]]:
    """Run ``script`` in a fresh interpreter.

    Returns CPU seconds, wall seconds, the process's own peak RSS in MB, and the rest of its
    output. CPU time is the figure compared: this machine's cores are shared, so wall time
    measures the neighbours as much as the code.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    output = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    return float(output[0]), float(output[1]), int(output[2]) / 1024, output[3:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size (default: 1024)")
    parser.add_argument("--model", default="amazon.nova-lite-v1:0:300k", help="model id")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from finetuning.data.models import resolve_model

    family = resolve_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="validate-bench-"))
    path = tmp / "bench.jsonl"
    start = time.perf_counter()
    records = generate(path, args.size_mb * 1024 * 1024, family.default_format.value)
    size_mb = path.stat().st_size / 1e6
    print(
        f"generated {path} ({size_mb:,.0f} MB, {records:,} records) in "
        f"{time.perf_counter() - start:.0f} s"
    )
    try:
        bare_runs, validate_runs = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same neighbours
            bare_runs.append(run(_BARE, str(path)))
            validate_runs.append(run(_VALIDATE, str(path), args.model))
        bare, bare_wall, bare_peak, _ = min(bare_runs)
        validated, validate_wall, validate_peak, summary = min(validate_runs)
        print(
            f"bare json.loads : {size_mb / bare:7.1f} MB/s of CPU time ({bare:.1f} s CPU, "
            f"{bare_wall:.1f} s wall)  peak RSS {bare_peak:.0f} MB"
        )
        print(
            f"validate_path   : {size_mb / validated:7.1f} MB/s of CPU time ({validated:.1f} s "
            f"CPU, {validate_wall:.1f} s wall)  peak RSS {validate_peak:.0f} MB"
        )
        print(f"ratio           : {validated / bare:.2f}x the bare parse (CPU time)")
        print("report          : records={} errors={} warnings={} tokens={}".format(*summary))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())

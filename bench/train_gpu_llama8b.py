#!/usr/bin/env python
"""GPU throughput and MFU: train.py LoRA on a random-weight Llama-3-8B-shaped model in bf16.

Runs on one NVIDIA GPU with at least 80 GB (H100, H200). It writes a random-weight model with
Llama-3-8B's shapes (32 layers, hidden 4096, MLP 14336, 32 query / 8 key-value heads, vocabulary
128256) to local disk, generates variable-length chat data, runs ``training_scripts/train.py
--method lora --bf16 true`` (``--batching auto``: padding-free rows through flash-attention's
variable-length path, 6 examples per micro-batch, about 4,000 tokens, 4 micro-batches per step)
and reads the per-step ``tokens_per_second`` it logs. The first ``--warmup`` steps are
left out; the figure is the median over the rest.

FLOP convention (useful work per trained token; recomputation is never counted):

* ``lora`` (primary): the frozen base needs a forward pass (2 N) and gradients with respect to
  its inputs (2 N), but no weight gradients: 4 N, where N counts the weights of every matrix
  multiplication (all linear layers and the LM head, not the embedding lookup). The adapters cost
  6 N_lora. Attention adds 4 L d c per token forward (QK^T and AV over c attended positions)
  and twice that backward: 12 L d c, with c the mean causal context of a token *within its own
  example* (packed examples do not attend to each other, so that is the useful work).
* ``6N``: the full-fine-tuning convention (6 N + 12 L d c), often quoted for LoRA runs too; it
  credits weight gradients LoRA never computes, so it reads 1.5x higher.

MFU = tokens/s x FLOPs per token / peak dense bf16 FLOP/s of the GPU (H100 SXM and H200: 989.4
TFLOP/s; H100 PCIe: 756 TFLOP/s. NVIDIA lists "with sparsity" figures, twice these:
https://www.nvidia.com/en-us/data-center/h100/ and https://www.nvidia.com/en-us/data-center/h200/).

Usage::

    python bench/train_gpu_llama8b.py                   # ~15 minutes, most of it writing 16 GB
    python bench/train_gpu_llama8b.py --steps 40 --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "train_gpu_llama8b.json"
LLAMA3_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
# Dense bf16 tensor-core peaks, by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H100 PCIe": 756e12, "H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
WORDS = [
    "invoice",
    "total",
    "owner",
    "share",
    "date",
    "address",
    "letter",
    "form",
    "report",
    "memo",
    "answer",
    "question",
]


def peak_flops(device_name: str) -> float:
    for key, value in PEAK_BF16_FLOPS.items():  # most specific first
        if key in device_name:
            return value
    raise SystemExit(f"no peak bf16 FLOP/s known for {device_name!r}; add it to PEAK_BF16_FLOPS")


def write_model(target: Path) -> None:
    """A random-weight Llama-3-8B-shaped model in bf16 plus a small BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(REPO_ROOT))
    from finetuning.testing import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(WORDS)
    config = LlamaConfig(
        **LLAMA3_8B,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def write_data(path: Path, n: int, seed: int = 0) -> None:
    """Chats from ~60 to ~3000 tokens, log-uniform: the spread real SFT data has."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for _ in range(n):
            prompt = " ".join(rng.choices(WORDS, k=round(10 ** rng.uniform(1.5, 3.2))))
            answer = " ".join(rng.choices(WORDS, k=round(10 ** rng.uniform(1.0, 2.5))))
            record = {
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer},
                ]
            }
            handle.write(json.dumps(record) + "\n")


def mean_context(model_dir: Path, data: Path, max_seq_length: int) -> float:
    """Mean number of positions a trained token attends to, within its own example."""
    sys.path.insert(0, str(REPO_ROOT))
    from transformers import AutoTokenizer

    from training_scripts.data import load_data
    from training_scripts.tokenization import ConversationTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    conversations = load_data(str(data), "--train_file", "auto").conversations
    examples, _ = ConversationTokenizer(tokenizer, max_seq_length=max_seq_length)(conversations)
    lengths = [len(e) for e in examples]
    return sum(n * (n + 1) / 2 for n in lengths) / sum(lengths)


def flops_per_token(lora_r: int, context: float) -> dict[str, float]:
    d, ff = LLAMA3_8B["hidden_size"], LLAMA3_8B["intermediate_size"]
    layers, vocab = LLAMA3_8B["num_hidden_layers"], LLAMA3_8B["vocab_size"]
    kv = d * LLAMA3_8B["num_key_value_heads"] // LLAMA3_8B["num_attention_heads"]
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d)]  # q k v o gate up down
    matmul_params = layers * sum(i * o for i, o in shapes) + d * vocab
    lora_params = layers * sum(lora_r * (i + o) for i, o in shapes)  # all-linear, not lm_head
    attention = 12 * layers * d * context
    return {
        "matmul_params": matmul_params,
        "lora_params": lora_params,
        "lora": 4 * matmul_params + 6 * lora_params + attention,
        "6N": 6 * matmul_params + attention,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--max-seq-length", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=6, help="examples per micro-batch")
    parser.add_argument("--batching", default="auto", help="train.py's --batching")
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--attn-implementation", default="auto")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "bench-llama8b"))
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="check this script's plumbing on CPU with a 2-layer model of the same width ratios; "
        "prints no MFU",
    )
    args = parser.parse_args()

    import torch

    if args.cpu_smoke:
        LLAMA3_8B.update(hidden_size=128, intermediate_size=448, num_hidden_layers=2)
        LLAMA3_8B.update(num_attention_heads=4, num_key_value_heads=1, vocab_size=4096)
        device_name, peak = "cpu (smoke test)", None
    elif not torch.cuda.is_available():
        raise SystemExit("needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    else:
        device_name = torch.cuda.get_device_name()
        peak: float | None = peak_flops(device_name)
    work = Path(args.workdir)
    model_dir = work / ("smoke-model" if args.cpu_smoke else "llama3-8b-shaped")
    data = work / "train.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "config.json").is_file():
        write_model(model_dir)
    write_data(data, 40 if args.cpu_smoke else args.records)

    command = [sys.executable, str(REPO_ROOT / "training_scripts" / "train.py")]
    command += ["--model_name_or_path", str(model_dir), "--train_file", str(data)]
    command += ["--output_dir", str(work / "out"), "--checkpoint_dir", str(work / "ckpt")]
    command += ["--method", "lora", "--bf16", str(not args.cpu_smoke), "--lora_r", str(args.lora_r)]
    command += ["--max_seq_length", str(args.max_seq_length), "--batching", args.batching]
    command += ["--per_device_train_batch_size", str(args.batch_size)]
    command += ["--gradient_accumulation_steps", str(args.grad_accum)]
    command += ["--gradient_checkpointing", str(args.gradient_checkpointing)]
    command += ["--attn_implementation", args.attn_implementation]
    command += ["--max_steps", str(args.steps), "--logging_steps", "1"]
    command += ["--save_steps", str(10 * args.steps), "--warmup_ratio", "0"]
    for stale in ("out", "ckpt"):
        subprocess.run(["rm", "-rf", str(work / stale)], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    sys.stdout.write(run.stdout[-4000:])
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-8000:])
        raise SystemExit(run.returncode)

    rates = [float(v) for v in re.findall(r" tokens_per_second=([-+0-9.eE]+)", run.stdout)]
    steady = rates[args.warmup :]
    tokens_per_second = statistics.median(steady)
    attention_model = re.search(r"attention=(\S+)", run.stdout)
    context = mean_context(model_dir, data, args.max_seq_length)
    flops = flops_per_token(args.lora_r, context)
    report = {
        "device": device_name,
        "peak_bf16_flops": peak,
        "attn_implementation": attention_model.group(1) if attention_model else None,
        "batching": (re.search(r"batching=(\S+)", run.stdout) or [None, None])[1],
        "settings": vars(args),
        "tokens_per_second_median": tokens_per_second,
        "tokens_per_second_steps": rates,
        "mean_attended_context": context,
        "flops_per_token": flops,
        "mfu_lora": tokens_per_second * flops["lora"] / peak if peak else None,
        "mfu_6N": tokens_per_second * flops["6N"] / peak if peak else None,
        "metrics_json": json.loads((work / "out" / "metrics.json").read_text()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: report[k] for k in ("device", "tokens_per_second_median", "mfu_lora", "mfu_6N")},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

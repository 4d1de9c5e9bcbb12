#!/usr/bin/env bash
# Peak RSS of a CPU LoRA run of SmolLM2-135M-Instruct: train.py before issue #16 (commit cab0099,
# packing on: 8 rows of 512 tokens per micro-batch) against this tree at the same tokens per
# micro-batch (24 examples of ~150 tokens), packed and with the automatic (padding-free) layout.
# Two optimizer steps each, one torch thread; /usr/bin/time's maximum resident set size.
# Needs the model prepared by bench/train_cpu_vs_trl.py (in $CACHE/smollm2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
CACHE=${CACHE:-/tmp/finetune-bench}
WORK=$(mktemp -d)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$WORK/old" && git -C "$ROOT" archive cab0099 training_scripts finetuning | tar -x -C "$WORK/old"
PYTHONPATH=$ROOT "$PY" -c "
import json, sys; sys.path.insert(0, '$ROOT/bench'); import train_cpu_vs_trl as b
open('$WORK/data.jsonl', 'w').write(''.join(json.dumps(r) + '\n' for r in b.records('short', 48, 1)))"
COMMON=(--model_name_or_path "$CACHE/smollm2" --train_file "$WORK/data.jsonl" --method lora
        --max_steps 2 --logging_steps 1 --save_steps 1000 --max_seq_length 512 --bf16 false)
run() {
  local name=$1 src=$2; shift 2
  PYTHONPATH=$src /usr/bin/time -f "$name peak_rss_kib=%M wall_s=%e" \
    "$PY" "$src/training_scripts/train.py" "${COMMON[@]}" --output_dir "$WORK/$name" "$@" \
    > "$WORK/$name.log" 2>&1
  tail -1 "$WORK/$name.log"
}
run before-packed-8-rows "$WORK/old" --per_device_train_batch_size 8
run now-packed-24-examples "$ROOT" --per_device_train_batch_size 24 --batching packed
run now-auto-24-examples "$ROOT" --per_device_train_batch_size 24
run now-auto-8-examples "$ROOT" --per_device_train_batch_size 8

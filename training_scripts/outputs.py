"""What a run leaves in ``--output_dir``: the model (and the merged model), the tokenizer, the
serving handler, ``metrics.json`` and ``training_config.json``; and the closing ``metrics:``,
``progress:`` and ``done:`` lines."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from training_scripts import modeling
from training_scripts.attention import set_attention
from training_scripts.console import say
from training_scripts.reporting import metric_line, perplexity

if TYPE_CHECKING:
    from training_scripts.arguments import ScriptArguments
    from training_scripts.checkpoints import Checkpoint
    from training_scripts.data import PreparedData
    from training_scripts.fit import FitResult
    from training_scripts.modeling import PreparedModel
    from training_scripts.tokenization import TokenizedData
    from training_scripts.trainer import FinetuneTrainer

METRICS_FILE = "metrics.json"
SERVING_HANDLER = "code/inference.py"
TRAINING_CONFIG_FILE = "training_config.json"
MERGED_DIR = "merged"
LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "trl",
    "datasets",
    "tokenizers",
    "safetensors",
    "bitsandbytes",
    "flash-attn",
)


def save_model(
    trainer: FinetuneTrainer,
    tokenizer: Any,
    prepared: PreparedModel,
    args: ScriptArguments,
    output_dir: Path,
) -> None:
    """The model for inference (full state dict, cache on, its own attention), the tokenizer,
    the serving handler and, with ``--merge_adapter``, the merged model."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    saved_config = getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None)
    if saved_config is not None:
        saved_config.use_cache = True  # the saved config is for inference
    if prepared.training_attention != prepared.attn_implementation:
        set_attention(trainer.accelerator.unwrap_model(trainer.model), prepared.attn_implementation)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        # model.tar.gz is what the serving container gets: its inference toolkit imports
        # code/inference.py from there (docs/training.md, "Outputs").
        (output_dir / SERVING_HANDLER).parent.mkdir(exist_ok=True)
        (output_dir / SERVING_HANDLER).write_bytes(
            Path(__file__).with_name("inference.py").read_bytes()
        )
        if args.model.merge_adapter:
            say(f"merge: writing the adapter merged into the base to {output_dir / MERGED_DIR}")
            modeling.save_merged_model(
                args.model, output_dir, output_dir / MERGED_DIR, tokenizer, prepared.dtype
            )
    trainer.accelerator.wait_for_everyone()


def run_metrics(
    trainer: FinetuneTrainer,
    fitted: FitResult,
    eval_loss: float | None,
    data: TokenizedData,
    resume: Checkpoint | None,
) -> dict[str, Any]:
    """The contents of ``metrics.json``."""
    state = trainer.state
    train_runtime = fitted.train_runtime
    tokens_per_second = trainer.train_tokens / train_runtime if train_runtime > 0 else None
    # The log history survives resumes (it is part of each checkpoint's trainer state).
    last_loss = next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None)
    return {
        "train_loss": last_loss,
        "train_loss_mean": fitted.train_loss_mean,
        "eval_loss": eval_loss,
        "eval_perplexity": perplexity(eval_loss) if eval_loss is not None else None,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epoch": state.epoch,
        "train_runtime_seconds": train_runtime,
        "train_tokens": trainer.train_tokens,
        "train_tokens_per_second": tokens_per_second,
        "train_examples": len(data.train),
        "validation_examples": len(data.validation),
        "dropped_examples": data.train_report.dropped_no_trainable_tokens
        + data.validation_report.dropped_no_trainable_tokens,
        "truncated_examples": data.train_report.truncated + data.validation_report.truncated,
        "resumed_from_step": resume.step if resume else None,
        "best_checkpoint": (
            state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
        ),
        "stopped_early": state.global_step < state.max_steps,
        "peak_rss_gib": peak_rss_gib(),
        "peak_gpu_memory_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        ),
    }


def training_config(
    args: ScriptArguments,
    prepared_data: PreparedData,
    data: TokenizedData,
    prepared: PreparedModel,
    training_arguments: Any,
    *,
    bf16: bool,
) -> dict[str, Any]:
    """The contents of ``training_config.json``: the arguments, what was resolved from them,
    the data's sources and tokenization, and the library versions."""
    plan = prepared.plan
    return {
        "arguments": args.to_dict(),
        "resolved": {
            "bf16": bf16,
            "dtype": str(prepared.dtype).removeprefix("torch."),
            "attn_implementation": prepared.attn_implementation,
            "training_attn_implementation": prepared.training_attention,
            "batching": {
                "requested": args.data.batching,
                "mode": plan.mode,
                "length_grouped": plan.length_grouped,
                "variable_length_attention": plan.varlen,
                "reason": plan.reason,
                "estimated_relative_compute": plan.relative_cost,
                "examples_per_micro_batch": args.run.per_device_train_batch_size,
            },
            "chat_template": "fallback" if data.fallback_template else "tokenizer",
            "save_steps": training_arguments.save_steps,
            "world_size": training_arguments.world_size,
            "trainable_parameters": prepared.trainable_parameters,
            "total_parameters": prepared.total_parameters,
        },
        "data": {
            **prepared_data.sources,
            "train_tokenization": data.train_report.as_dict(),
            "validation_tokenization": data.validation_report.as_dict(),
        },
        "versions": library_versions(),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def say_finished(trainer: FinetuneTrainer, metrics: dict[str, Any], output_dir: Path) -> None:
    """The closing lines: ``metrics: final ...``, the last ``progress:`` and ``done:``."""
    state = trainer.state
    say(
        metric_line(
            "final",
            {
                "global_step": state.global_step,
                "train_loss_mean": metrics["train_loss_mean"],
                "final_eval_loss": metrics["eval_loss"],
                "train_runtime": metrics["train_runtime_seconds"],
                "train_tokens_per_second": metrics["train_tokens_per_second"],
                "peak_rss_gib": metrics["peak_rss_gib"],
            },
        )
    )
    say(f"progress: step={state.global_step}/{state.max_steps}")
    say(f"done: outputs in {output_dir}")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def peak_rss_gib() -> float | None:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write through a temporary file, so a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

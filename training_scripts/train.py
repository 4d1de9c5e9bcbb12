#!/usr/bin/env python
"""Fine-tune a causal language model: full, LoRA or QLoRA.

Runs the same way as a SageMaker training job (hyperparameters arrive as ``--name value``,
defaults come from ``SM_*`` variables), under ``torchrun`` on several GPUs or nodes, and on a
laptop CPU::

    python training_scripts/train.py --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct \\
        --train_file data/train.jsonl --output_dir out --method lora --max_steps 100
    torchrun --nproc_per_node 8 training_scripts/train.py ... --method full --fsdp true

Exit codes: 0 done; 2 bad usage or bad data (one ``error: ...`` line on stderr, nothing
written); 1 training failed (traceback, then an ``error: ...`` line); 143 stopped by SIGTERM
after saving a checkpoint that the next start resumes from. docs/training.md has the whole
contract: arguments, data formats, output layout, log lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python training_scripts/train.py, torchrun, SageMaker): make the source
    # dir, which holds training_scripts/ and finetuning/data/, importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training_scripts.arguments import ScriptArguments, UsageError, parse_args
from training_scripts.data import Conversation, DataError, load_data, split_validation

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from training_scripts.tokenization import TokenizationReport

METRICS_FILE = "metrics.json"
SERVING_HANDLER = "code/inference.py"
TRAINING_CONFIG_FILE = "training_config.json"
MERGED_DIR = "merged"
SIGTERM_EXIT_CODE = 143
# SageMaker reports the contents of this file as the training job's FailureReason.
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html
SAGEMAKER_FAILURE_FILE = Path("/opt/ml/output/failure")
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


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def say(message: str) -> None:
    """A line on stdout, from the main process only."""
    if is_main_process():
        print(message, flush=True)


@dataclass
class PreparedData:
    """Training and validation conversations, and where they came from."""

    train: list[Conversation]
    validation: list[Conversation]
    sources: dict[str, Any]
    train_sha256: str  # over all training files, identifies the data a checkpoint belongs to


def prepare_data(args: ScriptArguments) -> PreparedData:
    """Read, check and split the data: everything that can fail before a model loads."""
    data = args.data
    train = load_data(data.train_file or "", "--train_file", data.data_format)
    validation = None
    if data.validation_file:
        validation = load_data(data.validation_file, "--validation_file", data.data_format)
        if data.validation_split > 0:
            say("warning: --validation_split is ignored because validation data was given")
        train_conversations, validation_conversations = (
            train.conversations,
            validation.conversations,
        )
    else:
        train_conversations, validation_conversations = split_validation(
            train.conversations, data.validation_split
        )
    if args.run.early_stopping_patience is not None and not validation_conversations:
        raise UsageError(
            "--early_stopping_patience needs validation data: --validation_file or "
            "--validation_split"
        )
    validation_source: dict[str, Any] | None = None
    if validation is not None:
        validation_source = {"formats": validation.files, "sha256": validation.sha256}
    elif validation_conversations:
        validation_source = {"split_from_train": data.validation_split, "seed": 42}
    combined = hashlib.sha256("".join(sorted(train.sha256.values())).encode()).hexdigest()
    return PreparedData(
        train=train_conversations,
        validation=validation_conversations,
        sources={
            "train": {"formats": train.files, "sha256": train.sha256},
            "validation": validation_source,
        },
        train_sha256=combined,
    )


def describe(name: str, report: TokenizationReport, max_seq_length: int) -> str:
    line = (
        f"data: {name}: {report.records} records -> {report.examples} examples, "
        f"{report.tokens} tokens ({report.trainable_tokens} trained), {report.truncated} "
        f"truncated to {max_seq_length} tokens, {report.dropped_no_trainable_tokens} dropped "
        "with no trainable token"
    )
    if report.dropped_examples:
        line += f" (first: {', '.join(report.dropped_examples)})"
    return line


def run_identity(
    args: ScriptArguments, prepared: PreparedData, length_grouped: bool
) -> dict[str, str]:
    """What a checkpoint must match to be resumed by this command line."""
    model, data = args.model, args.data
    return {
        "model_name_or_path": str(model.model_name_or_path),
        "method": model.method,
        "lora": f"r={model.lora_r},alpha={model.lora_alpha},modules={model.lora_target_modules}",
        "max_seq_length": str(data.max_seq_length),
        # Batching layouts train on the same examples per step; only the length-grouped
        # sampler orders them differently, and the order is part of a resumable state.
        "length_grouped": str(length_grouped),
        "train_data_sha256": prepared.train_sha256,
    }


def build_training_arguments(
    args: ScriptArguments, *, bf16: bool, has_validation: bool, use_cpu: bool
) -> TrainingArguments:
    from transformers import TrainingArguments

    model, run = args.model, args.run
    evaluate_during_training = has_validation and run.eval_steps is not None
    early_stopping = run.early_stopping_patience is not None
    return TrainingArguments(
        output_dir=str(run.checkpoint_dir),
        num_train_epochs=run.num_train_epochs,
        max_steps=run.max_steps,
        learning_rate=run.learning_rate,
        lr_scheduler_type=run.lr_scheduler_type,
        warmup_steps=run.warmup_ratio,  # a float in [0, 1) is a fraction of the steps
        weight_decay=run.weight_decay,
        max_grad_norm=run.max_grad_norm,
        per_device_train_batch_size=run.per_device_train_batch_size,
        per_device_eval_batch_size=run.per_device_eval_batch_size,
        gradient_accumulation_steps=run.gradient_accumulation_steps,
        bf16=bf16,
        # Under FSDP, activation checkpointing goes through fsdp_config (no extra all-gather).
        activation_checkpointing=run.gradient_checkpointing and not run.fsdp,
        activation_checkpointing_kwargs={"use_reentrant": False},
        fsdp=True if run.fsdp else None,
        fsdp_config=(
            {"version": 2, "activation_checkpointing": run.gradient_checkpointing}
            if run.fsdp
            else None
        ),
        logging_strategy="steps",
        logging_steps=run.logging_steps,
        eval_strategy="steps" if evaluate_during_training else "no",
        eval_steps=run.eval_steps if evaluate_during_training else None,
        save_strategy="steps",
        # Early stopping goes back to the best evaluation, which needs a checkpoint at each.
        save_steps=run.eval_steps if early_stopping and run.eval_steps else run.save_steps,
        save_total_limit=run.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        # On SIGTERM (spot interruption, StopTrainingJob) save a checkpoint, then stop.
        enable_jit_checkpoint=True,
        seed=run.seed,
        data_seed=run.seed,
        report_to="none",
        disable_tqdm=True,
        # Evaluation reports eval_loss only; gathering every batch's logits would cost memory.
        prediction_loss_only=True,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=run.dataloader_num_workers,
        # Every LoRA parameter gets a gradient; skipping DDP's unused-parameter search is free.
        ddp_find_unused_parameters=False if model.method != "full" else None,
        use_cpu=use_cpu,
    )


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


class SigtermFlag:
    """Remembers a SIGTERM, then lets the Trainer's own handler save a checkpoint."""

    def __init__(self) -> None:
        self.received = False
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        if callable(self._previous):
            self._previous(signum, frame)


def checkpoint_on_sigterm_at_once(trainer: Any) -> None:
    """Make the Trainer's SIGTERM checkpoint start at the next step, not 3 seconds later.

    The delay exists to tell a SIGTERM that a SIGKILL follows at once from a graceful stop;
    SageMaker gives 120 seconds, and a checkpoint cut short by a kill is discarded on the next
    start anyway (see checkpoints.py). The attribute is internal to transformers, hence getattr.
    """
    for callback in trainer.callback_handler.callbacks:
        manager = getattr(callback, "jit_manager", None)
        if manager is not None and hasattr(manager, "kill_wait"):
            manager.kill_wait = 0


def train(args: ScriptArguments) -> int:
    """Run one training job; returns the process exit code."""
    # The Trainer and train.py install SIGTERM handlers; leave the process as it was found.
    original_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        return _train(args)
    finally:
        signal.signal(signal.SIGTERM, original_sigterm)


def _train(args: ScriptArguments) -> int:
    prepared = prepare_data(args)

    # torch and transformers load only now, so bad usage and bad data fail within a second.
    import torch
    from transformers import EarlyStoppingCallback, TrainerState, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from training_scripts import checkpoints, modeling
    from training_scripts.attention import set_attention
    from training_scripts.batching import (
        attention_pair_weight,
        attention_support,
        choose_batching,
        make_collator,
    )
    from training_scripts.packing import ListDataset
    from training_scripts.progress import StepProgress
    from training_scripts.reporting import ReportingCallback, metric_line, perplexity
    from training_scripts.tokenization import ConversationTokenizer, ensure_chat_template
    from training_scripts.trainer import FinetuneTrainer

    model_args, data_args, run_args = args.model, args.data, args.run
    output_dir = Path(run_args.output_dir or "")
    checkpoint_dir = Path(run_args.checkpoint_dir or "")
    bf16 = run_args.bf16 if run_args.bf16 is not None else modeling.bf16_supported()
    modeling.check_environment(model_args, run_args.fsdp)

    # -- tokens ------------------------------------------------------------------------------
    tokenizer = modeling.load_tokenizer(model_args)
    fallback_template = ensure_chat_template(tokenizer)
    if fallback_template:
        say("warning: the tokenizer has no chat template; using train.py's fallback template")
    to_examples = ConversationTokenizer(
        tokenizer,
        max_seq_length=data_args.max_seq_length,
        completion_only_loss=data_args.completion_only_loss,
        prompt_completion_chat_template=data_args.prompt_completion_chat_template,
    )
    train_examples, train_report = to_examples(prepared.train)
    validation_examples, validation_report = to_examples(prepared.validation)
    say(describe("train", train_report, data_args.max_seq_length))
    if validation_report.records:
        say(describe("validation", validation_report, data_args.max_seq_length))
    if not train_examples:
        raise DataError(
            f"--train_file {data_args.train_file}: none of the {train_report.records} records "
            f"has a trainable token within --max_seq_length {data_args.max_seq_length}"
        )

    # -- model -------------------------------------------------------------------------------
    set_seed(run_args.seed)
    dtype = modeling.resolve_dtype(model_args, bf16)
    attn_implementation = modeling.resolve_attn_implementation(
        model_args.attn_implementation, dtype
    )
    model = modeling.load_model(model_args, dtype=dtype, attn_implementation=attn_implementation)
    if torch.cuda.is_available() and model_args.method != "qlora" and not run_args.fsdp:
        # Where the Trainer would put it anyway; the packing check below then runs on the GPU.
        model.to(f"cuda:{modeling.local_rank()}")
    vocabulary = min(len(tokenizer), model.config.get_text_config().vocab_size)
    plan = choose_batching(
        data_args.batching,
        lengths=[len(e) for e in train_examples],
        batch_size=run_args.per_device_train_batch_size,
        max_seq_length=data_args.max_seq_length,
        support=attention_support(model, vocabulary, attn_implementation),
        pair_weight=attention_pair_weight(model.config),
    )
    if data_args.batching in ("padding_free", "packed") and plan.mode == "padded":
        say(f"warning: {plan.describe(run_args.per_device_train_batch_size)}")
    else:
        say(plan.describe(run_args.per_device_train_batch_size))
    training_attention = plan.kernel if plan.varlen else attn_implementation
    if training_attention != attn_implementation:
        set_attention(model, training_attention)
    if model_args.method in ("lora", "qlora"):
        model = modeling.attach_lora(model, model_args, run_args.gradient_checkpointing)
    trainable_parameters, total_parameters = modeling.count_parameters(model)
    say(
        f"model: {model_args.model_name_or_path} method={model_args.method} "
        f"dtype={str(dtype).removeprefix('torch.')} attention={training_attention} "
        f"batching={plan.mode} trainable_parameters={trainable_parameters} "
        f"total_parameters={total_parameters}"
    )

    collator = make_collator(plan, tokenizer.pad_token_id, data_args.max_seq_length)
    eval_dataset = ListDataset(validation_examples) if validation_examples else None

    # -- trainer -----------------------------------------------------------------------------
    try:
        training_arguments = build_training_arguments(
            args,
            bf16=bf16,
            has_validation=eval_dataset is not None,
            use_cpu=not torch.cuda.is_available(),
        )
    except ValueError as exc:  # e.g. an unknown --lr_scheduler_type, bf16 on an old GPU
        raise UsageError(f"invalid training configuration: {exc}") from None
    progress = StepProgress(lambda: trainer.tokens_seen)
    reporting = ReportingCallback(Path(run_args.output_data_dir or output_dir), progress.write)
    callbacks: list[Any] = [reporting, progress]
    if run_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(run_args.early_stopping_patience))
    trainer = FinetuneTrainer(
        model=model,
        args=training_arguments,
        train_dataset=ListDataset(train_examples),
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if plan.length_grouped:
        trainer.train_lengths = [len(e) for e in train_examples]
    # train.py prints its own lines and bar; the Trainer's printouts and bar would repeat them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    checkpoint_on_sigterm_at_once(trainer)

    # -- checkpoints -------------------------------------------------------------------------
    with training_arguments.main_process_first(local=True):
        if training_arguments.local_process_index == 0:
            checkpoints.claim(checkpoint_dir, run_identity(args, prepared, plan.length_grouped))
            for removed in checkpoints.remove_incomplete(checkpoint_dir):
                say(f"checkpoint: removed incomplete {removed}")
    resume = checkpoints.latest_complete(checkpoint_dir)
    reporting.prepare(resume.step if resume else None, trainer.is_world_process_zero())

    # -- training ----------------------------------------------------------------------------
    sigterm = SigtermFlag()
    train_runtime = 0.0
    train_loss_mean = None
    if resume is not None and checkpoints.reached_max_steps(resume, run_args.max_steps):
        say(f"checkpoint: {resume.path} is the last step of a finished run; writing outputs")
        # Trainer's own loader handles adapters, sharded and FSDP checkpoints alike.
        trainer._load_from_checkpoint(str(resume.path))
        trainer.state = TrainerState.load_from_json(str(resume.path / checkpoints.TRAINER_STATE))
    else:
        if resume is not None:
            say(f"checkpoint: resuming from {resume.path} (step {resume.step})")
        result = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        train_runtime = float(result.metrics.get("train_runtime", 0.0))
        train_loss_mean = result.training_loss
    trainer.flush_token_count()
    state = trainer.state
    if sigterm.received and state.global_step < state.max_steps:
        saved = checkpoints.latest_complete(checkpoint_dir)
        say(
            f"interrupted: SIGTERM at step {state.global_step}/{state.max_steps}; the next start "
            f"resumes from {saved.path if saved else 'the beginning'} "
            f"(checkpoint step {saved.step if saved else 0})"
        )
        return SIGTERM_EXIT_CODE

    eval_loss: float | None = None
    if eval_dataset is not None:
        last = reporting.last_eval_log
        if last.get("step") == state.global_step and not training_arguments.load_best_model_at_end:
            eval_loss = last["eval_loss"]
        else:
            eval_loss = trainer.evaluate()["eval_loss"]

    # -- outputs -----------------------------------------------------------------------------
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    saved_config = getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None)
    if saved_config is not None:
        saved_config.use_cache = True  # the saved config is for inference
    if training_attention != attn_implementation:
        set_attention(trainer.accelerator.unwrap_model(trainer.model), attn_implementation)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        # model.tar.gz is what the serving container gets: its inference toolkit imports
        # code/inference.py from there (docs/training.md, "Outputs").
        (output_dir / SERVING_HANDLER).parent.mkdir(exist_ok=True)
        (output_dir / SERVING_HANDLER).write_bytes(
            Path(__file__).with_name("inference.py").read_bytes()
        )
        if model_args.merge_adapter:
            say(f"merge: writing the adapter merged into the base to {output_dir / MERGED_DIR}")
            modeling.save_merged_model(
                model_args, output_dir, output_dir / MERGED_DIR, tokenizer, dtype
            )
    trainer.accelerator.wait_for_everyone()

    tokens_per_second = trainer.train_tokens / train_runtime if train_runtime > 0 else None
    # The log history survives resumes (it is part of each checkpoint's trainer state).
    last_loss = next((e["loss"] for e in reversed(state.log_history) if "loss" in e), None)
    metrics = {
        "train_loss": last_loss,
        "train_loss_mean": train_loss_mean,
        "eval_loss": eval_loss,
        "eval_perplexity": perplexity(eval_loss) if eval_loss is not None else None,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epoch": state.epoch,
        "train_runtime_seconds": train_runtime,
        "train_tokens": trainer.train_tokens,
        "train_tokens_per_second": tokens_per_second,
        "train_examples": len(train_examples),
        "validation_examples": len(validation_examples),
        "dropped_examples": train_report.dropped_no_trainable_tokens
        + validation_report.dropped_no_trainable_tokens,
        "truncated_examples": train_report.truncated + validation_report.truncated,
        "resumed_from_step": resume.step if resume else None,
        "best_checkpoint": (
            state.best_model_checkpoint if training_arguments.load_best_model_at_end else None
        ),
        "stopped_early": state.global_step < state.max_steps,
        "peak_rss_gib": peak_rss_gib(),
        "peak_gpu_memory_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        ),
    }
    if trainer.is_world_process_zero():
        write_json(output_dir / METRICS_FILE, metrics)
        write_json(
            output_dir / TRAINING_CONFIG_FILE,
            {
                "arguments": args.to_dict(),
                "resolved": {
                    "bf16": bf16,
                    "dtype": str(dtype).removeprefix("torch."),
                    "attn_implementation": attn_implementation,
                    "training_attn_implementation": training_attention,
                    "batching": {
                        "requested": data_args.batching,
                        "mode": plan.mode,
                        "length_grouped": plan.length_grouped,
                        "variable_length_attention": plan.varlen,
                        "reason": plan.reason,
                        "estimated_relative_compute": plan.relative_cost,
                        "examples_per_micro_batch": run_args.per_device_train_batch_size,
                    },
                    "chat_template": "fallback" if fallback_template else "tokenizer",
                    "save_steps": training_arguments.save_steps,
                    "world_size": training_arguments.world_size,
                    "trainable_parameters": trainable_parameters,
                    "total_parameters": total_parameters,
                },
                "data": {
                    **prepared.sources,
                    "train_tokenization": train_report.as_dict(),
                    "validation_tokenization": validation_report.as_dict(),
                },
                "versions": library_versions(),
                "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            },
        )
    say(
        metric_line(
            "final",
            {
                "global_step": state.global_step,
                "train_loss_mean": train_loss_mean,
                "final_eval_loss": eval_loss,
                "train_runtime": train_runtime,
                "train_tokens_per_second": tokens_per_second,
                "peak_rss_gib": metrics["peak_rss_gib"],
            },
        )
    )
    say(f"progress: step={state.global_step}/{state.max_steps}")
    say(f"done: outputs in {output_dir}")
    return 0


def report_error(message: str) -> None:
    """One ``error:`` line on stderr; on SageMaker also the job's failure reason."""
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr, flush=True)
    if SAGEMAKER_FAILURE_FILE.parent.is_dir() and is_main_process():
        with contextlib.suppress(OSError):  # best effort: the stderr line is the contract
            SAGEMAKER_FAILURE_FILE.write_text(line, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, train, and turn every failure into an exit code and one ``error:`` line."""
    try:
        return train(parse_args(argv))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UsageError, DataError) as exc:
        report_error(str(exc))
        return 2
    except Exception as exc:
        traceback.print_exc()
        report_error(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

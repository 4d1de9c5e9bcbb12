"""Assembling the Trainer of a run: ``TrainingArguments`` from the command line, the datasets,
the collator of the batching plan, and train.py's callbacks in place of the Trainer's
printouts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from training_scripts.arguments import ScriptArguments, UsageError
from training_scripts.batching import make_collator
from training_scripts.modeling import PreparedModel
from training_scripts.packing import ListDataset
from training_scripts.progress import StepProgress
from training_scripts.reporting import ReportingCallback
from training_scripts.tokenization import TokenizedData
from training_scripts.trainer import FinetuneTrainer


@dataclass
class AssembledTrainer:
    """The Trainer, and the callback whose CSV logs and last evaluation the run reads."""

    trainer: FinetuneTrainer
    reporting: ReportingCallback


def build_training_arguments(
    args: ScriptArguments, *, bf16: bool, has_validation: bool, use_cpu: bool
) -> TrainingArguments:
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


def build_trainer(
    args: ScriptArguments,
    prepared: PreparedModel,
    data: TokenizedData,
    tokenizer: Any,
    *,
    bf16: bool,
    output_dir: Path,
) -> AssembledTrainer:
    """The Trainer for the prepared model and data; raises ``UsageError`` for a
    configuration transformers refuses."""
    run_args, plan = args.run, prepared.plan
    collator = make_collator(plan, tokenizer.pad_token_id, args.data.max_seq_length)
    eval_dataset = ListDataset(data.validation) if data.validation else None
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
        model=prepared.model,
        args=training_arguments,
        train_dataset=ListDataset(data.train),
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if plan.length_grouped:
        trainer.train_lengths = [len(e) for e in data.train]
    # train.py prints its own lines and bar; the Trainer's printouts and bar would repeat them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    checkpoint_on_sigterm_at_once(trainer)
    return AssembledTrainer(trainer=trainer, reporting=reporting)


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

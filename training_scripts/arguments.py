"""Command-line arguments of ``train.py``, as dataclasses.

SageMaker script mode passes every hyperparameter as ``--name value`` (booleans arrive as the
strings ``True``/``False``), so each field is one snake_case flag. Defaults that SageMaker knows
come from its environment variables (``SM_CHANNEL_TRAIN``, ``SM_MODEL_DIR``, ...), read when the
command line is parsed; the ``env`` entry of a field's metadata names the variable.

This module imports only the standard library, so ``--help`` and bad-usage errors come back
without waiting for torch to load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Method = Literal["full", "lora", "qlora"]
Batching = Literal["auto", "padding_free", "packed", "padded"]

# SageMaker's checkpoint directory; it exists only when the job has a CheckpointConfig, and
# SageMaker syncs it to S3 and back, which is what makes spot training resumable.
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html
SAGEMAKER_CHECKPOINT_DIR = "/opt/ml/checkpoints"


class UsageError(ValueError):
    """A bad command line: train.py prints ``error: <message>`` and exits with code 2."""


@dataclass
class ModelArguments:
    """Which model to start from and how to adapt it."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hugging Face Hub id or local directory of the base model (a SageMaker 'model' "
            "channel works too).",
            "env": "SM_CHANNEL_MODEL",
        },
    )
    method: Method = field(
        default="lora",
        metadata={
            "help": "full: train every weight; lora: train low-rank adapters on a frozen base; "
            "qlora: LoRA on a 4-bit NF4 base (CUDA only)."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)."}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={
            "help": "Modules that get adapters: 'all-linear' or comma-separated names such as "
            "'q_proj,k_proj,v_proj,o_proj'."
        },
    )
    merge_adapter: bool = field(
        default=False,
        metadata={
            "help": "After LoRA/QLoRA training, also write the adapter merged into the base weights"
            " (in <output_dir>/merged, safetensors) for serving without peft."
        },
    )
    attn_implementation: str = field(
        default="auto",
        metadata={
            "help": "Attention kernel: auto (flash_attention_2 on CUDA when installed, else sdpa), "
            "sdpa, eager, flash_attention_2, flex_attention."
        },
    )
    model_dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of the loaded weights: auto (bfloat16 for LoRA/QLoRA with --bf16, "
            "float32 master weights for full fine-tuning), bfloat16, float16, float32."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Allow model code from the model repository (only for models you trust)."
        },
    )


@dataclass
class DataArguments:
    """Where the data is and how it becomes token sequences."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training data: a JSON Lines file or a directory of them (*.jsonl, *.json).",
            "env": "SM_CHANNEL_TRAIN",
        },
    )
    validation_file: str | None = field(
        default=None,
        metadata={
            "help": "Validation data, same formats as --train_file.",
            "env": "SM_CHANNEL_VALIDATION",
        },
    )
    validation_split: float = field(
        default=0.0,
        metadata={
            "help": "Without --validation_file, hold out this fraction of the training records for "
            "validation (shuffled with seed 42). 0 disables."
        },
    )
    data_format: str = field(
        default="auto",
        metadata={
            "help": "auto (detect per file), prompt-completion, messages, bedrock-conversation-2024"
            " or alpaca."
        },
    )
    max_seq_length: int = field(
        default=2048,
        metadata={"help": "Longest token sequence; longer examples are truncated from the right."},
    )
    batching: Batching = field(
        default="auto",
        metadata={
            "help": "How a micro-batch of examples is laid out: padding_free (one row, position "
            "ids restarting per example, variable-length attention), packed (rows of at most "
            "--max_seq_length), padded (one row per example), or auto (chosen from the attention "
            "kernel and the data's lengths, and logged). Every mode trains on the same "
            "examples per step."
        },
    )
    packing: bool | None = field(
        default=None,
        metadata={
            "help": "Older switch, kept for existing job specs: true means --batching packed, "
            "false --batching padded (now with the same examples per step either way)."
        },
    )
    completion_only_loss: bool = field(
        default=True,
        metadata={
            "help": "Compute the loss only on completion / assistant tokens (the end-of-turn token "
            "included). False trains on every token."
        },
    )
    prompt_completion_chat_template: bool = field(
        default=False,
        metadata={
            "help": "Render prompt-completion records through the chat template as a user turn and "
            "an assistant turn. By default they are plain text: prompt, then completion, "
            "then EOS."
        },
    )


@dataclass
class RunArguments:
    """How long and how to train, and where results go."""

    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where the final model, tokenizer, metrics.json and training_config.json go.",
            "env": "SM_MODEL_DIR",
        },
    )
    output_data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where training_metrics.csv goes (default: SM_OUTPUT_DATA_DIR, else "
            "--output_dir).",
            "env": "SM_OUTPUT_DATA_DIR",
        },
    )
    checkpoint_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where checkpoints go and are resumed from: /opt/ml/checkpoints when it exists,"
            " else <output_dir>/checkpoints locally (a temporary directory on SageMaker "
            "without a checkpoint configuration, so checkpoints never bloat model.tar.gz)."
        },
    )
    num_train_epochs: float = field(
        default=3.0, metadata={"help": "Passes over the training data."}
    )
    max_steps: int = field(
        default=-1,
        metadata={"help": "Total optimizer steps; overrides --num_train_epochs when > 0."},
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate (default: 2e-4 for LoRA/QLoRA, 2e-5 for full fine-tuning)."
        },
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule after warm-up."}
    )
    warmup_ratio: float = field(
        default=0.03, metadata={"help": "Fraction of the steps spent warming up."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    per_device_train_batch_size: int = field(
        default=4,
        metadata={"help": "Examples per device per micro-batch, whatever the --batching layout."},
    )
    per_device_eval_batch_size: int = field(
        default=8, metadata={"help": "Sequences per device per eval step."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches accumulated per optimizer step."}
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bfloat16 mixed precision (default: on when the GPU supports it, off on CPU)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "Recompute activations in the backward pass: less memory, about 30% more "
            "compute."
        },
    )
    fsdp: bool = field(
        default=False,
        metadata={
            "help": "Shard parameters, gradients and optimizer state across GPUs (FSDP, full fine-"
            "tuning under torchrun)."
        },
    )
    seed: int = field(
        default=42, metadata={"help": "Random seed for initialisation, shuffling and dropout."}
    )
    logging_steps: int = field(
        default=10, metadata={"help": "Log metrics every N optimizer steps."}
    )
    eval_steps: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate every N steps (default: once, at the end, when there is validation "
            "data)."
        },
    )
    save_steps: int = field(
        default=100, metadata={"help": "Save a checkpoint every N optimizer steps."}
    )
    save_total_limit: int = field(
        default=2, metadata={"help": "Keep at most this many checkpoints."}
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop after this many evaluations without a lower eval_loss (needs --eval_steps"
            " and validation data); the best checkpoint is loaded at the end."
        },
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "Worker processes feeding batches."}
    )


@dataclass
class ScriptArguments:
    """Everything train.py accepts, grouped as in ``--help``."""

    model: ModelArguments
    data: DataArguments
    run: RunArguments

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


GROUPS: tuple[tuple[str, type], ...] = (
    ("model", ModelArguments),
    ("data", DataArguments),
    ("run", RunArguments),
)

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def parse_bool(text: str) -> bool:
    """SageMaker sends booleans as ``True``/``False``; accept the usual spellings."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _env_default(f: dataclasses.Field, environ: typing.Mapping[str, str]) -> Any:
    env = f.metadata.get("env")
    if env and environ.get(env):
        return environ[env]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


def build_parser(environ: typing.Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per dataclass field, defaults resolved from ``environ``."""
    environ = os.environ if environ is None else environ
    parser = _Parser(
        prog="train.py",
        description="Fine-tune a causal language model (full, LoRA or QLoRA) on chat or "
        "prompt-completion data; runs as a SageMaker training job, under torchrun and locally.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    for group_name, cls in GROUPS:
        group = parser.add_argument_group(f"{group_name} arguments", cls.__doc__)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            annotation, _ = _unwrap_optional(hints[f.name])
            help_text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
            if f.metadata.get("env"):
                help_text += f" [env: {f.metadata['env']}]"
            kwargs: dict[str, Any] = {
                "dest": f"{group_name}.{f.name}",
                "default": _env_default(f, environ),
                "help": help_text,
            }
            if annotation is bool:
                kwargs.update(type=parse_bool, nargs="?", const=True, metavar="{true,false}")
            elif typing.get_origin(annotation) is Literal:
                kwargs.update(type=str, choices=list(typing.get_args(annotation)))
            else:
                kwargs.update(type=annotation)
            group.add_argument(f"--{f.name}", **kwargs)
    return parser


def parse_args(
    argv: typing.Sequence[str] | None = None, environ: typing.Mapping[str, str] | None = None
) -> ScriptArguments:
    """Parse and validate the command line; raises :class:`UsageError` on bad usage."""
    environ = os.environ if environ is None else environ
    namespace = build_parser(environ).parse_args(argv)
    values = vars(namespace)
    groups = {
        name: cls(**{f.name: values[f"{name}.{f.name}"] for f in dataclasses.fields(cls)})
        for name, cls in GROUPS
    }
    args = ScriptArguments(**groups)
    _resolve_defaults(args, environ)
    validate(args)
    return args


def _resolve_defaults(args: ScriptArguments, environ: typing.Mapping[str, str]) -> None:
    """Fill the defaults that depend on other arguments or on the machine."""
    run, model = args.run, args.model
    data = args.data
    if data.packing is not None:
        implied = "packed" if data.packing else "padded"
        if data.batching not in ("auto", implied):
            raise UsageError(
                f"--packing {data.packing} means --batching {implied}, but --batching "
                f"{data.batching} was also given; use --batching alone"
            )
        data.batching = implied
    if run.learning_rate is None:
        run.learning_rate = 2e-5 if model.method == "full" else 2e-4
    if run.output_dir and not run.output_data_dir:
        run.output_data_dir = run.output_dir
    if not run.checkpoint_dir and run.output_dir:
        if Path(SAGEMAKER_CHECKPOINT_DIR).is_dir():
            run.checkpoint_dir = SAGEMAKER_CHECKPOINT_DIR
        elif environ.get("SM_MODEL_DIR") and run.output_dir == environ["SM_MODEL_DIR"]:
            # On SageMaker everything under the model dir is uploaded as model.tar.gz.
            run.checkpoint_dir = str(Path(tempfile.gettempdir()) / "finetune-checkpoints")
        else:
            run.checkpoint_dir = str(Path(run.output_dir) / "checkpoints")
    model.lora_target_modules = normalize_target_modules(model.lora_target_modules)


def normalize_target_modules(text: str) -> str:
    """Accept ``a,b``, ``a b`` and the ``['a', 'b']`` that SageMaker makes of a Python list."""
    cleaned = text.strip().strip("[]")
    names = [part.strip().strip("'\"") for part in cleaned.replace(" ", ",").split(",")]
    return ",".join(name for name in names if name)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise UsageError(f"--{name} must be greater than 0, found {value}")


def validate(args: ScriptArguments) -> None:
    """Checks that need no file system or GPU; raises :class:`UsageError`."""
    model, data, run = args.model, args.data, args.run
    if not model.model_name_or_path:
        raise UsageError("--model_name_or_path is required (or a SageMaker 'model' channel)")
    if not data.train_file:
        raise UsageError("--train_file is required (or a SageMaker 'train' channel)")
    if not run.output_dir:
        raise UsageError("--output_dir is required (or SM_MODEL_DIR)")
    for name, value in (
        ("lora_r", model.lora_r),
        ("lora_alpha", model.lora_alpha),
        ("max_seq_length", data.max_seq_length),
        ("learning_rate", run.learning_rate),
        ("per_device_train_batch_size", run.per_device_train_batch_size),
        ("per_device_eval_batch_size", run.per_device_eval_batch_size),
        ("gradient_accumulation_steps", run.gradient_accumulation_steps),
        ("num_train_epochs", run.num_train_epochs),
        ("logging_steps", run.logging_steps),
        ("save_steps", run.save_steps),
        ("save_total_limit", run.save_total_limit),
    ):
        _positive(name, value)
    if run.max_steps == 0 or run.max_steps < -1:
        raise UsageError(f"--max_steps must be a positive step count or -1, found {run.max_steps}")
    if not 0.0 <= model.lora_dropout < 1.0:
        raise UsageError(f"--lora_dropout must be in [0, 1), found {model.lora_dropout}")
    if not 0.0 <= data.validation_split < 1.0:
        raise UsageError(f"--validation_split must be in [0, 1), found {data.validation_split}")
    if not 0.0 <= run.warmup_ratio < 1.0:
        raise UsageError(f"--warmup_ratio must be in [0, 1), found {run.warmup_ratio}")
    if data.max_seq_length < 8:
        raise UsageError(f"--max_seq_length must be at least 8, found {data.max_seq_length}")
    if not model.lora_target_modules:
        raise UsageError("--lora_target_modules is empty; use 'all-linear' or module names")
    if model.merge_adapter and model.method == "full":
        raise UsageError("--merge_adapter applies to --method lora or qlora, not full")
    if run.fsdp and model.method != "full":
        raise UsageError(
            f"--fsdp applies to --method full; --method {model.method} trains with DDP, "
            "which already fits one model copy per GPU"
        )
    if model.model_dtype not in {"auto", "bfloat16", "float16", "float32"}:
        raise UsageError(
            "--model_dtype must be one of auto, bfloat16, float16, float32, "
            f"found {model.model_dtype!r}"
        )
    if run.eval_steps is not None:
        _positive("eval_steps", run.eval_steps)
    if run.early_stopping_patience is not None:
        _positive("early_stopping_patience", run.early_stopping_patience)
        if run.eval_steps is None:
            raise UsageError("--early_stopping_patience needs --eval_steps")
    if run.dataloader_num_workers < 0:
        raise UsageError(
            f"--dataloader_num_workers must be 0 or more, found {run.dataloader_num_workers}"
        )

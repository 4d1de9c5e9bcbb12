"""Loading the base model and tokenizer, attaching LoRA / QLoRA, and writing the merged model.

``prepare_model`` is the model step of a run: load, choose the batching layout (it depends on
the model's attention), switch attention for it, attach LoRA, and print the ``model:`` line.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, set_seed

from training_scripts.arguments import ModelArguments, ScriptArguments, UsageError
from training_scripts.attention import set_attention
from training_scripts.batching import (
    BatchingPlan,
    attention_pair_weight,
    attention_support,
    choose_batching,
)
from training_scripts.console import say
from training_scripts.tokenization import TokenizedExample

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class ModelLoadError(UsageError):
    """The model or tokenizer named on the command line cannot be loaded."""


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def check_environment(args: ModelArguments, fsdp: bool) -> None:
    """Refuse combinations this machine cannot run, before any data or weights load."""
    if args.method == "qlora":
        if not torch.cuda.is_available():
            raise UsageError(
                "--method qlora needs a CUDA GPU: 4-bit NF4 quantization (bitsandbytes) does "
                "not run on CPU; use --method lora here"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UsageError(
                "--method qlora needs bitsandbytes (pip install -r training_scripts/"
                "requirements.txt)"
            )
    if fsdp and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise UsageError("--fsdp shards across processes; launch with torchrun (2 or more)")


def resolve_dtype(args: ModelArguments, bf16: bool) -> torch.dtype:
    if args.model_dtype != "auto":
        return DTYPES[args.model_dtype]
    # Adapters train in float32 on top of a frozen base, so the base can be bfloat16. Full
    # fine-tuning keeps float32 master weights and relies on bf16 autocast for speed.
    if bf16 and args.method in ("lora", "qlora"):
        return torch.bfloat16
    return torch.float32


def resolve_attn_implementation(requested: str, dtype: torch.dtype) -> str:
    if requested != "auto":
        return requested
    if (
        torch.cuda.is_available()
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return "sdpa"


def load_tokenizer(args: ModelArguments) -> Any:
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            args.model_name_or_path, trust_remote_code=args.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"--model_name_or_path {args.model_name_or_path}: cannot load a tokenizer: {exc}"
        ) from None
    if tokenizer.pad_token_id is None:
        # Labels come from the loss mask, not from pad ids, so reusing EOS as padding is safe.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_model(
    args: ModelArguments, *, dtype: torch.dtype, attn_implementation: str
) -> PreTrainedModel:
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "trust_remote_code": args.trust_remote_code,
    }
    if args.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
            bnb_4bit_quant_storage=dtype if dtype != torch.float32 else torch.bfloat16,
        )
        kwargs["device_map"] = {"": local_rank()}
    try:
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"--model_name_or_path {args.model_name_or_path}: cannot load a causal language "
            f"model: {exc}"
        ) from None
    model.config.use_cache = False  # the KV cache is for generation; it only costs memory here
    return model


def target_modules(text: str) -> str | list[str]:
    return "all-linear" if text == "all-linear" else text.split(",")


def attach_lora(model: PreTrainedModel, args: ModelArguments, gradient_checkpointing: bool) -> Any:
    """Wrap ``model`` with LoRA adapters (after k-bit preparation for QLoRA)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.method == "qlora":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules(args.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise UsageError(f"--lora_target_modules {args.lora_target_modules}: {exc}") from None


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights counted as stored."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def save_merged_model(
    args: ModelArguments, adapter_dir: Path, merged_dir: Path, tokenizer: Any, dtype: torch.dtype
) -> None:
    """Merge the saved adapter into a fresh, unquantized copy of the base and save it.

    The base is reloaded rather than merged in place: a QLoRA base is 4-bit, and merging into
    rounded weights would change the model that was trained.
    """
    from peft import PeftModel

    merge_dtype = torch.bfloat16 if dtype == torch.bfloat16 or args.method == "qlora" else dtype
    base = AutoModelForCausalLM.from_pretrained(
        args.model_name_or_path, dtype=merge_dtype, trust_remote_code=args.trust_remote_code
    )
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
    del merged, base
    gc.collect()


@dataclass
class PreparedModel:
    """The model ready for the Trainer, and what was resolved on the way."""

    model: Any
    dtype: torch.dtype
    attn_implementation: str  # for inference, and for training unless the batching needs varlen
    training_attention: str
    plan: BatchingPlan
    trainable_parameters: int
    total_parameters: int


def prepare_model(
    args: ScriptArguments, tokenizer: Any, train_examples: list[TokenizedExample], *, bf16: bool
) -> PreparedModel:
    """Load the model, choose the batching layout for it and the data, attach LoRA."""
    model_args, data_args, run_args = args.model, args.data, args.run
    set_seed(run_args.seed)
    dtype = resolve_dtype(model_args, bf16)
    attn_implementation = resolve_attn_implementation(model_args.attn_implementation, dtype)
    model = load_model(model_args, dtype=dtype, attn_implementation=attn_implementation)
    if torch.cuda.is_available() and model_args.method != "qlora" and not run_args.fsdp:
        # Where the Trainer would put it anyway; the packing check below then runs on the GPU.
        model.to(f"cuda:{local_rank()}")
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
        model = attach_lora(model, model_args, run_args.gradient_checkpointing)
    trainable_parameters, total_parameters = count_parameters(model)
    say(
        f"model: {model_args.model_name_or_path} method={model_args.method} "
        f"dtype={str(dtype).removeprefix('torch.')} attention={training_attention} "
        f"batching={plan.mode} trainable_parameters={trainable_parameters} "
        f"total_parameters={total_parameters}"
    )
    return PreparedModel(
        model=model,
        dtype=dtype,
        attn_implementation=attn_implementation,
        training_attention=training_attention,
        plan=plan,
        trainable_parameters=trainable_parameters,
        total_parameters=total_parameters,
    )

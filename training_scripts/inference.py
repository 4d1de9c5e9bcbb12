"""Serving handler for the SageMaker Hugging Face inference container.

Package it as ``code/inference.py`` inside ``model.tar.gz`` (next to the files ``train.py`` wrote);
the container's inference toolkit then calls :func:`model_fn` once and :func:`input_fn`,
:func:`predict_fn`, :func:`output_fn` per request.

What loads (``model_fn``), in this order:

1. ``<model_dir>/merged/``: the merged model ``train.py --merge_adapter`` wrote;
2. ``<model_dir>/adapter_config.json``: a LoRA adapter on its base model, the base read from
   ``BASE_MODEL_NAME_OR_PATH`` or else from the adapter's ``base_model_name_or_path``;
3. ``<model_dir>/config.json``: a fully fine-tuned model.

Requests (``application/json``; ``text/plain`` is taken as a prompt)::

    {"messages": [{"role": "user", "content": "Hi"}], "parameters": {"max_new_tokens": 64}}
    {"inputs": "Plain-text prompt", "parameters": {"temperature": 0.7, "top_p": 0.9}}
    {"inputs": [{"role": "user", "content": "Hi"}]}          # messages under "inputs"
    {"inputs": ["prompt one", "prompt two"]}                 # a batch of prompts

Messages go through the chat template saved with the model (the one training used); a plain
prompt is used as is, like prompt-completion training data. The response is
``{"generated_text", "finish_reason" ("stop" | "length"), "usage": {"prompt_tokens",
"completion_tokens"}}``, or a list of them for a batch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MERGED_DIR = "merged"
BASE_MODEL_ENV = "BASE_MODEL_NAME_OR_PATH"
DEFAULT_MAX_NEW_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 4096
# Generation parameters a request may set, with the type each must have.
PARAMETERS: dict[str, type | tuple[type, ...]] = {
    "max_new_tokens": int,
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": int,
    "do_sample": bool,
    "repetition_penalty": (int, float),
    "stop": list,
}


class InvalidRequest(ValueError):
    """The request body cannot be served; the message says which field and why."""


def _dtype() -> torch.dtype:
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_fn(model_dir: str, context: Any = None) -> dict[str, Any]:
    """Load the model and tokenizer from ``model_dir`` (see the module docstring)."""
    root = Path(model_dir)
    merged = root / MERGED_DIR
    if (merged / "config.json").is_file():
        source = merged
        model = AutoModelForCausalLM.from_pretrained(merged, dtype=_dtype())
    elif (root / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter_config = json.loads((root / "adapter_config.json").read_text(encoding="utf-8"))
        base = os.environ.get(BASE_MODEL_ENV) or adapter_config.get("base_model_name_or_path")
        if not base:
            raise FileNotFoundError(
                f"{root / 'adapter_config.json'} names no base model; set {BASE_MODEL_ENV}"
            )
        source = root
        base_model = AutoModelForCausalLM.from_pretrained(base, dtype=_dtype())
        model = PeftModel.from_pretrained(base_model, str(root))
    elif (root / "config.json").is_file():
        source = root
        model = AutoModelForCausalLM.from_pretrained(root, dtype=_dtype())
    else:
        raise FileNotFoundError(
            f"{root} holds no model: expected {MERGED_DIR}/config.json, adapter_config.json "
            "or config.json"
        )
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues from the right end of each row
    model.to(_device())
    model.eval()
    return {"model": model, "tokenizer": tokenizer}


def input_fn(input_data: str | bytes, content_type: str, context: Any = None) -> dict[str, Any]:
    """Decode the request body into a dict."""
    text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type == "text/plain":
        return {"inputs": text}
    if media_type != "application/json":
        raise InvalidRequest(
            f"content type {content_type!r} is not supported; use application/json or text/plain"
        )
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, found {type(body).__name__}")
    return body


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


@dataclass(frozen=True)
class Prompts:
    texts: list[str]
    batch: bool  # the request sent a list of prompts, so the response is a list
    templated: bool  # rendered by the chat template, which writes its own special tokens


def _prompts(body: dict[str, Any], tokenizer: Any) -> Prompts:
    """The prompt texts of a request."""
    if "messages" in body:
        conversations = [body["messages"]]
    elif "inputs" in body or "prompt" in body:
        value = body.get("inputs", body.get("prompt"))
        if isinstance(value, str):
            return Prompts([value], batch=False, templated=False)
        if _is_messages(value):
            conversations = [value]
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return Prompts(list(value), batch=True, templated=False)
        else:
            raise InvalidRequest(
                '"inputs" must be a string, a list of strings or a list of chat messages'
            )
    else:
        raise InvalidRequest('the request needs "messages", "inputs" or "prompt"')
    texts = []
    for conversation in conversations:
        if not _is_messages(conversation):
            raise InvalidRequest('"messages" must be a non-empty list of {"role", "content"}')
        texts.append(
            tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        )
    return Prompts(texts, batch=False, templated=True)


def _generation_kwargs(parameters: Any, tokenizer: Any) -> tuple[dict[str, Any], list[str]]:
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise InvalidRequest('"parameters" must be an object')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise InvalidRequest(
            f"unknown generation parameter(s) {unknown}; supported: {sorted(PARAMETERS)}"
        )
    for name, value in parameters.items():
        expected = PARAMETERS[name]
        if isinstance(value, bool) and expected is not bool:
            raise InvalidRequest(f'"parameters.{name}" must be a number, found {value!r}')
        if not isinstance(value, expected):
            raise InvalidRequest(f'"parameters.{name}" has the wrong type: {value!r}')
    max_new_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise InvalidRequest(
            f'"parameters.max_new_tokens" must be in [1, {MAX_NEW_TOKENS_LIMIT}], '
            f"found {max_new_tokens}"
        )
    temperature = float(parameters.get("temperature", 0.0))
    if temperature < 0:
        raise InvalidRequest(f'"parameters.temperature" must be >= 0, found {temperature}')
    do_sample = bool(parameters.get("do_sample", temperature > 0))
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if do_sample:
        kwargs["temperature"] = temperature if temperature > 0 else 1.0
        if "top_p" in parameters:
            kwargs["top_p"] = float(parameters["top_p"])
        if "top_k" in parameters:
            kwargs["top_k"] = int(parameters["top_k"])
    if "repetition_penalty" in parameters:
        kwargs["repetition_penalty"] = float(parameters["repetition_penalty"])
    stop = parameters.get("stop", [])
    if not all(isinstance(s, str) and s for s in stop):
        raise InvalidRequest('"parameters.stop" must be a list of non-empty strings')
    if stop:
        kwargs["stop_strings"] = stop
    return kwargs, stop


@torch.inference_mode()
def predict_fn(
    data: dict[str, Any], model_and_tokenizer: dict[str, Any], context: Any = None
) -> Any:
    """Generate a completion for each prompt of the request."""
    model, tokenizer = model_and_tokenizer["model"], model_and_tokenizer["tokenizer"]
    prompts = _prompts(data, tokenizer)
    kwargs, stop = _generation_kwargs(data.get("parameters"), tokenizer)
    encoded = tokenizer(
        prompts.texts,
        return_tensors="pt",
        padding=True,
        add_special_tokens=not prompts.templated,
    ).to(model.device)
    output = model.generate(**encoded, tokenizer=tokenizer if stop else None, **kwargs)
    prompt_width = encoded["input_ids"].shape[1]
    results = []
    eos_ids = _eos_ids(model, tokenizer)
    for row, attention in zip(output, encoded["attention_mask"], strict=True):
        new_tokens = row[prompt_width:].tolist()
        # Cut at the first end-of-sequence token; what follows is padding.
        finish_reason = "length"
        for index, token in enumerate(new_tokens):
            if token in eos_ids:
                new_tokens, finish_reason = new_tokens[:index], "stop"
                break
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        for marker in stop:
            if marker in text:
                text, finish_reason = text[: text.index(marker)], "stop"
        results.append(
            {
                "generated_text": text,
                "finish_reason": finish_reason,
                "usage": {
                    "prompt_tokens": int(attention.sum().item()),
                    "completion_tokens": len(new_tokens),
                },
            }
        )
    return results if prompts.batch else results[0]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(configured)
    return {i for i in ids if i is not None}


def output_fn(prediction: Any, accept: str, context: Any = None) -> str:
    """Serialize the prediction as JSON (the only response type)."""
    media_type = (accept or "application/json").split(";")[0].strip().lower()
    if media_type not in ("application/json", "*/*"):
        raise InvalidRequest(f"accept type {accept!r} is not supported; use application/json")
    return json.dumps(prediction)

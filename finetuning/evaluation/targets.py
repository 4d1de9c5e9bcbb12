"""Where the answers come from: Bedrock (Converse), a SageMaker endpoint or a local model folder.

Every target turns an :class:`EvaluationSample` and :class:`InferenceParameters` into one
:class:`Generation`. Targets do not retry; the runner does (``finetuning.evaluation.runner``),
so throttling is handled once, with the same backoff, whatever the backend.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from finetuning.evaluation.samples import EvaluationSample, ImagePart, SampleError, TextPart


class TargetError(ValueError):
    """A target that cannot serve the request as configured (bad usage, not a model failure)."""


@dataclass(frozen=True)
class InferenceParameters:
    """Sampling settings; None leaves the model's own default in place."""

    max_tokens: int = 512
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise TargetError(f"max_tokens: expected an integer >= 1, got {self.max_tokens}")
        if self.temperature is not None and self.temperature < 0:
            raise TargetError(f"temperature: expected a value >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise TargetError(f"top_p: expected a value from 0 to 1, got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise TargetError(f"top_k: expected an integer >= 0, got {self.top_k}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }


@dataclass(frozen=True)
class Generation:
    text: str
    latency_seconds: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None


class Target(Protocol):
    """A model that answers samples. ``model_id`` identifies it in results and reports."""

    model_id: str
    target_type: str

    def validate(self, params: InferenceParameters, *, has_images: bool) -> None:
        """Raise :class:`TargetError` before any call when the request cannot work."""

    def generate(self, sample: EvaluationSample, params: InferenceParameters) -> Generation: ...


# --------------------------------------------------------------------------------------------
# Bedrock


# Converse's inferenceConfig has no top-k; families that have one take it through
# additionalModelRequestFields, each under its own name:
# - Amazon Nova: {"inferenceConfig": {"topK": k}}, integer >= 0
#   https://docs.aws.amazon.com/nova/latest/userguide/complete-request-schema.html
#   https://docs.aws.amazon.com/nova/latest/userguide/invoke.html
# - Anthropic Claude: {"top_k": k}, 0 to 500
#   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html
# - Meta Llama (temperature, top_p, max_gen_len only), Amazon Titan Text (temperature, topP,
#   maxTokenCount, stopSequences) and Mistral chat models (no top_k) have none:
#   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-meta.html
#   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-text.html
#   https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-mistral-chat-completion.html
@dataclass(frozen=True)
class TopKSupport:
    build: Callable[[int], dict[str, Any]] | None
    maximum: int | None = None


TOP_K_SUPPORT: dict[str, TopKSupport] = {
    "nova": TopKSupport(lambda k: {"inferenceConfig": {"topK": k}}),
    "anthropic": TopKSupport(lambda k: {"top_k": k}, maximum=500),
    "meta": TopKSupport(None),
    "titan": TopKSupport(None),
    "mistral": TopKSupport(None),
}
MODEL_FAMILIES = tuple(TOP_K_SUPPORT)

_REGION_PREFIX = re.compile(r"^(us|eu|apac|us-gov|global|ca|jp|au)\.")


def family_of(model_id: str) -> str | None:
    """Model family of a base model id, inference profile id or foundation-model ARN.

    ARNs of provisioned models, custom models and deployments do not name their base model;
    those return None (see :func:`resolve_family`).
    """
    key = model_id
    if key.startswith("arn:"):
        resource = key.split(":", 5)[-1]
        kind, _, name = resource.partition("/")
        if kind not in ("foundation-model", "inference-profile"):
            return None
        key = name
    key = _REGION_PREFIX.sub("", key)
    provider, _, model = key.partition(".")
    if provider == "amazon":
        if model.startswith("nova"):
            return "nova"
        if model.startswith("titan"):
            return "titan"
        return None
    return provider if provider in TOP_K_SUPPORT else None


def resolve_family(model_id: str, bedrock: Any) -> str | None:
    """Family of any Converse model identifier, asking Bedrock what an ARN is built on.

    Provisioned throughput names its model (a foundation or custom model); a custom model
    deployment names its custom model; a custom model names its base model.
    """
    family = family_of(model_id)
    if family is not None or not model_id.startswith("arn:"):
        return family
    kind = model_id.split(":", 5)[-1].partition("/")[0]
    if kind == "provisioned-model":
        response = bedrock.get_provisioned_model_throughput(provisionedModelId=model_id)
        return family_of(response["foundationModelArn"]) or resolve_family(
            response["modelArn"], bedrock
        )
    if kind == "custom-model-deployment":
        response = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=model_id)
        return resolve_family(response["modelArn"], bedrock)
    if kind == "custom-model":
        response = bedrock.get_custom_model(modelIdentifier=model_id)
        return family_of(response["baseModelArn"])
    return None


def top_k_fields(family: str | None, top_k: int, model_id: str) -> dict[str, Any]:
    """``additionalModelRequestFields`` carrying top-k for ``family``; an error if it has none."""
    if family is None:
        raise TargetError(
            f"--top-k: cannot tell which model family {model_id} belongs to, so not where its "
            f"top-k goes; pass --model-family (one of {', '.join(MODEL_FAMILIES)})"
        )
    support = TOP_K_SUPPORT.get(family)
    if support is None or support.build is None:
        with_top_k = [name for name, s in TOP_K_SUPPORT.items() if s.build is not None]
        raise TargetError(
            f"--top-k: {family} models on Bedrock have no top-k parameter (model {model_id}); "
            f"top-k exists for {', '.join(with_top_k)} only: leave --top-k out"
        )
    if support.maximum is not None and top_k > support.maximum:
        raise TargetError(
            f"--top-k: expected 0 to {support.maximum} for {family} models, got {top_k}"
        )
    return support.build(top_k)


class BedrockConverseTarget:
    """A Bedrock base model, inference profile, provisioned model or custom model deployment.

    All of them are a ``modelId`` to the Converse API.
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
    """

    target_type = "bedrock"

    def __init__(
        self,
        model_id: str,
        runtime_client: Any,
        *,
        family: str | None = None,
        control_client: Any | None = None,
    ) -> None:
        self.model_id = model_id
        self._runtime = runtime_client
        self._control = control_client
        self._family = family
        self._additional_fields: dict[str, Any] | None = None

    @property
    def family(self) -> str | None:
        if self._family is None and self._control is not None:
            self._family = resolve_family(self.model_id, self._control)
        return self._family or family_of(self.model_id)

    def validate(self, params: InferenceParameters, *, has_images: bool) -> None:
        # The service model bounds temperature and topP to [0, 1] (InferenceConfiguration).
        if params.temperature is not None and params.temperature > 1:
            raise TargetError(f"--temperature: Bedrock accepts 0 to 1, got {params.temperature}")
        if params.top_k is not None:
            self._additional_fields = top_k_fields(self.family, params.top_k, self.model_id)

    def build_request(
        self, sample: EvaluationSample, params: InferenceParameters
    ) -> dict[str, Any]:
        inference: dict[str, Any] = {"maxTokens": params.max_tokens}
        if params.temperature is not None:
            inference["temperature"] = params.temperature
        if params.top_p is not None:
            inference["topP"] = params.top_p
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": [
                {"role": turn.role, "content": [_converse_block(p) for p in turn.parts]}
                for turn in sample.turns
            ],
            "inferenceConfig": inference,
        }
        if sample.system:
            request["system"] = [{"text": sample.system}]
        if params.top_k is not None:
            if self._additional_fields is None:
                self.validate(params, has_images=sample.has_images)
            request["additionalModelRequestFields"] = self._additional_fields
        return request

    def generate(self, sample: EvaluationSample, params: InferenceParameters) -> Generation:
        request = self.build_request(sample, params)
        started = time.perf_counter()
        response = self._runtime.converse(**request)
        elapsed = time.perf_counter() - started
        content = response.get("output", {}).get("message", {}).get("content", [])
        usage = response.get("usage", {})
        return Generation(
            text="".join(block.get("text", "") for block in content),
            latency_seconds=elapsed,
            input_tokens=usage.get("inputTokens"),
            output_tokens=usage.get("outputTokens"),
            stop_reason=response.get("stopReason"),
        )


def _converse_block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if part.s3_uri is not None:
        location = {"uri": part.s3_uri}
        if part.bucket_owner:
            location["bucketOwner"] = part.bucket_owner
        return {"image": {"format": part.format, "source": {"s3Location": location}}}
    return {"image": {"format": part.format, "source": {"bytes": part.read_bytes()}}}


# --------------------------------------------------------------------------------------------
# SageMaker


# Request bodies a SageMaker endpoint may speak (--endpoint-payload):
# - "chat": {"messages": [...], "parameters": {"max_new_tokens", "temperature", "top_p",
#   "top_k"}}, answered with {"generated_text", "finish_reason", "usage"}: the platform's
#   training_scripts/inference.py on the Hugging Face inference container;
# - "openai": the OpenAI chat completions body ({"messages", "max_tokens", ...} answered with
#   "choices" and "usage"), which vLLM-based (LMI) and TGI containers accept; it carries images;
# - "inputs": {"inputs": [chat messages], "parameters": {...}}, the Hugging Face inference
#   toolkit's default handler.
ENDPOINT_PAYLOADS = ("chat", "openai", "inputs")


class SageMakerEndpointTarget:
    """A real-time SageMaker endpoint speaking JSON in one of :data:`ENDPOINT_PAYLOADS`."""

    target_type = "sagemaker-endpoint"

    def __init__(
        self,
        endpoint_name: str,
        runtime_client: Any,
        *,
        payload: str = "chat",
        inference_component: str | None = None,
    ) -> None:
        if payload not in ENDPOINT_PAYLOADS:
            raise TargetError(
                f"endpoint payload: expected one of {', '.join(ENDPOINT_PAYLOADS)}, got {payload!r}"
            )
        self.model_id = endpoint_name
        self._runtime = runtime_client
        self._payload = payload
        self._component = inference_component

    def validate(self, params: InferenceParameters, *, has_images: bool) -> None:
        if has_images and self._payload != "openai":
            raise TargetError(
                f"images need --endpoint-payload openai (image_url parts); the "
                f"{self._payload!r} payload carries text only"
            )

    def build_body(self, sample: EvaluationSample, params: InferenceParameters) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if sample.system:
            messages.append({"role": "system", "content": sample.system})
        if self._payload == "openai":
            for turn in sample.turns:
                if any(isinstance(p, ImagePart) for p in turn.parts):
                    content: Any = [_openai_part(p) for p in turn.parts]
                else:
                    content = turn.text
                messages.append({"role": turn.role, "content": content})
            body: dict[str, Any] = {"messages": messages, "max_tokens": params.max_tokens}
            for key, value in (
                ("temperature", params.temperature),
                ("top_p", params.top_p),
                ("top_k", params.top_k),
            ):
                if value is not None:
                    body[key] = value
            return body
        messages += [{"role": t.role, "content": t.text} for t in sample.turns]
        parameters: dict[str, Any] = {"max_new_tokens": params.max_tokens}
        sampling = params.temperature is not None and params.temperature > 0
        parameters["do_sample"] = sampling
        if sampling:
            parameters["temperature"] = params.temperature
            for key, value in (("top_p", params.top_p), ("top_k", params.top_k)):
                if value is not None:
                    parameters[key] = value
        key = "messages" if self._payload == "chat" else "inputs"
        return {key: messages, "parameters": parameters}

    def generate(self, sample: EvaluationSample, params: InferenceParameters) -> Generation:
        request: dict[str, Any] = {
            "EndpointName": self.model_id,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(self.build_body(sample, params)).encode(),
        }
        if self._component:
            request["InferenceComponentName"] = self._component
        started = time.perf_counter()
        response = self._runtime.invoke_endpoint(**request)
        payload = json.loads(response["Body"].read())
        elapsed = time.perf_counter() - started
        return _parse_endpoint_response(payload, elapsed)


def _openai_part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    encoded = base64.b64encode(part.read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/{part.format};base64,{encoded}"}}


def _parse_endpoint_response(payload: Any, elapsed: float) -> Generation:
    if isinstance(payload, dict) and "choices" in payload:
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        return Generation(
            text=(choice.get("message") or {}).get("content") or choice.get("text", ""),
            latency_seconds=elapsed,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            stop_reason=choice.get("finish_reason"),
        )
    item = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(item, dict) and "generated_text" in item:
        text = item["generated_text"]
        if isinstance(text, list):  # chat pipelines return the whole conversation
            text = text[-1].get("content", "") if text else ""
        usage = item.get("usage") or {}
        details = item.get("details") or {}  # TGI's generate API
        return Generation(
            text=str(text),
            latency_seconds=elapsed,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens", details.get("generated_tokens")),
            stop_reason=item.get("finish_reason") or details.get("finish_reason"),
        )
    raise TargetError(
        "endpoint response: expected an OpenAI-style body with 'choices' or a Hugging Face "
        f"body with 'generated_text', got {json.dumps(payload)[:200]}"
    )


# --------------------------------------------------------------------------------------------
# Local model folder


class LocalModelTarget:
    """A model folder (full model, merged model or a PEFT adapter) run with transformers.

    Prompts are answered in batches (:meth:`generate_batch`, see
    ``finetuning.evaluation.generation``); one model on one device runs one batch at a time,
    whatever the runner's concurrency.
    """

    target_type = "local"

    def __init__(
        self,
        path: Path,
        *,
        device: str | None = None,
        base_model: Path | None = None,
        model_id: str | None = None,
    ) -> None:
        """``base_model`` is the folder an adapter loads on, in place of the adapter's own
        ``base_model_name_or_path`` (which names the training job's copy, gone by now);
        ``model_id`` names the model in results and reports (default: the folder)."""
        if not path.is_dir():
            raise TargetError(f"{path}: --local-model is not a directory")
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise TargetError(
                f"{path}: not a model folder: expected config.json (a model) or "
                "adapter_config.json (a PEFT adapter)"
            )
        if base_model is not None and not (base_model / "config.json").is_file():
            raise TargetError(f"{base_model}: base model folder has no config.json")
        self.model_id = model_id or str(path)
        self._path = path
        self._base_model = base_model
        self._device = device
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._stop_ids: list[int] = []

    def validate(self, params: InferenceParameters, *, has_images: bool) -> None:
        if has_images:
            raise TargetError(
                f"{self._path}: local evaluation runs text models only; the inputs have images"
            )

    def load(self) -> None:
        """Load the weights now rather than on the first call, so a model that cannot load
        fails here, once, instead of as an error on every sample."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from finetuning.evaluation.generation import stop_token_ids

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        if (self._path / "adapter_config.json").is_file() and self._base_model is not None:
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(self._base_model)
            model = PeftModel.from_pretrained(base, self._path)
        elif (self._path / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(self._path)
        else:
            model = AutoModelForCausalLM.from_pretrained(self._path)
        self._model = model.to(device).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        self._stop_ids = stop_token_ids(self._model, self._tokenizer)

    def _prompt(self, sample: EvaluationSample) -> list[int]:
        from finetuning.evaluation.generation import chat_messages, prompt_ids

        turns = [(t.role, t.text) for t in sample.turns]
        return prompt_ids(self._tokenizer, chat_messages(sample.system, turns))

    def plan_batches(
        self, samples: list[EvaluationSample], batch_size: int
    ) -> list[list[EvaluationSample]]:
        """``samples`` in batches of at most ``batch_size``, prompts of like length together
        (less padding), longest first (a batch too big for memory fails at once)."""
        self.load()
        with self._lock:
            lengths = {s.sample_id: len(self._prompt(s)) for s in samples}
        ordered = sorted(samples, key=lambda s: -lengths[s.sample_id])
        return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]

    def generate_batch(
        self, samples: list[EvaluationSample], params: InferenceParameters
    ) -> list[Generation]:
        """One answer per sample, in order, from one batched ``generate`` call. Each sample's
        ``latency_seconds`` is its share of the batch's time (the batch time over its size)."""
        from finetuning.evaluation.generation import generate_batch, sampling_options

        with self._lock:
            if self._model is None:
                self._load()
            started = time.perf_counter()
            prompts = [self._prompt(s) for s in samples]
            options = sampling_options(
                params.max_tokens, params.temperature, params.top_p, params.top_k
            )
            answers = generate_batch(self._model, self._tokenizer, prompts, options, self._stop_ids)
            share = (time.perf_counter() - started) / len(samples)
        return [
            Generation(
                text=answer.text,
                latency_seconds=share,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                stop_reason="end_turn" if answer.stopped else "max_tokens",
            )
            for answer in answers
        ]

    def generate(self, sample: EvaluationSample, params: InferenceParameters) -> Generation:
        return self.generate_batch([sample], params)[0]


def check_inputs(target: Target, samples: list[EvaluationSample], params: Any) -> None:
    """Validate a target against the inputs before the first call."""
    try:
        target.validate(params, has_images=any(s.has_images for s in samples))
    except SampleError as exc:
        raise TargetError(str(exc)) from None

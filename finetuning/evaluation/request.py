"""The evaluation step's request: what the workflow asks an evaluation to do.

Shared by the Bedrock step (``finetuning.evaluation.step``, the ``evaluate_candidate``
function), the open-model Processing job (``finetuning.evaluation.processing``) and the
function that starts that job (``finetuning.orchestration.evaluation_job``), which parses the
request before a paid instance starts. Light on purpose: no report, model or AWS libraries,
so a control-plane function can import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from finetuning.evaluation.gate import QualityGate
from finetuning.evaluation.generation import DEFAULT_BATCH_SIZE
from finetuning.evaluation.scoring import Task
from finetuning.evaluation.targets import InferenceParameters

S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")
JOB_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,127}$")


class StepError(ValueError):
    """An evaluation step request that cannot run; names the field."""


@dataclass(frozen=True)
class EvaluationStepRequest:
    job_name: str
    model_id: str
    test_set_uri: str
    base_model_id: str | None = None
    quality_gate: QualityGate | None = None
    inference: InferenceParameters = field(default_factory=InferenceParameters)
    task: Task | None = None
    label_key: str | None = None
    training_metrics_uri: str | None = None
    model_family: str | None = None
    max_samples: int = 200
    concurrency: int = 4
    # Prompts a local model (the Processing job) answers together; Bedrock ignores it.
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> EvaluationStepRequest:
        def required(name: str) -> str:
            value = event.get(name)
            if not isinstance(value, str) or not value.strip():
                raise StepError(f"{name}: expected a non-empty string, got {value!r}")
            return value

        job_name = required("job_name")
        if not JOB_NAME.match(job_name):
            raise StepError(
                f"job_name: expected letters, digits, '-', '_' or '.', got {job_name!r}"
            )
        test_set_uri = required("test_set_uri")
        for name in ("test_set_uri", "training_metrics_uri"):
            value = event.get(name)
            if value is not None and not S3_URI.match(str(value)):
                raise StepError(f"{name}: expected an s3://bucket/key URI, got {value!r}")
        gate = event.get("quality_gate")
        task = event.get("task")
        if task is not None and task not in {t.value for t in Task}:
            raise StepError(f"task: expected one of classification, json, text; got {task!r}")
        inference = event.get("inference") or {}
        if not isinstance(inference, dict):
            raise StepError(f"inference: expected an object, got {type(inference).__name__}")
        unknown = set(inference) - {"max_tokens", "temperature", "top_p", "top_k"}
        if unknown:
            raise StepError(
                f"inference: unknown field(s) {sorted(unknown)}; expected max_tokens, "
                "temperature, top_p, top_k"
            )
        limits = {}
        for name, default in (
            ("max_samples", 200),
            ("concurrency", 4),
            ("batch_size", DEFAULT_BATCH_SIZE),
        ):
            value = event.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StepError(f"{name}: expected an integer >= 1, got {value!r}")
            limits[name] = value
        return cls(
            job_name=job_name,
            model_id=required("model_id"),
            test_set_uri=test_set_uri,
            base_model_id=event.get("base_model_id"),
            quality_gate=QualityGate.from_mapping(gate, "quality_gate") if gate else None,
            inference=InferenceParameters(**inference),
            task=Task(task) if task else None,
            label_key=event.get("label_key"),
            training_metrics_uri=event.get("training_metrics_uri"),
            model_family=event.get("model_family"),
            **limits,
        )

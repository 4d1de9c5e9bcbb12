"""Registering evaluated models as model packages in the SageMaker Model Registry.

(The local backend's registry of model directories is :mod:`finetuning.local.model_registry`.)

The workflow's register step (``lambda/register_model``) calls :func:`register_evaluated_model`
after an evaluation: it reads the results JSON that ``finetune evaluate`` (or the evaluation
step) wrote, refuses a model whose quality gate failed, stores the metrics as the package's
model quality statistics, and creates a model package version whose approval status comes
from the settings (``PendingManualApproval`` for a person to approve, or ``Approved`` to
deploy at once). Approving a package is what triggers its deployment
(``finetuning.approved_model_deployment``).

Registration is idempotent: a package carries a registration key derived from the job and
its results, and a retried call finds it instead of adding a version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from finetuning.approved_model_deployment import (
    META_BACKEND,
    META_BEDROCK_MODEL_ARN,
    META_MODEL_NAME,
    META_REGISTRATION_KEY,
    ServingSettings,
)
from finetuning.evaluation.document import EvaluationDocument
from finetuning.orchestration.errors import QualityGateFailedError
from finetuning.platform import EVALUATION_REPORTS_PREFIX

ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]+:\d{12}:custom-model/.+$")
S3_URI_PATTERN = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")
# CustomerMetadataProperties values: 1-256 characters (service model).
_MAX_META_VALUE = 256


class RegistrationError(ValueError):
    """A registration request that cannot be honoured; names the field."""


@dataclass(frozen=True)
class RegistrationRequest:
    """What the workflow hands the register step."""

    model_name: str
    job_name: str
    backend: Literal["sagemaker", "bedrock"]
    evaluation_results_uri: str
    model_data_url: str | None = None
    bedrock_custom_model_arn: str | None = None
    report_uri: str | None = None
    base_model: str | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RegistrationRequest:
        def text(name: str, required: bool = True) -> str | None:
            value = event.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value.strip():
                raise RegistrationError(f"{name}: expected a non-empty string, got {value!r}")
            return value

        backend = text("backend")
        if backend not in ("sagemaker", "bedrock"):
            raise RegistrationError(f"backend: expected 'sagemaker' or 'bedrock', got {backend!r}")
        request = cls(
            model_name=text("model_name"),  # type: ignore[arg-type]
            job_name=text("job_name"),  # type: ignore[arg-type]
            backend=backend,  # type: ignore[arg-type]
            evaluation_results_uri=text("evaluation_results_uri"),  # type: ignore[arg-type]
            model_data_url=text("model_data_url", required=False),
            bedrock_custom_model_arn=text("bedrock_custom_model_arn", required=False),
            report_uri=text("report_uri", required=False),
            base_model=text("base_model", required=False),
        )
        request.validate()
        return request

    def validate(self) -> None:
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,62}", self.model_name):
            raise RegistrationError(
                f"model_name: expected 1-63 letters, digits, '-', '_' or '.', starting with a "
                f"letter or digit, got {self.model_name!r}"
            )
        if not S3_URI_PATTERN.match(self.evaluation_results_uri):
            raise RegistrationError(
                "evaluation_results_uri: expected s3://bucket/key of the results JSON, got "
                f"{self.evaluation_results_uri!r}"
            )
        if self.backend == "sagemaker":
            if not self.model_data_url or not S3_URI_PATTERN.match(self.model_data_url):
                raise RegistrationError(
                    "model_data_url: a SageMaker model needs the s3:// URI of its "
                    f"model.tar.gz, got {self.model_data_url!r}"
                )
        elif not self.bedrock_custom_model_arn or not ARN_PATTERN.match(
            self.bedrock_custom_model_arn
        ):
            raise RegistrationError(
                "bedrock_custom_model_arn: a Bedrock model needs its custom-model ARN, got "
                f"{self.bedrock_custom_model_arn!r}"
            )

    @property
    def source(self) -> str:
        return self.model_data_url if self.backend == "sagemaker" else self.bedrock_custom_model_arn  # type: ignore[return-value]


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_results(s3: Any, uri: str) -> EvaluationDocument:
    bucket, key = _split_s3(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RegistrationError(f"{uri}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    return EvaluationDocument.from_dict(data, uri)


def _value(metric: Any) -> dict[str, Any]:
    return {"value": metric, "standard_deviation": "NaN"}


def model_quality_statistics(document: EvaluationDocument) -> dict[str, Any]:
    """The tuned model's metrics as model quality statistics, in Model Monitor's layout.

    https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html
    Classification fills ``multiclass_classification_metrics``; other tasks, whose metrics
    Model Monitor has no names for, go under ``custom_metrics``.
    """
    metrics = document.tuned.metrics
    statistics: dict[str, Any] = {
        "version": 0.0,
        "dataset": {
            "item_count": metrics.get("total_samples", 0),
            "evaluation_time": document.generated_at,
        },
    }
    if "confusion_matrix" in metrics:
        matrix = metrics["confusion_matrix"]
        per_class = metrics.get("per_class", {})
        support = sum(s["support"] for s in per_class.values()) or 1
        weighted = {
            name: sum(s[name] * s["support"] for s in per_class.values()) / support
            for name in ("precision", "recall")
        }
        statistics["multiclass_classification_metrics"] = {
            "confusion_matrix": {
                truth: {
                    predicted: count
                    for predicted, count in zip(matrix["predicted_labels"], row, strict=True)
                    if count
                }
                for truth, row in zip(matrix["labels"], matrix["matrix"], strict=True)
            },
            "accuracy": _value(metrics["accuracy"]),
            "weighted_precision": _value(weighted["precision"]),
            "weighted_recall": _value(weighted["recall"]),
            "weighted_f1": _value(metrics["weighted_f1"]),
        }
    custom = {
        name: _value(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    statistics["custom_metrics"] = custom
    if document.base is not None:
        statistics["comparison_with_base"] = {
            "base_model": document.base.model_id,
            "improvement": document.improvement(),
        }
    return statistics


def registration_key(request: RegistrationRequest, document: EvaluationDocument) -> str:
    """Same job, same model, same results: same key (so a retry finds its package)."""
    digest = hashlib.sha256(
        json.dumps(
            [request.job_name, request.model_name, request.source, document.generated_at],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return digest[:40]


def find_registered(sagemaker: Any, group: str, key: str) -> dict[str, Any] | None:
    """The package of ``group`` carrying registration key ``key``, if one exists."""
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    ):
        for summary in page.get("ModelPackageSummaryList", []):
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            metadata = package.get("CustomerMetadataProperties") or {}
            if metadata.get(META_REGISTRATION_KEY) == key:
                return package
    return None


@dataclass(frozen=True)
class Registration:
    model_package_arn: str
    approval_status: str
    model_quality_uri: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_package_arn": self.model_package_arn,
            "approval_status": self.approval_status,
            "model_quality_uri": self.model_quality_uri,
            "created": self.created,
        }


def _metadata(request: RegistrationRequest, document: EvaluationDocument, key: str) -> dict:
    metrics = document.tuned.metrics
    values = {
        META_MODEL_NAME: request.model_name,
        META_BACKEND: request.backend,
        META_REGISTRATION_KEY: key,
        "job-name": request.job_name,
        "evaluation-results": request.evaluation_results_uri,
        "report": request.report_uri,
        "base-model": request.base_model or (document.base.model_id if document.base else None),
        "task": metrics.get("task"),
        META_BEDROCK_MODEL_ARN: request.bedrock_custom_model_arn,
    }
    for name in ("accuracy", "macro_f1", "field_f1", "token_f1", "success_rate"):
        if isinstance(metrics.get(name), int | float):
            values[name] = f"{metrics[name]:.4f}"
    for name, delta in document.improvement().items():
        if name in ("accuracy", "macro_f1", "field_f1"):
            values[f"{name}-improvement"] = f"{delta:+.4f}"
    return {k: str(v)[:_MAX_META_VALUE] for k, v in values.items() if v not in (None, "")}


def register_evaluated_model(
    sagemaker: Any,
    s3: Any,
    request: RegistrationRequest,
    *,
    group: str,
    evaluation_bucket: str,
    region: str,
    settings: ServingSettings,
    kms_key_arn: str | None = None,
    now: datetime | None = None,
) -> Registration:
    """Register ``request``'s model if its evaluation passed the gate; raise otherwise."""
    document = read_results(s3, request.evaluation_results_uri)
    gate = document.quality_gate
    if gate is None:
        raise RegistrationError(
            f"{request.evaluation_results_uri}: the results carry no quality_gate verdict; "
            "evaluate with the job spec's quality gate before registering"
        )
    if not gate.get("passed"):
        failed = "; ".join(c["message"] for c in gate.get("checks", []) if not c.get("passed"))
        raise QualityGateFailedError(
            f"{request.model_name} ({request.job_name}) failed its quality gate: {failed}",
            request.report_uri,
        )

    key = registration_key(request, document)
    statistics_key = f"{EVALUATION_REPORTS_PREFIX}{request.job_name}/model-quality.json"
    statistics_uri = f"s3://{evaluation_bucket}/{statistics_key}"
    existing = find_registered(sagemaker, group, key)
    if existing is not None:
        return Registration(
            existing["ModelPackageArn"], existing["ModelApprovalStatus"], statistics_uri, False
        )

    extra: dict[str, str] = {}
    if kms_key_arn:
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn}
    s3.put_object(
        Bucket=evaluation_bucket,
        Key=statistics_key,
        Body=json.dumps(model_quality_statistics(document), indent=2).encode(),
        ContentType="application/json",
        **extra,
    )
    approval = settings.approval_status
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    create: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": (
            f"{request.model_name} from {request.job_name}, evaluated {stamp}: "
            f"{_headline(document)}"
        )[:1024],
        "ModelApprovalStatus": approval,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics_uri}
            }
        },
        "CustomerMetadataProperties": _metadata(request, document, key),
        # ClientToken: 1-36 characters [a-zA-Z0-9-] (service model); the key is hex.
        "ClientToken": key[:36],
    }
    if request.backend == "sagemaker":
        endpoint = settings.endpoint
        container: dict[str, Any] = {
            "Image": endpoint.image(region),
            "ModelDataUrl": request.model_data_url,
        }
        if endpoint.container == "vllm":
            # LMI serves a merged model from /opt/ml/model with vLLM and the OpenAI schema.
            container["Environment"] = {
                "OPTION_ROLLING_BATCH": "vllm",
                "TENSOR_PARALLEL_DEGREE": "max",
            }
        create["InferenceSpecification"] = {
            "Containers": [container],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [endpoint.instance_type],
        }
    else:
        # No SageMaker container serves a Bedrock custom model; the package records its ARN.
        create["SourceUri"] = request.bedrock_custom_model_arn
    response = sagemaker.create_model_package(**create)
    return Registration(response["ModelPackageArn"], approval, statistics_uri, True)


def _headline(document: EvaluationDocument) -> str:
    metrics = document.tuned.metrics
    parts = [
        f"{name} {metrics[name]:.4f}"
        for name in ("accuracy", "macro_f1", "field_f1", "token_f1")
        if isinstance(metrics.get(name), int | float)
    ]
    for name, delta in document.improvement().items():
        if name in ("accuracy", "field_f1"):
            parts.append(f"{name} {delta:+.4f} over base")
    return ", ".join(parts) or "no quality metrics"

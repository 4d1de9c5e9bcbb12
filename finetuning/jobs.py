"""Job, throughput and deployment specs and results, shared by every backend.

A :class:`FinetuningJobConfig` says what to train; a backend turns it into its own request
(``CreateModelCustomizationJob``, ``CreateTrainingJob`` or a local subprocess) and reports
back a :class:`FinetuningJobResult` whose ``status`` is a backend-neutral :class:`JobStatus`.
``to_dict``/``from_dict`` give the JSON "job details" file the CLI writes and reads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from finetuning.errors import InvalidJobConfigError

# Defined where the platform's functions ship them too (the status with the status mappings it
# is the result of, the commitment terms with the throughput request).
from finetuning.orchestration.aws_jobs.backends import Backend as Backend
from finetuning.orchestration.aws_jobs.job_status import JobStatus as JobStatus
from finetuning.orchestration.aws_jobs.provisioned_throughput import (
    CommitmentDuration as CommitmentDuration,
)

# SageMaker training job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
SAGEMAKER_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# Bedrock jobName: [a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*, 1-63 characters; customModelName and
# provisionedModelName: ([0-9a-zA-Z][_-]?){1,63}.
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
BEDROCK_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*$")
BEDROCK_MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?)+$")
NAME_MAX_LENGTH = 63
# Tag keys 1-128 and values 0-256 characters of [a-zA-Z0-9\s._:/=+@-] (Bedrock Tag shape).
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_Tag.html
TAG_CHARACTERS = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$")
TRAINING_METHODS = ("full", "lora", "qlora")

_T = TypeVar("_T")


def _from_mapping(cls: type[_T], data: Mapping[str, Any], what: str) -> _T:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise InvalidJobConfigError(what, f"a {cls.__name__} or a mapping", type(data).__name__)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InvalidJobConfigError(
            f"{what}.{unknown[0]}",
            f"one of the known fields ({', '.join(names)})",
            unknown[0],
            hint="unknown field",
        )
    return cls(**data)


@dataclass(kw_only=True)
class FinetuningJobConfig:
    """What to fine-tune, with what, and where the results go.

    Fields a job leaves out are filled, in this order, from the service ``config`` (named base
    models, hyperparameter presets) and from the deployed platform's SSM parameters (roles,
    buckets, KMS key, subnets, security groups).

    ``hyperparameters`` uses each backend's own names: Bedrock's camelCase ones
    (``epochCount``, ``learningRate``, ...) checked against the model family's table, or
    ``train.py``'s snake_case ones for ``sagemaker`` and ``local``, which also accept the three
    common Bedrock names (``epochCount``, ``learningRate``, ``batchSize``). A string instead of
    a mapping names a preset from the service config.
    """

    training_data_uri: str | None = None
    base_model: str | None = None
    validation_data_uri: str | None = None
    output_uri: str | None = None
    role_arn: str | None = None
    job_name: str | None = None
    model_name: str | None = None
    hyperparameters: Mapping[str, Any] | str | None = None
    # Used only when validation_data_uri is not given; None disables the automatic split.
    validation_split: float | None = 0.2
    split_seed: int = 42
    model_type: str | None = None
    backend: Backend | str | None = None
    customization_type: str = "FINE_TUNING"
    # REINFORCEMENT_FINE_TUNING: the grader Lambda and rftConfig.hyperParameters
    # (epochCount, batchSize, learningRate, ...; see docs/bedrock.md).
    grader_lambda_arn: str | None = None
    rft_hyperparameters: Mapping[str, Any] | None = None
    # DISTILLATION: the teacher, its maximum response length, and optionally Bedrock
    # invocation logs (s3://) as the prompt source instead of / beside training_data_uri.
    teacher_model: str | None = None
    teacher_max_response_length: int | None = None
    invocation_logs_uri: str | None = None
    use_prompt_response: bool = False
    kms_key_id: str | None = None
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    tags: Mapping[str, str] = field(default_factory=dict)
    client_request_token: str | None = None
    # SageMaker and local: how train.py adapts the model.
    method: str = "lora"
    # SageMaker only.
    instance_type: str | None = None
    instance_count: int = 1
    # None: torchrun when instance_count > 1 or the instance type has several GPUs.
    distributed: bool | None = None
    volume_size_gb: int = 100
    max_run_seconds: int = 24 * 3600
    use_spot_instances: bool = False
    max_wait_seconds: int | None = None
    checkpoint_uri: str | None = None
    enable_network_isolation: bool = False
    image_uri: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | FinetuningJobConfig) -> FinetuningJobConfig:
        return _from_mapping(cls, data, "job")

    def replace(self, **changes: Any) -> FinetuningJobConfig:
        return dataclasses.replace(self, **changes)

    def check_static(self) -> None:
        """Checks that need neither the backend nor AWS: types, ranges, name forms."""
        if self.validation_split is not None:
            split = self.validation_split
            if isinstance(split, bool) or not isinstance(split, int | float) or not 0 < split < 1:
                raise InvalidJobConfigError(
                    "validation_split", "a fraction strictly between 0 and 1 (or None)", split
                )
        if self.method not in TRAINING_METHODS:
            raise InvalidJobConfigError(
                "method", f"one of {', '.join(TRAINING_METHODS)}", self.method
            )
        for name in ("instance_count", "volume_size_gb", "max_run_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidJobConfigError(name, "a positive integer", value)
        if self.max_wait_seconds is not None and (
            not isinstance(self.max_wait_seconds, int) or self.max_wait_seconds < 1
        ):
            raise InvalidJobConfigError(
                "max_wait_seconds", "a positive integer", self.max_wait_seconds
            )
        for name in ("subnet_ids", "security_group_ids"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidJobConfigError(name, "a list of strings", value)
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise InvalidJobConfigError(
                "security_group_ids" if self.subnet_ids else "subnet_ids",
                "subnets and security groups given together (a VPC config needs both)",
                list(self.security_group_ids or self.subnet_ids),
            )
        check_tags(self.tags, "tags")
        if self.hyperparameters is not None and not isinstance(self.hyperparameters, Mapping | str):
            raise InvalidJobConfigError(
                "hyperparameters",
                "a mapping of name to value, or the name of a preset",
                type(self.hyperparameters).__name__,
            )


def check_tags(tags: Mapping[str, str], field_name: str) -> None:
    if not isinstance(tags, Mapping):
        raise InvalidJobConfigError(field_name, "a mapping of tag key to value", tags)
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not TAG_CHARACTERS.match(key):
            raise InvalidJobConfigError(
                f"{field_name}.{key}",
                "a tag key of 1-128 letters, digits, spaces and ._:/=+@-",
                key,
            )
        if not isinstance(value, str) or len(value) > 256 or not TAG_CHARACTERS.match(value):
            raise InvalidJobConfigError(
                f"{field_name}.{key}",
                "a tag value of at most 256 letters, digits, spaces and ._:/=+@-",
                value,
            )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(kw_only=True)
class FinetuningJobResult:
    """A job as a backend reports it. ``job_arn`` is the job's identifier on its backend: a
    Bedrock or SageMaker ARN, or the local job id."""

    job_arn: str
    job_name: str
    status: JobStatus
    backend: Backend
    model_id: str | None = None
    model_name: str | None = None
    base_model: str | None = None
    creation_time: datetime | None = None
    last_modified_time: datetime | None = None
    end_time: datetime | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    training_data_uri: str | None = None
    validation_data_uri: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    training_metrics: dict[str, float] = field(default_factory=dict)
    validation_metrics: dict[str, float] = field(default_factory=dict)
    progress_percentage: float | None = None
    current_step: int | None = None
    total_steps: int | None = None
    backend_status: str | None = None

    @property
    def job_id(self) -> str:
        return self.job_arn

    def to_dict(self) -> dict[str, Any]:
        """The job details JSON: ARN, name, status, model id, times, failure reason and more."""
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        data["backend"] = self.backend.value
        for name in ("creation_time", "last_modified_time", "end_time"):
            data[name] = _iso(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuningJobResult:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        missing = [name for name in ("job_arn", "job_name", "status") if not values.get(name)]
        if missing:
            raise InvalidJobConfigError(
                f"job_details.{missing[0]}", "a job details object with job_arn, job_name, status"
            )
        values["status"] = JobStatus(values["status"])
        values["backend"] = Backend(values.get("backend") or Backend.BEDROCK)
        for name in ("creation_time", "last_modified_time", "end_time"):
            values[name] = _parse_time(values.get(name))
        return cls(**values)


@dataclass(kw_only=True)
class JobPage:
    """One page of ``list_jobs``; pass ``next_token`` back for the next one."""

    jobs: list[FinetuningJobResult]
    next_token: str | None = None


@dataclass(kw_only=True)
class ProvisionedThroughputConfig:
    """A Bedrock Provisioned Throughput for a custom (or base) model.

    ``commitment_duration`` stays ``None`` (no commitment, billed hourly, deletable at any time)
    unless ``OneMonth`` or ``SixMonths`` is asked for explicitly.
    """

    model_id: str
    provisioned_model_name: str
    model_units: int = 1
    commitment_duration: CommitmentDuration | str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    client_request_token: str | None = None
    model_type: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvisionedThroughputConfig:
        for required in ("model_id", "provisioned_model_name"):
            if isinstance(data, Mapping) and not data.get(required):
                raise InvalidJobConfigError(required, "a non-empty value", data.get(required))
        return _from_mapping(cls, data, "throughput")


@dataclass(kw_only=True)
class ProvisionedThroughputResult:
    provisioned_model_arn: str
    provisioned_model_name: str | None = None
    model_arn: str | None = None
    status: str | None = None
    model_units: int | None = None
    desired_model_units: int | None = None
    foundation_model_arn: str | None = None
    commitment_duration: str | None = None
    commitment_expiration_time: datetime | None = None
    creation_time: datetime | None = None
    last_modified_time: datetime | None = None
    failure_message: str | None = None

    # GetProvisionedModelThroughput status: Creating | InService | Updating | Failed.
    @property
    def is_terminal(self) -> bool:
        return self.status in ("InService", "Failed")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("commitment_expiration_time", "creation_time", "last_modified_time"):
            data[name] = _iso(getattr(self, name))
        return data


@dataclass(kw_only=True)
class CustomModelDeploymentConfig:
    """An on-demand deployment of a custom model (pay per token, no model units)."""

    model_arn: str
    deployment_name: str
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    client_request_token: str | None = None


@dataclass(kw_only=True)
class CustomModelDeploymentResult:
    deployment_arn: str
    deployment_name: str | None = None
    model_arn: str | None = None
    status: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    last_updated_at: datetime | None = None
    failure_message: str | None = None

    # GetCustomModelDeployment status: Creating | Active | Failed.
    @property
    def is_terminal(self) -> bool:
        return self.status in ("Active", "Failed")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("created_at", "last_updated_at"):
            data[name] = _iso(getattr(self, name))
        return data

"""The job manifest: one fine-tuning job for the platform, as ``job.yaml`` or ``job.json``.

A manifest is what ``finetune job create --via-platform`` submits and what a file put
under ``s3://<data bucket>/jobs/`` starts. Field names match ``FinetuningJobConfig`` of the
``finetuning`` library where the two overlap. docs/orchestration.md documents every field;
:func:`load_manifest` reports problems as ``FILE:LINE: FIELD: message (got VALUE)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from finetuning.aws_jobs.backends import PLATFORM_BACKENDS, Backend
from finetuning.aws_jobs.bedrock_customization import (
    CONTINUED_PRE_TRAINING,
    DISTILLATION,
    FINE_TUNING,
    LAMBDA_ARN,
    OPEN_WEIGHT_RFT_API_URL,
    OPEN_WEIGHT_RFT_HYPERPARAMETERS,
    REINFORCEMENT_FINE_TUNING,
    CustomizationRuleError,
    check_distillation_pair,
    check_open_weight_rft_hyperparameters,
    check_rft_hyperparameters,
    open_weight_rft_model,
    rft_model_refusal,
)
from finetuning.aws_jobs.on_demand import ineligibility as on_demand_ineligibility
from finetuning.aws_jobs.provisioned_throughput import CommitmentDuration
from finetuning.aws_jobs.source_archives import TRAINING_ENTRY_POINT
from finetuning.evaluation.gate import QualityGate
from finetuning.orchestration import names
from finetuning.orchestration.errors import ManifestError
from finetuning.settings import DEFAULT_INSTANCE_TYPE, InstanceType, StrictModel

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MANIFEST_VERSION = 1
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
# Tag keys 1-128 and values 0-256 characters of letters, digits, spaces and ._:/=+@-
# (the intersection of the Bedrock and SageMaker Tag shapes), see
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_Tag.html and
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
TAG_TEXT = re.compile(r"^[a-zA-Z0-9 ._:/=+@-]*$")
# SageMaker allows 50 tags per resource; the platform adds its own (names.py, tags.py).
MAX_USER_TAGS = 40
# SageMaker StoppingCondition.MaxRuntimeInSeconds: at most 28 days, see
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StoppingCondition.html
MAX_RUNTIME_SECONDS = 28 * 24 * 3600
# Bedrock customModelName: ([0-9a-zA-Z][_-]?){1,63}, see
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
BEDROCK_MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")
# Bedrock customizationType values of CreateModelCustomizationJob (same page) that the
# platform starts; REINFORCEMENT_FINE_TUNING needs the ``rft`` block, DISTILLATION the
# ``distillation`` block (customizationConfig), docs/bedrock.md has a worked example of each.
CUSTOMIZATION_TYPES = (FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, REINFORCEMENT_FINE_TUNING)
SAGEMAKER_ONLY = (
    "method",
    "instance_type",
    "instance_count",
    "volume_size_gb",
    "max_run_seconds",
    "use_spot_instances",
    "max_wait_seconds",
    "image_uri",
    "source_dir_uri",
    "entry_point",
)
BEDROCK_ONLY = ("model_name", "customization_type", "rft", "distillation")
# ProcessingStoppingCondition.MaxRuntimeInSeconds: 1 to 777,600 (9 days), see
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingStoppingCondition.html
MAX_PROCESSING_SECONDS = 777_600
# Model Registry names (model package group members, endpoint names): the pattern that
# finetuning.model_package_registry.RegistrationRequest enforces.
REGISTRY_MODEL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,62}$")
EVALUATION_SAGEMAKER_ONLY = ("instance_type", "volume_size_gb", "max_runtime_seconds", "batch_size")
EVALUATION_BEDROCK_ONLY = ("base_model_id",)

HyperparameterValue = str | bool | int | float


# The manifest's word for "no commitment" (hourly, deletable at any time): the request leaves
# commitmentDuration out.
NO_COMMITMENT = "none"


def _one_of(values: tuple[str, ...]) -> str:
    """Pydantic's own wording for an enum mismatch, for fields that accept part of an enum."""
    quoted = [repr(value) for value in values]
    return "Input should be " + (
        quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    )


class ProvisionedThroughputSpec(StrictModel):
    """Bedrock provisioned throughput created for the tuned model after success."""

    model_units: Annotated[int, Field(ge=1, le=100)] = 1
    commitment: Literal["none"] | CommitmentDuration = NO_COMMITMENT
    # Deleted by the scheduled cleanup this many hours after it is InService (no-commitment
    # throughput only; None takes the platform default).
    expires_after_hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None
    # True tags the throughput finetuning:keep=true: cleanup never deletes it.
    keep: bool = False

    @field_validator("commitment", mode="before")
    @classmethod
    def _known_commitment(cls, value: Any) -> Any:
        terms = (NO_COMMITMENT, *(term.value for term in CommitmentDuration))
        if value not in terms:
            raise ValueError(_one_of(terms))
        return value

    @model_validator(mode="after")
    def _expiry_needs_no_commitment(self) -> ProvisionedThroughputSpec:
        if self.commitment != NO_COMMITMENT and self.expires_after_hours is not None:
            raise ValueError(
                "expires_after_hours applies only to commitment 'none': a throughput with "
                "a commitment cannot be deleted before its term ends"
            )
        return self


class ServingMode(StrEnum):
    """How the workflow serves (and evaluates) a tuned Bedrock model."""

    NONE = "none"
    # A custom model deployment: no hourly charge, tokens billed as the base model's.
    ON_DEMAND = "on_demand"
    # Model units billed every hour the throughput exists.
    PROVISIONED_THROUGHPUT = "provisioned_throughput"


class OnDemandSpec(StrictModel):
    """The on-demand custom model deployment created for the tuned model after success."""

    # Deleted by the scheduled cleanup this many hours after it is Active (None takes the
    # platform default). It costs nothing while idle; the expiry keeps the list tidy.
    expires_after_hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None
    # True tags the deployment finetuning:keep=true: cleanup never deletes it.
    keep: bool = False


class RftSpec(StrictModel):
    """Reinforcement fine-tuning: the grader and rftConfig.hyperParameters.

    Without ``grader_lambda_arn`` the platform's own grader scores each response (exact
    match, classification label or JSON field F1, chosen per record; docs/bedrock.md).
    """

    grader_lambda_arn: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    hyperparameters: dict[str, int | float | str] = Field(default_factory=dict)

    @field_validator("grader_lambda_arn")
    @classmethod
    def _lambda_arn(cls, value: str | None) -> str | None:
        if value is not None and not LAMBDA_ARN.match(value):
            raise ValueError(
                "expected a Lambda function ARN, arn:aws:lambda:REGION:ACCOUNT:function:NAME"
            )
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, int | float | str]) -> dict[str, Any]:
        # Nova's rftConfig names, or the open-weight models' (n_epochs, ...): the two sets
        # are disjoint; JobManifest checks that they are the base model's.
        open_weight = bool(value) and set(value) <= set(OPEN_WEIGHT_RFT_HYPERPARAMETERS)
        check = check_open_weight_rft_hyperparameters if open_weight else check_rft_hyperparameters
        try:
            return check(value)
        except CustomizationRuleError as exc:
            name = exc.field.removeprefix("rft.hyperparameters.")
            raise ValueError(f"{name}: expected {exc.message}") from None


class DistillationSpec(StrictModel):
    """Distillation: the teacher (model id, inference profile or ARN) and its prompts."""

    teacher_model: Annotated[str, Field(min_length=1, max_length=2048)]
    # TeacherModelConfig.maxResponseLengthForInference: tokens asked of the teacher.
    max_response_length: Annotated[int, Field(ge=1)] | None = None
    # Bedrock invocation logs (s3://) as the prompt source, with or without training data.
    invocation_logs_uri: str | None = None
    # Use the logged responses as they are instead of asking the teacher again.
    use_prompt_response: bool = False

    @field_validator("invocation_logs_uri")
    @classmethod
    def _logs(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI.match(value):
            raise ValueError("expected an s3://bucket/prefix of Bedrock invocation logs")
        return value


class ServingSpec(StrictModel):
    # Unset: provisioned_throughput when that block is given, on_demand when the on_demand
    # block is given or when the spec evaluates a model eligible for on-demand deployment,
    # else none (JobManifest.serving_mode).
    mode: ServingMode | None = None
    provisioned_throughput: ProvisionedThroughputSpec | None = None
    on_demand: OnDemandSpec | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> ServingSpec:
        given = [
            ServingMode(name)
            for name in ("provisioned_throughput", "on_demand")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                "give either serving.provisioned_throughput or serving.on_demand, not both"
            )
        if self.mode is not None and given and given[0] != self.mode:
            raise ValueError(
                f"serving.{given[0].value} does not apply to serving.mode {self.mode.value}"
            )
        if self.mode == ServingMode.PROVISIONED_THROUGHPUT and self.provisioned_throughput is None:
            raise ValueError(
                "serving.mode provisioned_throughput needs serving.provisioned_throughput "
                "(for example {} for 1 model unit, no commitment): it is billed per hour"
            )
        return self


class InferenceSpec(StrictModel):
    """Sampling settings of the evaluation; unset ones keep the model's defaults."""

    max_tokens: Annotated[int, Field(ge=1, le=32_768)] = 512
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0, le=500)] | None = None


class EvaluationSpec(StrictModel):
    """The evaluation step (docs/orchestration.md, "Evaluation, gate and registration").

    Without ``test_set_uri`` the step only records the training metrics. With one, Bedrock
    models are evaluated by the serving stack's evaluate-candidate function through their
    provisioned throughput, and SageMaker models by a Processing job; then the model is
    registered in the Model Registry, or the run fails on the quality gate.
    """

    test_set_uri: str | None = None
    task: Literal["classification", "json", "text"] | None = None
    label_key: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    inference: InferenceSpec = InferenceSpec()
    quality_gate: QualityGate | None = None
    compare_with_base: bool = False
    max_samples: Annotated[int, Field(ge=1, le=100_000)] = 200
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    # Register the evaluated model (PendingManualApproval or Approved per the serving
    # settings); the name defaults to the job name made registry-safe.
    register_model: bool = True
    model_name: str | None = None
    # Bedrock only: the model to compare with when it differs from base_model (for example
    # the inference profile us.amazon.nova-lite-v1:0 of amazon.nova-lite-v1:0).
    base_model_id: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    # SageMaker only: the Processing job that runs the evaluation.
    instance_type: InstanceType = DEFAULT_INSTANCE_TYPE
    volume_size_gb: Annotated[int, Field(ge=1, le=16_384)] = 50
    max_runtime_seconds: Annotated[int, Field(ge=60, le=MAX_PROCESSING_SECONDS)] = 2 * 3600
    # Prompts the Processing job's model answers together (None: the evaluation default,
    # finetuning.evaluation.generation.DEFAULT_BATCH_SIZE). Unset stays out of the job id.
    batch_size: Annotated[int, Field(ge=1, le=1024)] | None = None

    @field_validator("test_set_uri")
    @classmethod
    def _test_set(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI.match(value):
            raise ValueError("expected an s3://bucket/key URI of a JSONL test set")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY_MODEL_NAME.match(value):
            raise ValueError("expected 1-63 letters, digits, '-', '_' or '.', starting with one")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationSpec:
        if self.test_set_uri is None:
            given = [
                name
                for name, value in (
                    ("quality_gate", self.quality_gate),
                    ("compare_with_base", self.compare_with_base or None),
                    ("task", self.task),
                    ("label_key", self.label_key),
                )
                if value is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} need test_set_uri: without a test set the "
                    "evaluation step only records the training metrics"
                )
        if self.runs and self.register_model and self.quality_gate is None:
            raise ValueError(
                "register_model needs a quality_gate: the registry records only models that "
                "passed one (set register_model: false to evaluate without registering)"
            )
        if self.quality_gate and self.quality_gate.needs_base and not self.compare_with_base:
            raise ValueError(
                "quality_gate.min_improvement_over_base needs compare_with_base: true "
                "(the base model is evaluated on the same test set)"
            )
        return self

    @property
    def runs(self) -> bool:
        return self.test_set_uri is not None


class JobManifest(StrictModel):
    """One fine-tuning job (see docs/orchestration.md, "Job manifest")."""

    version: Literal[1] = MANIFEST_VERSION
    job_name: Annotated[str, Field(min_length=1, max_length=52)]
    backend: Backend
    base_model: Annotated[str, Field(min_length=1, max_length=2048)]
    # Optional only for distillation from invocation logs (distillation.invocation_logs_uri).
    training_data_uri: str | None = None
    validation_data_uri: str | None = None
    output_uri: str | None = None
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    # Bump to run an unchanged spec again: every field, this one included, feeds the job id.
    revision: Annotated[int, Field(ge=1)] = 1
    # Bedrock only.
    model_name: str | None = None
    customization_type: Literal[
        "FINE_TUNING", "CONTINUED_PRE_TRAINING", "DISTILLATION", "REINFORCEMENT_FINE_TUNING"
    ] = "FINE_TUNING"
    rft: RftSpec | None = None
    distillation: DistillationSpec | None = None
    # SageMaker only.
    method: Literal["full", "lora", "qlora"] = "lora"
    instance_type: InstanceType | None = None
    instance_count: Annotated[int, Field(ge=1, le=64)] = 1
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 100
    max_run_seconds: Annotated[int, Field(ge=60, le=MAX_RUNTIME_SECONDS)] = 24 * 3600
    use_spot_instances: bool = True
    max_wait_seconds: Annotated[int, Field(ge=60)] | None = None
    image_uri: str | None = None
    source_dir_uri: str | None = None
    # Relative to the root of the code archive (source_archives.training_source_archive).
    entry_point: str = TRAINING_ENTRY_POINT
    # After the job: serving to provision, and what the evaluation step receives.
    serving: ServingSpec = ServingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()

    @field_validator("backend", mode="before")
    @classmethod
    def _platform_backend(cls, value: Any) -> Any:
        # The platform runs no local jobs: ``local`` is the library's alone.
        if value not in PLATFORM_BACKENDS:
            raise ValueError(_one_of(tuple(backend.value for backend in PLATFORM_BACKENDS)))
        return value

    @field_validator("job_name")
    @classmethod
    def _job_name(cls, value: str) -> str:
        if not names.slug(value):
            raise ValueError("expected at least one letter or digit")
        return value

    @field_validator("training_data_uri", "validation_data_uri", "output_uri", "source_dir_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI.match(value):
            raise ValueError("expected an s3://bucket/key URI")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not BEDROCK_MODEL_NAME.match(value):
            raise ValueError(
                "expected 1-63 letters and digits, each optionally followed by one _ or -"
            )
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, HyperparameterValue]) -> dict:
        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$", key):
                raise ValueError(f"{key!r} is not a hyperparameter name (letters, digits, _.-)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_USER_TAGS:
            raise ValueError(f"expected at most {MAX_USER_TAGS} tags, got {len(value)}")
        for key, text in value.items():
            if not 1 <= len(key) <= 128 or not TAG_TEXT.match(key) or key.startswith("aws:"):
                raise ValueError(f"tag key {key!r}: expected 1-128 of letters, digits, ._:/=+@-")
            if key.startswith("finetuning:"):
                raise ValueError(f"tag key {key!r}: the finetuning: prefix is the platform's")
            if len(text) > 256 or not TAG_TEXT.match(text):
                raise ValueError(f"tag {key!r}: value expected 0-256 of letters, digits, ._:/=+@-")
        return value

    @field_validator("entry_point")
    @classmethod
    def _entry_point(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or path.suffix != ".py":
            raise ValueError("expected a .py path relative to the source directory")
        return value

    @model_validator(mode="after")
    def _customization(self) -> JobManifest:
        logs = self.distillation is not None and self.distillation.invocation_logs_uri
        if self.training_data_uri is None and not logs:
            raise ValueError(
                "training_data_uri is required (only a distillation from invocation logs, "
                "distillation.invocation_logs_uri, may leave it out)"
            )
        kind = self.customization_type
        if self.rft is not None and kind != REINFORCEMENT_FINE_TUNING:
            raise ValueError(f"rft applies only to REINFORCEMENT_FINE_TUNING (got {kind})")
        if self.distillation is not None and kind != DISTILLATION:
            raise ValueError(f"distillation applies only to DISTILLATION (got {kind})")
        if kind == REINFORCEMENT_FINE_TUNING and open_weight_rft_model(self.base_model):
            self._check_open_weight_rft()
        elif kind == REINFORCEMENT_FINE_TUNING:
            refusal = rft_model_refusal(self.base_model)
            if refusal:
                raise ValueError(f"REINFORCEMENT_FINE_TUNING: base_model must be {refusal}")
            if self.rft is not None and set(self.rft.hyperparameters) & set(
                OPEN_WEIGHT_RFT_HYPERPARAMETERS
            ):
                try:
                    check_rft_hyperparameters(self.rft.hyperparameters)
                except CustomizationRuleError as exc:
                    raise ValueError(f"{exc.field}: expected {exc.message}") from None
            if self.hyperparameters:
                raise ValueError(
                    "REINFORCEMENT_FINE_TUNING takes its hyperparameters in "
                    "rft.hyperparameters (epochCount, batchSize, learningRate, ...)"
                )
        if kind == DISTILLATION:
            if self.distillation is None:
                raise ValueError(
                    "DISTILLATION needs distillation.teacher_model (the model whose answers "
                    "the student learns)"
                )
            if self.hyperparameters:
                raise ValueError("DISTILLATION takes no hyperparameters")
            try:
                check_distillation_pair(self.distillation.teacher_model, self.base_model)
            except CustomizationRuleError as exc:
                raise ValueError(f"{exc.field}: {exc.message}") from None
        return self

    def _check_open_weight_rft(self) -> None:
        """gpt-oss-20b and Qwen3 32B: the workflow starts them through Bedrock's
        OpenAI-compatible API (finetuning.orchestration.open_weight), which takes the data,
        a grader and three hyperparameters only (fine-tuning-openai-job-create.html)."""
        model = open_weight_rft_model(self.base_model)
        if self.rft is None or not self.rft.grader_lambda_arn:
            raise ValueError(
                f"rft.grader_lambda_arn is required for {model}: its job invokes the grader "
                "with the start function's permissions, which cover the platform's grader "
                "(SSM parameter .../orchestration/rft-grader-function-arn) and the settings' "
                f"orchestration.rft_grader_arns; see {OPEN_WEIGHT_RFT_API_URL}"
            )
        try:
            check_open_weight_rft_hyperparameters(self.rft.hyperparameters)
        except CustomizationRuleError as exc:
            raise ValueError(f"{exc.field}: expected {exc.message}") from None
        not_taken = {
            "validation_data_uri": self.validation_data_uri,
            "output_uri": self.output_uri,
            "model_name": self.model_name,
            "tags": self.tags,
            "evaluation.test_set_uri": self.evaluation.test_set_uri,
            "serving": self.serving.mode not in (None, ServingMode.NONE)
            or self.serving.provisioned_throughput is not None
            or self.serving.on_demand is not None,
        }
        for name, value in not_taken.items():
            if value:
                raise ValueError(
                    f"{name} does not apply to {model}: Bedrock's OpenAI-compatible API "
                    f"({OPEN_WEIGHT_RFT_API_URL}) takes training data, a grader and "
                    f"rft.hyperparameters ({', '.join(OPEN_WEIGHT_RFT_HYPERPARAMETERS)}) only, "
                    "and serves the tuned model on demand itself"
                )

    @model_validator(mode="after")
    def _backend_fields(self) -> JobManifest:
        other = SAGEMAKER_ONLY if self.backend == Backend.BEDROCK else BEDROCK_ONLY
        misplaced = sorted(set(other) & self.model_fields_set)
        if misplaced:
            raise ValueError(
                f"{', '.join(misplaced)} apply only to the "
                f"{'sagemaker' if self.backend == Backend.BEDROCK else 'bedrock'} backend "
                f"(this manifest's backend is {self.backend.value})"
            )
        if self.backend == Backend.SAGEMAKER:
            if self.source_dir_uri is None:
                raise ValueError(
                    "source_dir_uri is required for the sagemaker backend: the s3:// URI of "
                    "the training scripts as sourcedir.tar.gz"
                )
            if not self.base_model.startswith("s3://"):
                raise ValueError(
                    "base_model must be an s3:// URI for the sagemaker backend: training jobs "
                    "run with network isolation and cannot download from a model hub"
                )
            if self.serving.model_fields_set:
                raise ValueError(
                    f"serving.{', serving.'.join(sorted(self.serving.model_fields_set))} "
                    "applies only to the bedrock backend; SageMaker models are served "
                    "through model registry approval"
                )
            misplaced = sorted(set(EVALUATION_BEDROCK_ONLY) & self.evaluation.model_fields_set)
            if misplaced:
                raise ValueError(
                    f"evaluation.{', evaluation.'.join(misplaced)} apply only to the bedrock "
                    "backend; open models are compared with base_model"
                )
            wait = self.max_wait_seconds
            if self.use_spot_instances and wait is not None and wait < self.max_run_seconds:
                raise ValueError(
                    f"max_wait_seconds={wait} is less than max_run_seconds="
                    f"{self.max_run_seconds}: managed spot training needs max_wait_seconds "
                    ">= max_run_seconds"
                )
        else:
            misplaced = sorted(set(EVALUATION_SAGEMAKER_ONLY) & self.evaluation.model_fields_set)
            if misplaced:
                raise ValueError(
                    f"evaluation.{', evaluation.'.join(misplaced)} apply only to the sagemaker "
                    "backend (the Processing job that evaluates open models)"
                )
            mode = self.serving_mode
            refusal = on_demand_ineligibility(self.base_model, self.customization_type)
            if mode == ServingMode.ON_DEMAND and refusal:
                raise ValueError(
                    f"serving on_demand is not possible: {refusal}; use serving.mode "
                    "provisioned_throughput (billed per hour) instead"
                )
            if self.evaluation.runs and mode == ServingMode.NONE:
                raise ValueError(
                    "evaluation.test_set_uri needs the tuned model served: a custom model "
                    "answers only through an on-demand deployment or provisioned throughput, "
                    "which the workflow creates before evaluating (and deletes when the gate "
                    "fails); "
                    + (
                        f"{refusal}, so add serving.provisioned_throughput"
                        if refusal
                        else "serving.mode is none: use on_demand or provisioned_throughput"
                    )
                )
        return self

    @property
    def serving_mode(self) -> ServingMode:
        """The serving mode, the default resolved (see ServingSpec.mode)."""
        serving = self.serving
        if serving.mode is not None:
            return serving.mode
        if serving.provisioned_throughput is not None:
            return ServingMode.PROVISIONED_THROUGHPUT
        if serving.on_demand is not None:
            return ServingMode.ON_DEMAND
        eligible = on_demand_ineligibility(self.base_model, self.customization_type) is None
        if self.backend == Backend.BEDROCK and self.evaluation.runs and eligible:
            return ServingMode.ON_DEMAND
        return ServingMode.NONE

    # -- derived -------------------------------------------------------------------------

    def to_spec(self) -> dict[str, Any]:
        """The fields of this backend, JSON-ready: the execution input, the job table's
        ``spec`` and the input of the job id. Validating it again gives an equal manifest."""
        bedrock = self.backend == Backend.BEDROCK
        other = SAGEMAKER_ONLY if bedrock else BEDROCK_ONLY
        exclude: dict[str, Any] = dict.fromkeys(other, True)
        exclude["evaluation"] = set(
            EVALUATION_SAGEMAKER_ONLY if bedrock else EVALUATION_BEDROCK_ONLY
        )
        return self.model_dump(mode="json", exclude_none=True, exclude=exclude)

    @property
    def job_id(self) -> str:
        return names.job_id(self.job_name, self.to_spec())

    @property
    def wait_seconds(self) -> int:
        """Spot max wait: as given, else twice the run time (capped like the run time)."""
        if self.max_wait_seconds is not None:
            return self.max_wait_seconds
        return min(2 * self.max_run_seconds, 2 * MAX_RUNTIME_SECONDS)


def parse_manifest(data: Any, source: str = "<manifest>", text: str | None = None) -> JobManifest:
    """Validate an already-parsed manifest; ``text`` lets errors name line numbers."""
    if not isinstance(data, Mapping):
        raise ManifestError(
            f"{source}: expected a mapping of manifest fields, got {type(data).__name__}"
        )
    try:
        return JobManifest.model_validate(data)
    except ValidationError as exc:
        lines = _field_lines(text) if text else {}
        problems = [_describe(error, source, lines) for error in exc.errors()]
        raise ManifestError(
            f"invalid job manifest {source}:\n" + "\n".join(f"  {p}" for p in problems)
        ) from None


def load_manifest(text: str | bytes, source: str = "<manifest>") -> JobManifest:
    """Parse ``job.yaml`` or ``job.json`` text (chosen by the suffix of ``source``)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{source}: not UTF-8 text ({exc})") from None
    if source.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(exc, "problem", None) or str(exc)
            raise ManifestError(f"{where}: not valid YAML: {problem}") from None
    return parse_manifest(data, source, text)


def _describe(error: Mapping[str, Any], source: str, lines: Mapping[tuple, int]) -> str:
    loc = tuple(error["loc"])
    field = ".".join(str(part) for part in loc) or "(top level)"
    line = _nearest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        parent = JobManifest
        for part in loc[:-1]:
            annotation = parent.model_fields[str(part)].annotation
            parent = next(
                (a for a in getattr(annotation, "__args__", (annotation,)) if _is_model(a)),
                parent,
            )
        message = f"unknown field: expected one of {', '.join(parent.model_fields)}"
    value = error.get("input")
    shown = "" if isinstance(value, Mapping) or error["type"] == "missing" else f" (got {value!r})"
    return f"{where}: {field}: {message}{shown}"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _nearest_line(loc: tuple, lines: Mapping[tuple, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field_lines(text: str) -> dict[tuple, int]:
    """Map each field path (``("serving", "provisioned_throughput")``) to its 1-based line."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                found[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    walk(root, ())
    return found

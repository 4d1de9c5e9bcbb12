"""CreateModelCustomizationJob requests, and the status of a customization job.

Request and response fields follow the API reference (and botocore's service model, which
validates every request in the tests):
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_StatusDetails.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_RFTConfig.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_DistillationConfig.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_InvocationLogsConfig.html

The rules of the customization types (which models take RFT, which teacher/student pairs
distillation accepts, RFT hyperparameter ranges) live here too, beside the request they shape,
so that the library, the manifest and the workflow's functions check the same table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetuning.aws_jobs.hyperparameter_values import bedrock_value
from finetuning.aws_jobs.job_status import JobStatus
from finetuning.aws_jobs.tags import as_key_value_list

# GetModelCustomizationJob status values other than InProgress.
_FINAL_OR_STOPPING = {
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.STOPPING,
    "Stopped": JobStatus.CANCELLED,
}
_TRAINING_STARTED = ("InProgress", "Completed")
_PREPARATION_STEPS = ("validationDetails", "dataProcessingDetails")


# customizationType values that the library, the manifest and the workflow start (the enum
# of CreateModelCustomizationJob also has IMPORTED, which is not a training job).
FINE_TUNING = "FINE_TUNING"
CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"
DISTILLATION = "DISTILLATION"
REINFORCEMENT_FINE_TUNING = "REINFORCEMENT_FINE_TUNING"
CUSTOMIZATION_TYPES = (FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, REINFORCEMENT_FINE_TUNING)

# Models that reinforcement fine-tuning customizes on Bedrock: "Supported models: Amazon
# Nova Lite 2.0", https://docs.aws.amazon.com/bedrock/latest/userguide/nova-rft.html
# (customization id from the supported-models page,
# https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-supported.html).
RFT_BASE_MODEL_PREFIXES = ("amazon.nova-2-lite-v1",)

# The open-weight models Bedrock reinforcement fine-tunes, "Models supported for reinforcement
# fine-tuning" (read 2026-12-05), with their Regions:
# https://docs.aws.amazon.com/bedrock/latest/userguide/reinforcement-fine-tuning.html
# | model       | model id           | Region    |
# |-------------|--------------------|-----------|
# | gpt-oss-20b | openai.gpt-oss-20b | us-west-2 |
# | Qwen3 32B   | qwen.qwen3-32b     | us-west-2 |
# Bedrock trains them through its OpenAI-compatible fine-tuning API only (Files API upload,
# then POST /v1/fine_tuning/jobs with method "reinforcement" and a Lambda grader, on the
# bedrock-mantle endpoint), not CreateModelCustomizationJob:
# https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-apis.html
# https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-job-create.html
# The botocore bedrock model has no trace of them either. The dataset toolkit validates
# their records (finetuning.data.models); the job entry points refuse them with this reason.
OPEN_WEIGHT_RFT_MODELS: dict[str, tuple[str, ...]] = {
    "openai.gpt-oss-20b": ("us-west-2",),
    "qwen.qwen3-32b": ("us-west-2",),
}
OPEN_WEIGHT_RFT_API_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-apis.html"
)

# Distillation teacher -> students, for Amazon Nova ("Amazon Bedrock Distillation: Teacher /
# Student / Teacher and student" column of
# https://docs.aws.amazon.com/nova/latest/userguide/customization.html); teacher and student
# come from the same provider (https://docs.aws.amazon.com/bedrock/latest/userguide/
# prequisites-model-distillation.html). Students are customization ids with their context
# suffix; teachers are matched by model id prefix, so inference profiles
# (us.amazon.nova-premier-v1:0) and ARNs match too.
# | teacher      | students                        |
# |--------------|---------------------------------|
# | Nova Premier | Nova Pro, Nova Lite, Nova Micro |
# | Nova Pro     | Nova Lite, Nova Micro           |
DISTILLATION_PAIRS: dict[str, tuple[str, ...]] = {
    "amazon.nova-premier-v1": (
        "amazon.nova-pro-v1:0:300k",
        "amazon.nova-lite-v1:0:300k",
        "amazon.nova-micro-v1:0:128k",
    ),
    "amazon.nova-pro-v1": ("amazon.nova-lite-v1:0:300k", "amazon.nova-micro-v1:0:128k"),
}
DISTILLATION_PAIRS_URL = "https://docs.aws.amazon.com/nova/latest/userguide/customization.html"


@dataclass(frozen=True)
class RftHyperparameter:
    """One RFTHyperParameters member: its JSON type and valid range (None: unbounded)."""

    name: str
    kind: type  # int, float or str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


# RFTHyperParameters, https://docs.aws.amazon.com/bedrock/latest/APIReference/API_RFTHyperParameters.html
# (and botocore's bedrock service model, which the tests check against):
# | name                    | type    | range            |
# |-------------------------|---------|------------------|
# | epochCount              | integer | 1-50             |
# | batchSize               | integer | 16-512           |
# | learningRate            | float   | 1e-07 - 0.001    |
# | maxPromptLength         | integer | (none documented)|
# | trainingSamplePerPrompt | integer | 2-16             |
# | inferenceMaxTokens      | integer | (none documented)|
# | reasoningEffort         | string  | low/medium/high  |
# | evalInterval            | integer | 1-100            |
RFT_HYPERPARAMETERS: tuple[RftHyperparameter, ...] = (
    RftHyperparameter("epochCount", int, 1, 50),
    RftHyperparameter("batchSize", int, 16, 512),
    RftHyperparameter("learningRate", float, 1e-7, 1e-3),
    RftHyperparameter("maxPromptLength", int, 1, None),
    RftHyperparameter("trainingSamplePerPrompt", int, 2, 16),
    RftHyperparameter("inferenceMaxTokens", int, 1, None),
    RftHyperparameter("reasoningEffort", str, choices=("low", "medium", "high")),
    RftHyperparameter("evalInterval", int, 1, 100),
)
RFT_HYPERPARAMETERS_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_RFTHyperParameters.html"
)
# LambdaGraderConfig.lambdaArn pattern, 1-512 characters:
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_LambdaGraderConfig.html
LAMBDA_ARN = re.compile(
    r"^arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\d{1}:\d{12}:function:"
    r"[a-zA-Z0-9-_\.]+(:(\$LATEST|[a-zA-Z0-9-_]+))?$"
)


class CustomizationRuleError(ValueError):
    """A customization setting Bedrock would refuse; ``field`` names the setting."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _model_id(identifier: str) -> str:
    """The model id in an ARN or inference profile id, lower case, without a geo prefix."""
    text = identifier.strip().lower()
    if text.startswith("arn:"):
        text = text.split(":", 5)[-1].partition("/")[2]
    return re.sub(r"^(?:[a-z]{2,4}\.)(?=[a-z]+\.)", "", text)


def supports_rft(base_model: str) -> bool:
    """Whether CreateModelCustomizationJob reinforcement fine-tunes ``base_model``."""
    return _model_id(base_model).startswith(RFT_BASE_MODEL_PREFIXES)


def open_weight_rft_refusal(base_model: str) -> str | None:
    """Why an open-weight RFT model cannot be started here, or None for any other model."""
    model = _model_id(base_model)
    if model not in OPEN_WEIGHT_RFT_MODELS:
        return None
    regions = ", ".join(OPEN_WEIGHT_RFT_MODELS[model])
    return (
        f"{model} is reinforcement fine-tuned by Bedrock ({regions}) only through its "
        f"OpenAI-compatible fine-tuning API (bedrock-mantle endpoint), not "
        f"CreateModelCustomizationJob, which this platform starts; see {OPEN_WEIGHT_RFT_API_URL}. "
        f"Validate the data here with --customization-type {REINFORCEMENT_FINE_TUNING}"
    )


def rft_model_refusal(base_model: str) -> str | None:
    """None when CreateModelCustomizationJob reinforcement fine-tunes ``base_model``; else
    what was expected, with the open-weight models' own reason where it applies."""
    if supports_rft(base_model):
        return None
    expected = (
        "a model Bedrock reinforcement fine-tunes through CreateModelCustomizationJob "
        "(amazon.nova-2-lite-v1:0:256k; see "
        "https://docs.aws.amazon.com/bedrock/latest/userguide/nova-rft.html)"
    )
    open_weight = open_weight_rft_refusal(base_model)
    return f"{expected}; {open_weight}" if open_weight else expected


def check_rft_hyperparameters(
    values: Mapping[str, Any], field_name: str = "rft.hyperparameters"
) -> dict[str, Any]:
    """Names, types and ranges of RFT hyperparameters; the typed map rftConfig takes.
    ``field_name`` is how errors name the mapping (the manifest's or the library's)."""
    known = {spec.name: spec for spec in RFT_HYPERPARAMETERS}
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = known.get(name)
        where = f"{field_name}.{name}"
        if spec is None:
            raise CustomizationRuleError(
                where, f"one of {', '.join(known)} (see {RFT_HYPERPARAMETERS_URL}); got {name!r}"
            )
        if spec.kind is str:
            if value not in spec.choices:
                raise CustomizationRuleError(
                    where, f"one of {', '.join(spec.choices)}; got {value!r}"
                )
            checked[name] = value
            continue
        number = _number(value, spec.kind)
        if number is None:
            expected = "an integer" if spec.kind is int else "a number"
            raise CustomizationRuleError(where, f"{expected}; got {value!r}")
        low, high = spec.minimum, spec.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise CustomizationRuleError(
                where, f"{bounds} (see {RFT_HYPERPARAMETERS_URL}); got {value!r}"
            )
        checked[name] = number
    return checked


def _number(value: Any, kind: type) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if value == int(value) else None
    return float(value)


def check_distillation_pair(teacher: str, student: str) -> None:
    """Refuse a teacher/student pair that the docs' table does not list."""
    teacher_id, student_id = _model_id(teacher), _model_id(student)
    for prefix, students in DISTILLATION_PAIRS.items():
        if teacher_id.startswith(prefix):
            if student_id not in students:
                raise CustomizationRuleError(
                    "base_model",
                    f"a student of {teacher}: one of {', '.join(students)} "
                    f"(see {DISTILLATION_PAIRS_URL}); got {student!r}",
                )
            return
    raise CustomizationRuleError(
        "distillation.teacher_model",
        "a teacher model of the distillation table: "
        + ", ".join(DISTILLATION_PAIRS)
        + f" (or an inference profile or ARN of one; see {DISTILLATION_PAIRS_URL}); "
        f"got {teacher!r}",
    )


@dataclass(frozen=True, kw_only=True)
class RftSpec:
    """rftConfig: the grader Lambda and the RFT hyperparameters (already checked)."""

    grader_lambda_arn: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DistillationSpec:
    """distillationConfig.teacherModelConfig."""

    teacher_model: str
    max_response_length: int | None = None


@dataclass(frozen=True, kw_only=True)
class InvocationLogsSpec:
    """trainingDataConfig.invocationLogsConfig: Bedrock invocation logs as training data."""

    s3_uri: str
    use_prompt_response: bool = False
    # RequestMetadataFilters "equals" (one key); None: every logged invocation.
    metadata_equals: Mapping[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class CustomizationJobSpec:
    """Everything a CreateModelCustomizationJob request says, resolved by the caller."""

    job_name: str
    custom_model_name: str
    role_arn: str
    base_model: str
    # None only with invocation_logs (distillation from logged invocations).
    training_data_uri: str | None
    output_uri: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    customization_type: str = "FINE_TUNING"
    validation_data_uri: str | None = None
    kms_key_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    subnet_ids: Sequence[str] = ()
    security_group_ids: Sequence[str] = ()
    # None leaves the token out (the library then derives one from the request itself).
    client_request_token: str | None = None
    rft: RftSpec | None = None
    distillation: DistillationSpec | None = None
    invocation_logs: InvocationLogsSpec | None = None


def customization_job_request(spec: CustomizationJobSpec) -> dict[str, Any]:
    """CreateModelCustomizationJob arguments; tags go on the job and on the custom model."""
    request: dict[str, Any] = {
        "jobName": spec.job_name,
        "customModelName": spec.custom_model_name,
        "roleArn": spec.role_arn,
        "baseModelIdentifier": spec.base_model,
        "customizationType": spec.customization_type,
        "trainingDataConfig": _training_data(spec),
        "outputDataConfig": {"s3Uri": spec.output_uri},
    }
    # RFT takes its hyperparameters in rftConfig and distillation none: the string map is
    # sent for fine-tuning and continued pre-training (always, as before), and otherwise
    # only when given.
    if spec.hyperparameters or spec.customization_type in (FINE_TUNING, CONTINUED_PRE_TRAINING):
        request["hyperParameters"] = {
            name: bedrock_value(value) for name, value in spec.hyperparameters.items()
        }
    config = _customization_config(spec)
    if config:
        request["customizationConfig"] = config
    if spec.validation_data_uri:
        request["validationDataConfig"] = {"validators": [{"s3Uri": spec.validation_data_uri}]}
    if spec.kms_key_id:
        request["customModelKmsKeyId"] = spec.kms_key_id
    if spec.tags:
        request["jobTags"] = as_key_value_list(spec.tags)
        request["customModelTags"] = as_key_value_list(spec.tags)
    if spec.subnet_ids:
        request["vpcConfig"] = {
            "subnetIds": list(spec.subnet_ids),
            "securityGroupIds": list(spec.security_group_ids),
        }
    if spec.client_request_token:
        request["clientRequestToken"] = spec.client_request_token
    return request


def _training_data(spec: CustomizationJobSpec) -> dict[str, Any]:
    if spec.invocation_logs is None:
        return {"s3Uri": spec.training_data_uri}
    logs = spec.invocation_logs
    config: dict[str, Any] = {
        "invocationLogSource": {"s3Uri": logs.s3_uri},
        "usePromptResponse": logs.use_prompt_response,
    }
    if logs.metadata_equals:
        config["requestMetadataFilters"] = {"equals": dict(logs.metadata_equals)}
    data: dict[str, Any] = {"invocationLogsConfig": config}
    if spec.training_data_uri:
        data["s3Uri"] = spec.training_data_uri
    return data


def _customization_config(spec: CustomizationJobSpec) -> dict[str, Any]:
    """customizationConfig: a union, so exactly one of rftConfig or distillationConfig."""
    if spec.customization_type == REINFORCEMENT_FINE_TUNING:
        if spec.rft is None:
            raise CustomizationRuleError("rft", "REINFORCEMENT_FINE_TUNING needs a grader")
        rft: dict[str, Any] = {
            "graderConfig": {"lambdaGrader": {"lambdaArn": spec.rft.grader_lambda_arn}}
        }
        if spec.rft.hyperparameters:
            rft["hyperParameters"] = dict(spec.rft.hyperparameters)
        return {"rftConfig": rft}
    if spec.customization_type == DISTILLATION:
        if spec.distillation is None:
            raise CustomizationRuleError("distillation", "DISTILLATION needs a teacher model")
        teacher: dict[str, Any] = {"teacherModelIdentifier": spec.distillation.teacher_model}
        if spec.distillation.max_response_length is not None:
            teacher["maxResponseLengthForInference"] = spec.distillation.max_response_length
        return {"distillationConfig": {"teacherModelConfig": teacher}}
    if spec.rft is not None or spec.distillation is not None:
        raise CustomizationRuleError(
            "customization_type",
            f"REINFORCEMENT_FINE_TUNING or DISTILLATION for an rft or distillation setting; "
            f"got {spec.customization_type}",
        )
    return {}


def customization_job_status(status: str, details: Mapping[str, Any] | None = None) -> JobStatus:
    """The backend-neutral status of a customization job.

    ``InProgress`` is split on ``statusDetails``: preprocessing while validation or data
    processing runs or training has not started, running once training has. StatusDetails is
    optional in the response; without it nothing says the job is still preparing, and an
    ``InProgress`` job counts as running.
    """
    if status in _FINAL_OR_STOPPING:
        return _FINAL_OR_STOPPING[status]
    details = details or {}
    training = (details.get("trainingDetails") or {}).get("status")
    if training in _TRAINING_STARTED:
        return JobStatus.RUNNING
    preparing = [(details.get(step) or {}).get("status") for step in _PREPARATION_STEPS]
    if "InProgress" in preparing or (details and training in (None, "NotStarted")):
        return JobStatus.PREPROCESSING
    return JobStatus.RUNNING

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
# their records (finetuning.data.models); the library, `finetune job create`, the job
# manifest and the workflow start them through that API
# (finetuning.backends.bedrock_openai_rft; the workflow through
# finetuning.orchestration.open_weight, with a short-term API key made from its role).
OPEN_WEIGHT_RFT_MODELS: dict[str, tuple[str, ...]] = {
    "openai.gpt-oss-20b": ("us-west-2",),
    "qwen.qwen3-32b": ("us-west-2",),
}
# Their hyperparameters: the names of the docs' example (fine-tuning-openai-job-create.html),
# with their types; the page gives no ranges, so only positive values are required.
OPEN_WEIGHT_RFT_HYPERPARAMETERS: dict[str, type] = {
    "n_epochs": int,
    "batch_size": int,
    "learning_rate_multiplier": float,
}
OPEN_WEIGHT_RFT_API_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-apis.html"
)

# Distillation teachers and their students, the table "Supported models and Regions for Amazon
# Bedrock Model Distillation" of
# https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html
# (read 2026-12-05). Students are customization ids as Bedrock expects them (context suffix
# included); teachers are foundation-model ids. "Inference profile support" says how the
# teacher may be named: by its model id (on demand), by its cross-Region (system) inference
# profile, or both; "If you use a Cross Region Inference Profile, only System Inference
# Profiles are supported" (same page). The job runs in the teacher's Region.
# | teacher              | named as        | students                          | Region    |
# |----------------------|-----------------|-----------------------------------|-----------|
# | Nova Pro             | both            | Nova Lite, Nova Micro             | us-east-1 |
# | Nova Premier (EOL)   | profile only    | Nova Lite, Nova Micro, Nova Pro   | us-east-1 |
# | Claude 3.5 Sonnet v1 | (suspended)     | Claude 3 Haiku                    | us-west-2 |
# | Claude 3.5 Sonnet v2 | (suspended)     | Claude 3 Haiku                    | us-west-2 |
# | Llama 3.1 405B       | on demand       | Llama 3.1 8B/70B, 3.2 1B, 3.3 70B | us-west-2 |
# | Llama 3.1 70B        | both            | Llama 3.1 8B, 3.2 1B, 3.2 3B      | us-west-2 |
# | Llama 3.3 70B        | profile only    | Llama 3.1 8B, 3.2 1B, 3.2 3B      | us-west-2 |
# The profiles' destination Regions, called from the job's Region, are from "Supported
# cross-Region inference profiles",
# https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html
# (us.amazon.nova-pro-v1:0 and us.amazon.nova-premier-v1:0 from us-east-1,
# us.meta.llama3-1-70b-instruct-v1:0 and us.meta.llama3-3-70b-instruct-v1:0 from us-west-2:
# us-east-1, us-east-2, us-west-2).
DISTILLATION_PAIRS_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html"
)
DISTILLATION_TABLE_READ = "2026-12-05"
ON_DEMAND = "on-demand"
INFERENCE_PROFILE = "inference-profile"
_US_PROFILE_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
_NOVA_STUDENTS = ("amazon.nova-lite-v1:0:300k", "amazon.nova-micro-v1:0:128k")
_LLAMA_SMALL_STUDENTS = (
    "meta.llama3-1-8b-instruct-v1:0:128k",
    "meta.llama3-2-1b-instruct-v1:0:128k",
    "meta.llama3-2-3b-instruct-v1:0:128k",
)


@dataclass(frozen=True)
class DistillationTeacher:
    """One row of the docs' distillation table."""

    model_id: str  # foundation-model id, amazon.nova-pro-v1:0
    name: str
    students: tuple[str, ...]  # customization ids
    region: str  # where Bedrock runs the distillation job
    invoked_as: tuple[str, ...]  # ON_DEMAND and/or INFERENCE_PROFILE
    profile_regions: tuple[str, ...] = ()  # the profile's destinations from ``region``
    # Why Bedrock does not take this teacher now (None: it does), with the page and date.
    unavailable: str | None = None

    @property
    def profile_id(self) -> str | None:
        """The system (US) inference profile, where the table lets the teacher use one."""
        return f"us.{self.model_id}" if INFERENCE_PROFILE in self.invoked_as else None


_ANTHROPIC_SUSPENDED = (
    'Bedrock does not distil Anthropic models at present ("Distillation is not currently '
    f'available for Anthropic models on Amazon Bedrock", {DISTILLATION_PAIRS_URL}, read '
    f"{DISTILLATION_TABLE_READ})"
)
DISTILLATION_TEACHERS: tuple[DistillationTeacher, ...] = (
    DistillationTeacher(
        model_id="amazon.nova-pro-v1:0",
        name="Amazon Nova Pro",
        students=_NOVA_STUDENTS,
        region="us-east-1",
        invoked_as=(ON_DEMAND, INFERENCE_PROFILE),
        profile_regions=_US_PROFILE_REGIONS,
    ),
    DistillationTeacher(
        model_id="amazon.nova-premier-v1:0",
        name="Amazon Nova Premier",
        students=(*_NOVA_STUDENTS, "amazon.nova-pro-v1:0:300k"),
        region="us-east-1",
        invoked_as=(INFERENCE_PROFILE,),
        profile_regions=_US_PROFILE_REGIONS,
        # Still in the distillation table, but past its end of life: requests to a model
        # fail after its EOL date (https://docs.aws.amazon.com/bedrock/latest/userguide/
        # model-lifecycle-legacy.html).
        unavailable=(
            'Amazon Nova Premier reached its end of life on 2026-09-14 ("Model lifecycle: '
            'Legacy", "Model EOL date: September 14, 2026", https://docs.aws.amazon.com/'
            "bedrock/latest/userguide/model-card-amazon-nova-premier.html, read "
            f"{DISTILLATION_TABLE_READ}); Bedrock no longer runs it"
        ),
    ),
    DistillationTeacher(
        model_id="anthropic.claude-3-5-sonnet-20240620-v1:0",
        name="Anthropic Claude 3.5 Sonnet v1",
        students=("anthropic.claude-3-haiku-20240307-v1:0:200k",),
        region="us-west-2",
        invoked_as=(ON_DEMAND, INFERENCE_PROFILE),
        unavailable=_ANTHROPIC_SUSPENDED,
    ),
    DistillationTeacher(
        model_id="anthropic.claude-3-5-sonnet-20241022-v2:0",
        name="Anthropic Claude 3.5 Sonnet v2",
        students=("anthropic.claude-3-haiku-20240307-v1:0:200k",),
        region="us-west-2",
        invoked_as=(ON_DEMAND, INFERENCE_PROFILE),
        unavailable=_ANTHROPIC_SUSPENDED,
    ),
    DistillationTeacher(
        model_id="meta.llama3-1-405b-instruct-v1:0",
        name="Meta Llama 3.1 405B Instruct",
        students=(
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "meta.llama3-1-70b-instruct-v1:0:128k",
            "meta.llama3-2-1b-instruct-v1:0:128k",
            "meta.llama3-3-70b-instruct-v1:0:128k",
        ),
        region="us-west-2",
        invoked_as=(ON_DEMAND,),
    ),
    DistillationTeacher(
        model_id="meta.llama3-1-70b-instruct-v1:0",
        name="Meta Llama 3.1 70B Instruct",
        students=_LLAMA_SMALL_STUDENTS,
        region="us-west-2",
        invoked_as=(ON_DEMAND, INFERENCE_PROFILE),
        profile_regions=_US_PROFILE_REGIONS,
    ),
    DistillationTeacher(
        model_id="meta.llama3-3-70b-instruct-v1:0",
        name="Meta Llama 3.3 70B Instruct",
        students=_LLAMA_SMALL_STUDENTS,
        region="us-west-2",
        invoked_as=(INFERENCE_PROFILE,),
        profile_regions=_US_PROFILE_REGIONS,
    ),
)
# Teacher model id -> the customization ids of its students, for the teachers Bedrock takes.
DISTILLATION_PAIRS: dict[str, tuple[str, ...]] = {
    teacher.model_id: teacher.students
    for teacher in DISTILLATION_TEACHERS
    if teacher.unavailable is None
}


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


def open_weight_rft_model(base_model: str) -> str | None:
    """The model id of an open-weight RFT model (``openai.gpt-oss-20b``), or None."""
    model = _model_id(base_model)
    return model if model in OPEN_WEIGHT_RFT_MODELS else None


def open_weight_rft_refusal(base_model: str) -> str | None:
    """Why an open-weight RFT model cannot be started through CreateModelCustomizationJob
    (the Bedrock backend), or None for any other model."""
    model = open_weight_rft_model(base_model)
    if model is None:
        return None
    regions = ", ".join(OPEN_WEIGHT_RFT_MODELS[model])
    return (
        f"{model} is reinforcement fine-tuned by Bedrock ({regions}) only through its "
        f"OpenAI-compatible fine-tuning API (bedrock-mantle endpoint), not "
        f"CreateModelCustomizationJob; `finetune job create`, the library, the job manifest "
        f"and the workflow start it through that API (see {OPEN_WEIGHT_RFT_API_URL}). "
        f"Validate the data here with --customization-type {REINFORCEMENT_FINE_TUNING}"
    )


def check_open_weight_rft_hyperparameters(
    values: Mapping[str, Any], field_name: str = "rft.hyperparameters"
) -> dict[str, Any]:
    """Names and types of an open-weight RFT job's hyperparameters (positive values; the
    docs give no ranges)."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        kind = OPEN_WEIGHT_RFT_HYPERPARAMETERS.get(name)
        where = f"{field_name}.{name}"
        if kind is None:
            raise CustomizationRuleError(
                where,
                f"one of {', '.join(OPEN_WEIGHT_RFT_HYPERPARAMETERS)} (see "
                f"{OPEN_WEIGHT_RFT_API_URL}); got {name!r}",
            )
        number = _number(value, kind)
        if number is None or number <= 0:
            expected = "a positive integer" if kind is int else "a positive number"
            raise CustomizationRuleError(where, f"{expected}; got {value!r}")
        checked[name] = number
    return checked


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


def _teacher_forms(teacher: DistillationTeacher) -> str:
    """How a teacher may be named in teacherModelIdentifier: its id and/or its profile."""
    forms = [teacher.model_id] if ON_DEMAND in teacher.invoked_as else []
    if teacher.profile_id:
        forms.append(teacher.profile_id)
    return " or ".join(forms)


def _student_key(model_id: str) -> str:
    """A student id without its context suffix (amazon.nova-lite-v1:0:300k -> ...-v1:0)."""
    return re.sub(r"(:\d+):\d+k$", r"\1", model_id)


def distillation_teachers_for(student: str) -> list[DistillationTeacher]:
    """The teachers Bedrock takes now for ``student`` (any id form of it)."""
    key = _student_key(_model_id(student))
    return [
        teacher
        for teacher in DISTILLATION_TEACHERS
        if teacher.unavailable is None
        and key in {_student_key(candidate) for candidate in teacher.students}
    ]


def _teachers_of(student: str) -> str:
    teachers = distillation_teachers_for(student)
    if not teachers:
        return f"no teacher that Bedrock takes now distils {student!r}"
    return f"teachers of {student!r}: " + "; ".join(_teacher_forms(t) for t in teachers)


def distillation_teacher(identifier: str) -> DistillationTeacher | None:
    """The table's row for a teacher id, inference profile id or ARN (None: not a teacher)."""
    model_id = _model_id(identifier)
    return next((t for t in DISTILLATION_TEACHERS if t.model_id == model_id), None)


def _teacher_kind(identifier: str) -> str:
    """ON_DEMAND, INFERENCE_PROFILE, or the ARN's resource type when it is neither."""
    text = identifier.strip().lower()
    if text.startswith("arn:"):
        resource = text.split(":", 5)[-1].partition("/")[0]
        return {"foundation-model": ON_DEMAND, "inference-profile": INFERENCE_PROFILE}.get(
            resource, resource
        )
    return INFERENCE_PROFILE if _model_id(text) != text else ON_DEMAND


def check_distillation_pair(teacher: str, student: str) -> None:
    """Refuse a teacher/student pair that the docs' table does not list, a teacher Bedrock no
    longer takes, or a teacher named in a form the table does not allow for it."""
    field_name = "distillation.teacher_model"
    row = distillation_teacher(teacher)
    if row is None:
        raise CustomizationRuleError(
            field_name,
            f"a teacher of the distillation table ({_teachers_of(student)}; see "
            f"{DISTILLATION_PAIRS_URL}); got {teacher!r}",
        )
    if row.unavailable:
        raise CustomizationRuleError(
            field_name, f"{row.unavailable}; {_teachers_of(student)}; got {teacher!r}"
        )
    kind = _teacher_kind(teacher)
    geo = _model_id(teacher) if kind == INFERENCE_PROFILE else ""
    profile = teacher.strip().lower().rsplit("/", 1)[-1]
    if (
        kind not in (ON_DEMAND, INFERENCE_PROFILE)
        or kind not in row.invoked_as
        or (geo and profile != row.profile_id)
    ):
        # Application inference profiles, other geographies, or the form the table excludes.
        raise CustomizationRuleError(
            field_name,
            f"{row.name} teaches as {_teacher_forms(row)} (the table's inference profile "
            f"support; see {DISTILLATION_PAIRS_URL}); got {teacher!r}",
        )
    student_id = _model_id(student)
    if student_id not in row.students:
        raise CustomizationRuleError(
            "base_model",
            f"a student of {row.name}: one of {', '.join(row.students)} (customization ids, "
            f"with the context suffix; {_teachers_of(student)}; see {DISTILLATION_PAIRS_URL}); "
            f"got {student!r}",
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

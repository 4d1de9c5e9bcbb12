"""Bedrock model customization jobs.

Request and response fields follow the API reference:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListModelCustomizationJobs.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_StopModelCustomizationJob.html
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from finetuning.aws_jobs.bedrock_customization import (
    CUSTOMIZATION_TYPES,
    DISTILLATION,
    LAMBDA_ARN,
    REINFORCEMENT_FINE_TUNING,
    CustomizationJobSpec,
    CustomizationRuleError,
    DistillationSpec,
    InvocationLogsSpec,
    RftSpec,
    check_distillation_pair,
    check_rft_hyperparameters,
    customization_job_request,
    customization_job_status,
    open_weight_rft_refusal,
    rft_model_refusal,
)
from finetuning.backends.base import request_token
from finetuning.data.models import region_refusal
from finetuning.errors import InvalidJobConfigError, JobNotFoundError
from finetuning.hyperparameters import (
    check_model_type,
    require_family,
    validate_bedrock_hyperparameters,
)
from finetuning.jobs import (
    BEDROCK_JOB_NAME,
    BEDROCK_MODEL_NAME,
    NAME_MAX_LENGTH,
    Backend,
    FinetuningJobConfig,
    FinetuningJobResult,
    JobPage,
    JobStatus,
)
from finetuning.uris import check_bedrock_s3_uri

# roleArn: arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+ (max 2048)
ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
# customModelKmsKeyId: a key ARN, alias ARN, key id or alias name.
KMS_KEY = re.compile(
    r"^((arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))"
    r"|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+))$"
)
JOB_ARN_MARKER = ":model-customization-job/"
# A repeated create with the same name answers one of these when the job already exists.
_EXISTS_CODES = ("ResourceInUseException", "ConflictException")
# ListModelCustomizationJobs maxResults: 1-1000.
MAX_PAGE_SIZE = 1000

_STATUS_EQUALS = {
    JobStatus.PREPROCESSING: "InProgress",
    JobStatus.RUNNING: "InProgress",
    JobStatus.STOPPING: "Stopping",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Stopped",
}


def model_name_for(job_name: str) -> str:
    """A customModelName derived from a job name (job names allow '.', '+' and '--')."""
    name = re.sub(r"[^0-9a-zA-Z]+", "-", job_name).strip("-") or "model"
    suffix = "-model"
    return name[: NAME_MAX_LENGTH - len(suffix)].rstrip("-") + suffix


def check_customization_settings(config: FinetuningJobConfig) -> None:
    """The settings of RFT and distillation jobs, against the docs' tables."""
    kind = config.customization_type
    rft_given = config.grader_lambda_arn or config.rft_hyperparameters
    distillation_given = (
        config.teacher_model or config.teacher_max_response_length or config.invocation_logs_uri
    )
    if rft_given and kind != REINFORCEMENT_FINE_TUNING:
        raise InvalidJobConfigError(
            "customization_type",
            "REINFORCEMENT_FINE_TUNING (grader_lambda_arn and rft_hyperparameters are RFT "
            "settings)",
            kind,
        )
    if distillation_given and kind != DISTILLATION:
        raise InvalidJobConfigError(
            "customization_type",
            "DISTILLATION (teacher_model, teacher_max_response_length and invocation_logs_uri "
            "are distillation settings)",
            kind,
        )
    try:
        if kind == REINFORCEMENT_FINE_TUNING:
            refusal = rft_model_refusal(config.base_model)
            if refusal:
                raise InvalidJobConfigError("base_model", refusal, config.base_model)
            if not config.grader_lambda_arn or not LAMBDA_ARN.match(config.grader_lambda_arn):
                raise InvalidJobConfigError(
                    "grader_lambda_arn",
                    "the ARN of the grader Lambda function (arn:aws:lambda:REGION:ACCOUNT:"
                    "function:NAME), e.g. the platform's grader",
                    config.grader_lambda_arn,
                )
            check_rft_hyperparameters(config.rft_hyperparameters or {}, "rft_hyperparameters")
        elif kind == DISTILLATION:
            if not config.teacher_model:
                raise InvalidJobConfigError(
                    "teacher_model", "the teacher model id, inference profile or ARN", None
                )
            check_distillation_pair(config.teacher_model, config.base_model)
            length = config.teacher_max_response_length
            if length is not None and (
                isinstance(length, bool) or not isinstance(length, int) or length < 1
            ):
                raise InvalidJobConfigError(
                    "teacher_max_response_length", "a positive number of tokens", length
                )
            if config.invocation_logs_uri:
                check_bedrock_s3_uri(config.invocation_logs_uri, "invocation_logs_uri")
    except CustomizationRuleError as exc:
        raise InvalidJobConfigError(exc.field, exc.message, None) from None


def customization_settings(config: FinetuningJobConfig) -> dict[str, Any]:
    """The CustomizationJobSpec fields of an RFT or distillation job (checked already)."""
    if config.customization_type == REINFORCEMENT_FINE_TUNING:
        return {
            "rft": RftSpec(
                grader_lambda_arn=config.grader_lambda_arn,
                hyperparameters=check_rft_hyperparameters(config.rft_hyperparameters or {}),
            )
        }
    if config.customization_type == DISTILLATION:
        settings: dict[str, Any] = {
            "distillation": DistillationSpec(
                teacher_model=config.teacher_model,
                max_response_length=config.teacher_max_response_length,
            )
        }
        if config.invocation_logs_uri:
            settings["invocation_logs"] = InvocationLogsSpec(
                s3_uri=config.invocation_logs_uri, use_prompt_response=config.use_prompt_response
            )
        return settings
    return {}


class BedrockBackend:
    name = Backend.BEDROCK

    def __init__(self, client: Any) -> None:
        self.client = client

    # -- validation ------------------------------------------------------------------------

    def check(
        self, config: FinetuningJobConfig, sources: dict[str, str] | None = None
    ) -> dict[str, str]:
        required = ["base_model", "output_uri", "role_arn", "job_name"]
        if not config.invocation_logs_uri:
            required.insert(1, "training_data_uri")
        for name in required:
            if not getattr(config, name):
                raise InvalidJobConfigError(
                    name,
                    "a value (Bedrock jobs need base_model, training_data_uri, output_uri, "
                    "role_arn and job_name; a deployed platform provides role_arn and "
                    "output_uri)",
                    getattr(config, name),
                )
        open_weight = config.customization_type == REINFORCEMENT_FINE_TUNING and (
            open_weight_rft_refusal(config.base_model)
        )
        if open_weight:  # before the hyperparameter tables, which have no open-weight models
            refusal = rft_model_refusal(config.base_model)
            raise InvalidJobConfigError("base_model", str(refusal), config.base_model)
        family = require_family(config.base_model)
        # The job runs in the client's Region (None: a check before any client exists).
        region = getattr(getattr(self.client, "meta", None), "region_name", None)
        refusal = region_refusal(config.base_model, region)
        if refusal:
            raise InvalidJobConfigError("base_model", refusal, config.base_model)
        check_model_type(config.model_type, family)
        if config.training_data_uri:
            check_bedrock_s3_uri(config.training_data_uri, "training_data_uri")
        check_bedrock_s3_uri(config.output_uri, "output_uri")
        if config.validation_data_uri:
            check_bedrock_s3_uri(config.validation_data_uri, "validation_data_uri")
        if not ROLE_ARN.match(config.role_arn) or len(config.role_arn) > 2048:
            raise InvalidJobConfigError(
                "role_arn",
                "an IAM role ARN such as arn:aws:iam::123456789012:role/Name",
                config.role_arn,
            )
        if len(config.job_name) > NAME_MAX_LENGTH or not BEDROCK_JOB_NAME.match(config.job_name):
            raise InvalidJobConfigError(
                "job_name",
                "1-63 letters, digits, '+', '.' and '-', starting with a letter or digit",
                config.job_name,
            )
        model_name = config.model_name or model_name_for(config.job_name)
        if len(model_name) > NAME_MAX_LENGTH or not BEDROCK_MODEL_NAME.match(model_name):
            raise InvalidJobConfigError(
                "model_name",
                "1-63 letters and digits, single '-' or '_' between them",
                model_name,
            )
        if config.kms_key_id and not KMS_KEY.match(config.kms_key_id):
            raise InvalidJobConfigError(
                "kms_key_id", "a KMS key ARN, key id, alias ARN or alias/name", config.kms_key_id
            )
        if config.customization_type not in CUSTOMIZATION_TYPES:
            raise InvalidJobConfigError(
                "customization_type",
                f"one of {', '.join(CUSTOMIZATION_TYPES)}",
                config.customization_type,
            )
        check_customization_settings(config)
        hyperparameters = config.hyperparameters or {}
        if config.customization_type in (REINFORCEMENT_FINE_TUNING, DISTILLATION):
            if hyperparameters:
                raise InvalidJobConfigError(
                    "hyperparameters",
                    "none for "
                    + config.customization_type
                    + " (RFT takes rft_hyperparameters; distillation takes none)",
                    dict(hyperparameters),
                )
            return {}
        return validate_bedrock_hyperparameters(family, hyperparameters, sources)

    # -- requests ---------------------------------------------------------------------------

    def build_request(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> dict[str, Any]:
        request = customization_job_request(
            CustomizationJobSpec(
                job_name=config.job_name,
                custom_model_name=config.model_name or model_name_for(config.job_name),
                role_arn=config.role_arn,
                base_model=config.base_model,
                customization_type=config.customization_type,
                training_data_uri=config.training_data_uri,
                validation_data_uri=config.validation_data_uri,
                output_uri=config.output_uri,
                hyperparameters=hyperparameters,
                kms_key_id=config.kms_key_id,
                tags=config.tags,
                subnet_ids=config.subnet_ids,
                security_group_ids=config.security_group_ids,
                **customization_settings(config),
            )
        )
        request["clientRequestToken"] = config.client_request_token or request_token(request)
        return request

    def create(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> FinetuningJobResult:
        request = self.build_request(config, hyperparameters)
        try:
            job_arn = self.client.create_model_customization_job(**request)["jobArn"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _EXISTS_CODES:
                raise
            # Same name already used: the same spec means this is a retry of a call that
            # succeeded (idempotent success); a different spec is a real conflict.
            existing = self.client.get_model_customization_job(jobIdentifier=config.job_name)
            if existing.get("clientRequestToken") != request["clientRequestToken"]:
                raise InvalidJobConfigError(
                    "job_name",
                    "a name no other job uses (a job with this name exists and was created "
                    "from a different spec)",
                    config.job_name,
                ) from exc
            return self._result(existing)
        return self.get(job_arn)

    def get(self, identifier: str) -> FinetuningJobResult:
        try:
            response = self.client.get_model_customization_job(jobIdentifier=identifier)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise JobNotFoundError(identifier, "bedrock") from exc
            raise
        return self._result(response)

    def list(
        self,
        status_filter: JobStatus | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> JobPage:
        if status_filter is JobStatus.QUEUED:
            return JobPage(jobs=[])  # Bedrock has no queued state.
        request: dict[str, Any] = {"sortBy": "CreationTime", "sortOrder": "Descending"}
        if status_filter is not None:
            request["statusEquals"] = _STATUS_EQUALS[status_filter]
        if limit is not None:
            request["maxResults"] = max(1, min(limit, MAX_PAGE_SIZE))
        if next_token:
            request["nextToken"] = next_token
        response = self.client.list_model_customization_jobs(**request)
        jobs = [self._summary(item) for item in response.get("modelCustomizationJobSummaries", [])]
        if status_filter in (JobStatus.PREPROCESSING, JobStatus.RUNNING):
            jobs = [job for job in jobs if job.status is status_filter]
        return JobPage(jobs=jobs, next_token=response.get("nextToken"))

    def stop(self, identifier: str) -> FinetuningJobResult:
        try:
            self.client.stop_model_customization_job(jobIdentifier=identifier)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise JobNotFoundError(identifier, "bedrock") from exc
            raise
        return self.get(identifier)

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def _status(response: dict[str, Any]) -> JobStatus:
        return customization_job_status(
            response.get("status", "InProgress"), response.get("statusDetails")
        )

    def _result(self, response: dict[str, Any]) -> FinetuningJobResult:
        status = self._status(response)
        validation: dict[str, float] = {}
        for index, item in enumerate(response.get("validationMetrics") or []):
            for key, value in item.items():
                validation[key if index == 0 else f"{key}_{index}"] = value
        validators = (response.get("validationDataConfig") or {}).get("validators") or []
        return FinetuningJobResult(
            job_arn=response["jobArn"],
            job_name=response["jobName"],
            status=status,
            backend=Backend.BEDROCK,
            model_id=response.get("outputModelArn"),
            model_name=response.get("outputModelName"),
            base_model=response.get("baseModelArn"),
            creation_time=response.get("creationTime"),
            last_modified_time=response.get("lastModifiedTime"),
            end_time=response.get("endTime"),
            # Only a failed job has a meaningful failure message.
            failure_reason=response.get("failureMessage") if status is JobStatus.FAILED else None,
            output_uri=(response.get("outputDataConfig") or {}).get("s3Uri"),
            training_data_uri=(response.get("trainingDataConfig") or {}).get("s3Uri"),
            validation_data_uri=validators[0]["s3Uri"] if validators else None,
            hyperparameters=dict(response.get("hyperParameters") or {}),
            training_metrics=dict(response.get("trainingMetrics") or {}),
            validation_metrics=validation,
            backend_status=response.get("status"),
        )

    def _summary(self, item: dict[str, Any]) -> FinetuningJobResult:
        status = self._status(item)
        return FinetuningJobResult(
            job_arn=item["jobArn"],
            job_name=item["jobName"],
            status=status,
            backend=Backend.BEDROCK,
            model_id=item.get("customModelArn"),
            model_name=item.get("customModelName"),
            base_model=item.get("baseModelArn"),
            creation_time=item.get("creationTime"),
            last_modified_time=item.get("lastModifiedTime"),
            end_time=item.get("endTime"),
            backend_status=item.get("status"),
        )

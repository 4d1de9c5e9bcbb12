"""Bedrock model customization jobs, provisioned throughput and on-demand custom model
deployments, as the workflow uses them.

Request and response fields follow the Bedrock API reference (and botocore's service model,
which validates every request in the tests):
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetProvisionedModelThroughput.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateCustomModelDeployment.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetCustomModelDeployment.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_DeleteCustomModelDeployment.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_DeleteProvisionedModelThroughput.html
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetuning.aws_jobs.bedrock_customization import (
    DISTILLATION,
    REINFORCEMENT_FINE_TUNING,
    CustomizationJobSpec,
    DistillationSpec,
    InvocationLogsSpec,
    RftSpec,
    customization_job_request,
    customization_job_status,
)
from finetuning.aws_jobs.on_demand import custom_model_deployment_request
from finetuning.aws_jobs.provisioned_throughput import (
    CommitmentDuration,
    provisioned_throughput_request,
)
from finetuning.orchestration import names, tags
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ServingResourceBusyError
from finetuning.orchestration.manifest import NO_COMMITMENT, JobManifest
from finetuning.orchestration.state import JobState, finite_metrics
from finetuning.platform import FINAL_MODELS_PREFIX

# GetProvisionedModelThroughput status values: Creating | InService | Updating | Failed.
THROUGHPUT_IN_SERVICE = "InService"
THROUGHPUT_FAILED = "Failed"
# DeleteCustomModelDeployment and DeleteProvisionedModelThroughput answer ConflictException
# ("a conflict while performing an operation", HTTP 400) when the resource cannot be deleted
# in its present state, e.g. still Creating; see the Errors section of both API pages above.
DELETE_CONFLICT = "ConflictException"


def output_uri(manifest: JobManifest, env: Environment, job_id: str) -> str:
    base = manifest.output_uri or f"s3://{env.artifacts_bucket}/{FINAL_MODELS_PREFIX}"
    return f"{base.rstrip('/')}/{job_id}/"


def customization_request(manifest: JobManifest, job_id: str, env: Environment) -> dict[str, Any]:
    """CreateModelCustomizationJob arguments; ``clientRequestToken`` makes retries safe."""
    return customization_job_request(
        CustomizationJobSpec(
            job_name=job_id,
            custom_model_name=manifest.model_name or job_id,
            role_arn=env.bedrock_role_arn,
            client_request_token=job_id,
            base_model=manifest.base_model,
            customization_type=manifest.customization_type,
            kms_key_id=env.platform_key_arn,
            tags=tags.platform_tags(env.resource_prefix, job_id, manifest.tags),
            training_data_uri=manifest.training_data_uri,
            validation_data_uri=manifest.validation_data_uri,
            output_uri=output_uri(manifest, env, job_id),
            hyperparameters=manifest.hyperparameters,
            subnet_ids=env.subnet_ids,
            security_group_ids=env.security_group_ids,
            **_customization(manifest, env),
        )
    )


def _customization(manifest: JobManifest, env: Environment) -> dict[str, Any]:
    """rftConfig / distillationConfig settings; RFT without a grader ARN uses the platform's."""
    if manifest.customization_type == REINFORCEMENT_FINE_TUNING:
        rft = manifest.rft
        return {
            "rft": RftSpec(
                grader_lambda_arn=(rft and rft.grader_lambda_arn) or env.grader_function_arn,
                hyperparameters=rft.hyperparameters if rft else {},
            )
        }
    if manifest.customization_type == DISTILLATION and manifest.distillation is not None:
        spec = manifest.distillation
        settings: dict[str, Any] = {
            "distillation": DistillationSpec(
                teacher_model=spec.teacher_model, max_response_length=spec.max_response_length
            )
        }
        if spec.invocation_logs_uri:
            settings["invocation_logs"] = InvocationLogsSpec(
                s3_uri=spec.invocation_logs_uri, use_prompt_response=spec.use_prompt_response
            )
        return settings
    return {}


def start(client: Any, request: Mapping[str, Any]) -> str:
    """Create the job, or find the one an earlier attempt created; returns its ARN."""
    name = request["jobName"]
    with retryable_errors(f"starting Bedrock customization job {name}"):
        try:
            return client.create_model_customization_job(**request)["jobArn"]
        except client.exceptions.ClientError as exc:
            if error_code(exc) not in ("ResourceInUseException", "ConflictException"):
                raise
            existing = client.get_model_customization_job(jobIdentifier=name)
            return existing["jobArn"]


def describe(client: Any, job_name: str) -> JobState:
    with retryable_errors(f"describing Bedrock customization job {job_name}"):
        job = client.get_model_customization_job(jobIdentifier=job_name)
    metrics: dict[str, Any] = {}
    training = job.get("trainingMetrics") or {}
    if "trainingLoss" in training:
        metrics["train_loss"] = training["trainingLoss"]
    validation = [v.get("validationLoss") for v in job.get("validationMetrics") or []]
    if validation and validation[0] is not None:
        metrics["validation_loss"] = validation[0]
    artifacts = {
        key: value
        for key, value in {
            "custom_model_arn": job.get("outputModelArn"),
            "custom_model_name": job.get("outputModelName"),
            "output_uri": (job.get("outputDataConfig") or {}).get("s3Uri"),
        }.items()
        if value
    }
    usage = {}
    if job.get("creationTime") and job.get("endTime"):
        usage["duration_seconds"] = int((job["endTime"] - job["creationTime"]).total_seconds())
    return JobState(
        job_name=job.get("jobName", job_name),
        status=customization_job_status(job["status"], job.get("statusDetails")),
        backend_status=job["status"],
        failure_reason=job.get("failureMessage"),
        job_arn=job.get("jobArn"),
        metrics=finite_metrics(metrics),
        artifacts=artifacts,
        usage=usage,
    )


def stop(client: Any, job_name: str) -> bool:
    """Stop a running job; False when it had already ended (nothing to stop)."""
    with retryable_errors(f"stopping Bedrock customization job {job_name}"):
        try:
            client.stop_model_customization_job(jobIdentifier=job_name)
        except client.exceptions.ClientError as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFoundException"):
                return False
            raise
    return True


# -- provisioned throughput -------------------------------------------------------------


def throughput_name(job_id: str) -> str:
    return names.derived_name(job_id, "pt")


def throughput_request(
    *,
    job_id: str,
    model_arn: str,
    model_units: int,
    commitment: CommitmentDuration | str,
    serving_tags: Mapping[str, str],
) -> dict[str, Any]:
    """CreateProvisionedModelThroughput arguments for the job's tuned model, named (and made
    idempotent) after the job; ``commitment`` ``none`` asks for no commitment."""
    return provisioned_throughput_request(
        model_id=model_arn,
        provisioned_model_name=throughput_name(job_id),
        model_units=model_units,
        commitment_duration=None if commitment == NO_COMMITMENT else commitment,
        tags=serving_tags,
        client_request_token=throughput_name(job_id),
    )


def create_throughput(client: Any, request: Mapping[str, Any]) -> str:
    name = request["provisionedModelName"]
    with retryable_errors(f"creating provisioned throughput {name}"):
        try:
            return client.create_provisioned_model_throughput(**request)["provisionedModelArn"]
        except client.exceptions.ClientError as exc:
            if error_code(exc) not in ("ResourceInUseException", "ConflictException"):
                raise
            return client.get_provisioned_model_throughput(provisionedModelId=name)[
                "provisionedModelArn"
            ]


def throughput_status(client: Any, provisioned_model: str) -> tuple[str, str | None]:
    """(status, failure message) of a provisioned throughput."""
    with retryable_errors(f"reading provisioned throughput {provisioned_model}"):
        response = client.get_provisioned_model_throughput(provisionedModelId=provisioned_model)
    return response["status"], response.get("failureMessage")


def delete_throughput(client: Any, provisioned_model: str) -> bool:
    """Delete; False when it no longer exists. Raises :class:`ServingResourceBusyError`
    when Bedrock cannot delete it yet (still Creating)."""
    with retryable_errors(f"deleting provisioned throughput {provisioned_model}"):
        try:
            client.delete_provisioned_model_throughput(provisionedModelId=provisioned_model)
        except client.exceptions.ClientError as exc:
            return _deletion_refused(exc, f"provisioned throughput {provisioned_model}")
    return True


def _deletion_refused(exc: Exception, what: str) -> bool:
    """False for a resource already gone; a busy one raises ServingResourceBusyError; any
    other error is raised as it is."""
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        return False
    if code == DELETE_CONFLICT:
        raise ServingResourceBusyError(f"Bedrock cannot delete {what} yet: {exc}") from exc
    raise exc


# -- on-demand custom model deployments ------------------------------------------------


def deployment_name(job_id: str) -> str:
    return names.derived_name(job_id, "od")


def deployment_request(
    *, job_id: str, model_arn: str, serving_tags: Mapping[str, str]
) -> dict[str, Any]:
    """The deployment of a job's custom model; its name (from the job id) is also the
    client token: "If this token matches a previous request, Amazon Bedrock ignores the
    request, but does not return an error" (API_CreateCustomModelDeployment.html)."""
    name = deployment_name(job_id)
    return custom_model_deployment_request(
        model_arn=model_arn,
        deployment_name=name,
        description=f"On-demand deployment of fine-tuning job {job_id}",
        tags=serving_tags,
        client_request_token=name,
    )


def create_deployment(client: Any, request: Mapping[str, Any]) -> str:
    """Create the deployment; returns its ARN. A retry sends the same clientRequestToken,
    which Bedrock answers without creating a second one."""
    name = request["modelDeploymentName"]
    with retryable_errors(f"creating custom model deployment {name}"):
        return client.create_custom_model_deployment(**request)["customModelDeploymentArn"]


def deployment_status(client: Any, deployment: str) -> tuple[str, str | None]:
    """(status, failure message) of a custom model deployment."""
    with retryable_errors(f"reading custom model deployment {deployment}"):
        found = client.get_custom_model_deployment(customModelDeploymentIdentifier=deployment)
    return found["status"], found.get("failureMessage")


def delete_deployment(client: Any, deployment: str) -> bool:
    """Delete; False when it no longer exists. Raises :class:`ServingResourceBusyError`
    when Bedrock cannot delete it yet (still Creating)."""
    with retryable_errors(f"deleting custom model deployment {deployment}"):
        try:
            client.delete_custom_model_deployment(customModelDeploymentIdentifier=deployment)
        except client.exceptions.ClientError as exc:
            return _deletion_refused(exc, f"custom model deployment {deployment}")
    return True

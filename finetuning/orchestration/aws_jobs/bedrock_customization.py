"""CreateModelCustomizationJob requests, and the status of a customization job.

Request and response fields follow the API reference (and botocore's service model, which
validates every request in the tests):
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetModelCustomizationJob.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_StatusDetails.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetuning.orchestration.aws_jobs.hyperparameter_values import bedrock_value
from finetuning.orchestration.aws_jobs.job_status import JobStatus
from finetuning.orchestration.aws_jobs.tags import as_key_value_list

# GetModelCustomizationJob status values other than InProgress.
_FINAL_OR_STOPPING = {
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.STOPPING,
    "Stopped": JobStatus.CANCELLED,
}
_TRAINING_STARTED = ("InProgress", "Completed")
_PREPARATION_STEPS = ("validationDetails", "dataProcessingDetails")


@dataclass(frozen=True, kw_only=True)
class CustomizationJobSpec:
    """Everything a CreateModelCustomizationJob request says, resolved by the caller."""

    job_name: str
    custom_model_name: str
    role_arn: str
    base_model: str
    training_data_uri: str
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


def customization_job_request(spec: CustomizationJobSpec) -> dict[str, Any]:
    """CreateModelCustomizationJob arguments; tags go on the job and on the custom model."""
    request: dict[str, Any] = {
        "jobName": spec.job_name,
        "customModelName": spec.custom_model_name,
        "roleArn": spec.role_arn,
        "baseModelIdentifier": spec.base_model,
        "customizationType": spec.customization_type,
        "trainingDataConfig": {"s3Uri": spec.training_data_uri},
        "outputDataConfig": {"s3Uri": spec.output_uri},
        "hyperParameters": {
            name: bedrock_value(value) for name, value in spec.hyperparameters.items()
        },
    }
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

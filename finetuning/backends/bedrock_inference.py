"""Bedrock inference capacity for the ``ModelFinetuningService`` API: Provisioned Throughput
and on-demand custom model deployments that a user creates, reads, lists and deletes.

(Not the deployment of approved model packages, :mod:`finetuning.approved_model_deployment`,
nor the workflow's serving step, :mod:`finetuning.orchestration.workflow_serving`.)

Request and response fields follow the API reference:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetProvisionedModelThroughput.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListProvisionedModelThroughputs.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateCustomModelDeployment.html
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetCustomModelDeployment.html

Provisioned Throughput bills every hour it exists. No commitment (omit
``commitmentDuration``) is the default: it can be deleted at any time. A one- or six-month
term is used only when asked for explicitly.
"""

from __future__ import annotations

from typing import Any

from finetuning.aws_jobs.on_demand import custom_model_deployment_request
from finetuning.aws_jobs.provisioned_throughput import (
    provisioned_throughput_request,
)
from finetuning.backends.base import request_token
from finetuning.errors import InvalidJobConfigError
from finetuning.hyperparameters import BEDROCK_FAMILIES, family_for_model
from finetuning.jobs import (
    BEDROCK_MODEL_NAME,
    NAME_MAX_LENGTH,
    CommitmentDuration,
    CustomModelDeploymentConfig,
    CustomModelDeploymentResult,
    ProvisionedThroughputConfig,
    ProvisionedThroughputResult,
    check_tags,
)

DEPLOYMENT_ARN_MARKER = ":custom-model-deployment/"
PROVISIONED_ARN_MARKER = ":provisioned-model/"


def _check_name(value: str, field: str) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > NAME_MAX_LENGTH
        or not (BEDROCK_MODEL_NAME.match(value))
    ):
        raise InvalidJobConfigError(
            field, "1-63 letters and digits, single '-' or '_' between them", value
        )


def check_throughput(config: ProvisionedThroughputConfig) -> None:
    if not isinstance(config.model_id, str) or not config.model_id:
        raise InvalidJobConfigError("model_id", "a custom model ARN or model id", config.model_id)
    _check_name(config.provisioned_model_name, "provisioned_model_name")
    units = config.model_units
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise InvalidJobConfigError("model_units", "a positive integer", units)
    if config.commitment_duration is not None:
        allowed = [term.value for term in CommitmentDuration]
        if str(config.commitment_duration) not in allowed:
            raise InvalidJobConfigError(
                "commitment_duration",
                f"None (no commitment) or one of {', '.join(allowed)}",
                config.commitment_duration,
            )
    check_tags(config.tags, "tags")


def check_deployment(config: CustomModelDeploymentConfig) -> None:
    if not isinstance(config.model_arn, str) or ":custom-model/" not in config.model_arn:
        raise InvalidJobConfigError(
            "model_arn",
            "a custom model ARN (arn:aws:bedrock:<region>:<account>:custom-model/...)",
            config.model_arn,
        )
    _check_name(config.deployment_name, "deployment_name")
    family = family_for_model(config.model_arn)
    if family is not None and not family.on_demand_deployment:
        supported = ", ".join(f.display_name for f in BEDROCK_FAMILIES if f.on_demand_deployment)
        raise InvalidJobConfigError(
            "model_arn",
            f"a custom model of a family with on-demand deployment ({supported}); "
            f"{family.display_name} custom models need Provisioned Throughput",
            config.model_arn,
        )
    if config.description is not None and not 1 <= len(config.description) <= 2048:
        raise InvalidJobConfigError("description", "1-2048 characters", config.description)
    check_tags(config.tags, "tags")


class BedrockInference:
    """Provisioned Throughput and on-demand deployments through one Bedrock client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # -- Provisioned Throughput ---------------------------------------------------------------

    def create_throughput(self, config: ProvisionedThroughputConfig) -> ProvisionedThroughputResult:
        check_throughput(config)
        request = provisioned_throughput_request(
            model_id=config.model_id,
            provisioned_model_name=config.provisioned_model_name,
            model_units=config.model_units,
            commitment_duration=config.commitment_duration,
            tags=config.tags or None,
        )
        request["clientRequestToken"] = config.client_request_token or request_token(request)
        arn = self.client.create_provisioned_model_throughput(**request)["provisionedModelArn"]
        return ProvisionedThroughputResult(
            provisioned_model_arn=arn,
            provisioned_model_name=config.provisioned_model_name,
            model_arn=config.model_id,
            status="Creating",
            desired_model_units=config.model_units,
            commitment_duration=request.get("commitmentDuration"),
        )

    def get_throughput(self, provisioned_model_id: str) -> ProvisionedThroughputResult:
        response = self.client.get_provisioned_model_throughput(
            provisionedModelId=provisioned_model_id
        )
        return _throughput(response)

    def delete_throughput(self, provisioned_model_id: str) -> dict[str, Any]:
        return self.client.delete_provisioned_model_throughput(
            provisionedModelId=provisioned_model_id
        )

    def list_throughputs(
        self, status_filter: str | None = None
    ) -> list[ProvisionedThroughputResult]:
        request: dict[str, Any] = {"sortBy": "CreationTime", "sortOrder": "Descending"}
        if status_filter:
            request["statusEquals"] = status_filter
        found: list[ProvisionedThroughputResult] = []
        while True:
            response = self.client.list_provisioned_model_throughputs(**request)
            found.extend(
                _throughput(item) for item in response.get("provisionedModelSummaries", [])
            )
            token = response.get("nextToken")
            if not token:
                return found
            request["nextToken"] = token

    # -- on-demand custom model deployments ---------------------------------------------------

    def create_deployment(self, config: CustomModelDeploymentConfig) -> CustomModelDeploymentResult:
        check_deployment(config)
        request = custom_model_deployment_request(
            model_arn=config.model_arn,
            deployment_name=config.deployment_name,
            description=config.description,
            tags=config.tags,
            client_request_token=config.client_request_token,
        )
        request.setdefault("clientRequestToken", request_token(request))
        arn = self.client.create_custom_model_deployment(**request)["customModelDeploymentArn"]
        return CustomModelDeploymentResult(
            deployment_arn=arn,
            deployment_name=config.deployment_name,
            model_arn=config.model_arn,
            status="Creating",
            description=config.description,
        )

    def get_deployment(self, identifier: str) -> CustomModelDeploymentResult:
        response = self.client.get_custom_model_deployment(
            customModelDeploymentIdentifier=identifier
        )
        return CustomModelDeploymentResult(
            deployment_arn=response["customModelDeploymentArn"],
            deployment_name=response.get("modelDeploymentName"),
            model_arn=response.get("modelArn"),
            status=response.get("status"),
            description=response.get("description"),
            created_at=response.get("createdAt"),
            last_updated_at=response.get("lastUpdatedAt"),
            failure_message=response.get("failureMessage"),
        )

    def delete_deployment(self, identifier: str) -> dict[str, Any]:
        return self.client.delete_custom_model_deployment(
            customModelDeploymentIdentifier=identifier
        )


def _throughput(response: dict[str, Any]) -> ProvisionedThroughputResult:
    return ProvisionedThroughputResult(
        provisioned_model_arn=response["provisionedModelArn"],
        provisioned_model_name=response.get("provisionedModelName"),
        model_arn=response.get("modelArn"),
        status=response.get("status"),
        model_units=response.get("modelUnits"),
        desired_model_units=response.get("desiredModelUnits"),
        foundation_model_arn=response.get("foundationModelArn"),
        commitment_duration=response.get("commitmentDuration"),
        commitment_expiration_time=response.get("commitmentExpirationTime"),
        creation_time=response.get("creationTime"),
        last_modified_time=response.get("lastModifiedTime"),
        failure_message=response.get("failureMessage"),
    )

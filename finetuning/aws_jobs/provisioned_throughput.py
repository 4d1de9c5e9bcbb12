"""Bedrock Provisioned Throughput: its commitment terms and the
CreateProvisionedModelThroughput request (the library's ``BedrockInference``, the workflow's
throughput step and deploy-on-approval all build it here).

https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from finetuning.aws_jobs.tags import as_key_value_list


class CommitmentDuration(StrEnum):
    """Provisioned Throughput terms. No commitment (hourly, cancel any time) is the default and
    is expressed by leaving ``commitmentDuration`` out of the request.
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
    """

    ONE_MONTH = "OneMonth"
    SIX_MONTHS = "SixMonths"


def provisioned_throughput_request(
    *,
    model_id: str,
    provisioned_model_name: str,
    model_units: int,
    commitment_duration: CommitmentDuration | str | None = None,
    tags: Mapping[str, str] | None = None,
    client_request_token: str | None = None,
) -> dict[str, Any]:
    """CreateProvisionedModelThroughput arguments (modelUnits, provisionedModelName and modelId
    required; commitmentDuration, tags and clientRequestToken optional). No commitment unless
    asked: the field is left out for hourly, cancel-any-time throughput. ``tags`` of None are
    left out, an empty mapping is sent as an empty list.
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
    """
    request: dict[str, Any] = {
        "modelUnits": model_units,
        "provisionedModelName": provisioned_model_name,
        "modelId": model_id,
    }
    if commitment_duration is not None:
        request["commitmentDuration"] = CommitmentDuration(commitment_duration).value
    if tags is not None:
        request["tags"] = as_key_value_list(tags)
    if client_request_token:
        request["clientRequestToken"] = client_request_token
    return request

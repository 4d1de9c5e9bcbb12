"""Bedrock Provisioned Throughput: its commitment terms and the
CreateProvisionedModelThroughput request (the library's ``BedrockServing``, the workflow's
throughput step and deploy-on-approval all build it here).

https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
"""

from __future__ import annotations

from enum import StrEnum


class CommitmentDuration(StrEnum):
    """Provisioned Throughput terms. No commitment (hourly, cancel any time) is the default and
    is expressed by leaving ``commitmentDuration`` out of the request.
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
    """

    ONE_MONTH = "OneMonth"
    SIX_MONTHS = "SixMonths"

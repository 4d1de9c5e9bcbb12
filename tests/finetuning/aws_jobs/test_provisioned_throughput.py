"""The one CreateProvisionedModelThroughput builder: what it sends, and that botocore's service
model accepts it."""

from __future__ import annotations

import pytest

from finetuning.aws_jobs.provisioned_throughput import (
    CommitmentDuration,
    provisioned_throughput_request,
)
from tests.support.aws_jobs import assert_valid

MODEL = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abc"


def test_commitment_terms_are_the_api_values() -> None:
    assert [term.value for term in CommitmentDuration] == ["OneMonth", "SixMonths"]


def test_minimal_request_has_no_commitment_tags_or_token() -> None:
    request = provisioned_throughput_request(
        model_id=MODEL, provisioned_model_name="pt-1", model_units=1
    )
    assert request == {"modelUnits": 1, "provisionedModelName": "pt-1", "modelId": MODEL}
    assert_valid("bedrock", "CreateProvisionedModelThroughput", request)


def test_full_request() -> None:
    request = provisioned_throughput_request(
        model_id=MODEL,
        provisioned_model_name="pt-1",
        model_units=2,
        commitment_duration="SixMonths",
        tags={"b": "2", "a": "1"},
        client_request_token="token-1",
    )
    assert request == {
        "modelUnits": 2,
        "provisionedModelName": "pt-1",
        "modelId": MODEL,
        "commitmentDuration": "SixMonths",
        "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
        "clientRequestToken": "token-1",
    }
    assert_valid("bedrock", "CreateProvisionedModelThroughput", request)


def test_empty_tags_are_sent_and_none_left_out() -> None:
    sent = provisioned_throughput_request(
        model_id=MODEL, provisioned_model_name="pt-1", model_units=1, tags={}
    )
    assert sent["tags"] == []


def test_unknown_commitment_is_refused() -> None:
    with pytest.raises(ValueError, match="OneYear"):
        provisioned_throughput_request(
            model_id=MODEL,
            provisioned_model_name="pt-1",
            model_units=1,
            commitment_duration="OneYear",
        )

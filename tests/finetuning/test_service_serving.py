"""Provisioned Throughput and on-demand deployments, with ``botocore.stub.Stubber``.

moto has no Provisioned Throughput or custom model deployment API; the Stubber checks each
request against botocore's real Bedrock service model, so a wrong field name or type fails.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from finetuning.errors import InvalidJobConfigError, WaitTimeoutError
from finetuning.jobs import ProvisionedThroughputConfig
from finetuning.service import ModelFinetuningService

ACCOUNT = "123456789012"
CUSTOM_MODEL = (
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdef123456"
)
LLAMA_CUSTOM_MODEL = (
    f"arn:aws:bedrock:us-west-2:{ACCOUNT}:custom-model/meta.llama3-1-8b-instruct-v1:0:128k/"
    "abcdef123456"
)
FOUNDATION_MODEL = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0:300k"
PT_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abcdef123456"
DEPLOYMENT_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/abcdef123456"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def stubbed():
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    service = ModelFinetuningService(
        session=session, platform=None, sleep=sleep, clock=lambda: clock["now"]
    )
    service.test_clock = clock
    return service


@pytest.fixture
def bedrock(stubbed):
    stubbed.test_clock["now"] = 0.0
    with Stubber(stubbed.client("bedrock")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def throughput(status: str, **extra) -> dict:
    return {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "classifier",
        "provisionedModelArn": PT_ARN,
        "modelArn": CUSTOM_MODEL,
        "desiredModelArn": CUSTOM_MODEL,
        "foundationModelArn": FOUNDATION_MODEL,
        "status": status,
        "creationTime": NOW,
        "lastModifiedTime": NOW,
        **extra,
    }


def test_provisioned_throughput_has_no_commitment_by_default(stubbed, bedrock):
    bedrock.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        {
            "modelUnits": 1,
            "provisionedModelName": "classifier",
            "modelId": CUSTOM_MODEL,
            "clientRequestToken": ANY,
        },
    )
    result = stubbed.create_provisioned_throughput(
        {"model_id": CUSTOM_MODEL, "provisioned_model_name": "classifier", "model_units": 1}
    )
    assert result.provisioned_model_arn == PT_ARN
    assert result.status == "Creating" and result.commitment_duration is None


def test_a_commitment_is_sent_only_when_asked(stubbed, bedrock):
    bedrock.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        {
            "modelUnits": 2,
            "provisionedModelName": "classifier",
            "modelId": CUSTOM_MODEL,
            "commitmentDuration": "SixMonths",
            "tags": [{"key": "team", "value": "ml"}],
            "clientRequestToken": ANY,
        },
    )
    result = stubbed.create_provisioned_throughput(
        ProvisionedThroughputConfig(
            model_id=CUSTOM_MODEL,
            provisioned_model_name="classifier",
            model_units=2,
            commitment_duration="SixMonths",
            tags={"team": "ml"},
        )
    )
    assert result.commitment_duration == "SixMonths"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model_units": 0}, "model_units"),
        ({"model_units": True}, "model_units"),
        ({"commitment_duration": "OneYear"}, "commitment_duration"),
        ({"provisioned_model_name": "my.throughput"}, "provisioned_model_name"),
        ({"model_id": ""}, "model_id"),
        ({"tags": {"k": "bad value!"}}, "tags.k"),
    ],
)
def test_throughput_validation_errors(stubbed, bedrock, changes, field):
    config = {"model_id": CUSTOM_MODEL, "provisioned_model_name": "classifier", **changes}
    with pytest.raises(InvalidJobConfigError) as error:
        stubbed.create_provisioned_throughput(config)
    assert error.value.field == field


def test_status_wait_list_and_delete(stubbed, bedrock):
    for status in ("Creating", "Creating", "InService"):
        bedrock.add_response(
            "get_provisioned_model_throughput",
            throughput(status),
            {"provisionedModelId": PT_ARN},
        )
    seen = []
    result = stubbed.wait_for_provisioning_completion(
        PT_ARN, polling_interval=30, on_update=lambda r: seen.append(r.status)
    )
    assert result.status == "InService" and seen == ["Creating", "Creating", "InService"]
    bedrock.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [throughput("InService")], "nextToken": "page-2"},
        {"sortBy": "CreationTime", "sortOrder": "Descending"},
    )
    bedrock.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [throughput("Failed", provisionedModelName="other")]},
        {"sortBy": "CreationTime", "sortOrder": "Descending", "nextToken": "page-2"},
    )
    listed = stubbed.list_provisioned_throughputs()
    assert [item.provisioned_model_name for item in listed] == ["classifier", "other"]
    bedrock.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN})
    stubbed.delete_provisioned_throughput(PT_ARN)


def test_waiting_for_provisioning_times_out_with_the_last_status(stubbed, bedrock, monkeypatch):
    # Longest jitter: polls at 0, 2, 6 and 10 s (pauses 2, 4, 4: doubling, capped at 4).
    monkeypatch.setattr("finetuning.service.random.uniform", lambda low, high: high)
    for _ in range(4):
        bedrock.add_response(
            "get_provisioned_model_throughput",
            throughput("Creating"),
            {"provisionedModelId": PT_ARN},
        )
    with pytest.raises(WaitTimeoutError) as error:
        stubbed.wait_for_provisioning_completion(PT_ARN, polling_interval=4, max_wait_time=10)
    assert error.value.last.status == "Creating"
    assert "did not finish within 10 s" in str(error.value)


def test_on_demand_deployment_for_a_nova_custom_model(stubbed, bedrock):
    bedrock.add_response(
        "create_custom_model_deployment",
        {"customModelDeploymentArn": DEPLOYMENT_ARN},
        {
            "modelDeploymentName": "classifier-on-demand",
            "modelArn": CUSTOM_MODEL,
            "description": "pay per token",
            "clientRequestToken": ANY,
        },
    )
    created = stubbed.create_custom_model_deployment(
        {
            "model_arn": CUSTOM_MODEL,
            "deployment_name": "classifier-on-demand",
            "description": "pay per token",
        }
    )
    assert created.deployment_arn == DEPLOYMENT_ARN and created.status == "Creating"
    bedrock.add_response(
        "get_custom_model_deployment",
        {
            "customModelDeploymentArn": DEPLOYMENT_ARN,
            "modelDeploymentName": "classifier-on-demand",
            "modelArn": CUSTOM_MODEL,
            "createdAt": NOW,
            "status": "Active",
        },
        {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
    )
    assert stubbed.wait_for_deployment_completion(DEPLOYMENT_ARN).status == "Active"
    assert stubbed.is_deployment_arn(DEPLOYMENT_ARN) and not stubbed.is_deployment_arn(PT_ARN)
    bedrock.add_response(
        "delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
    )
    stubbed.delete_custom_model_deployment(DEPLOYMENT_ARN)


def test_on_demand_deployment_is_refused_for_families_without_it(stubbed, bedrock):
    with pytest.raises(InvalidJobConfigError) as error:
        stubbed.create_custom_model_deployment(
            {"model_arn": LLAMA_CUSTOM_MODEL, "deployment_name": "llama-on-demand"}
        )
    assert error.value.field == "model_arn"
    assert "need Provisioned Throughput" in str(error.value)

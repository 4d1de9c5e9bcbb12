"""A failed run stops the evaluation Processing job it started (HandleFailure's cleanup)."""

from __future__ import annotations

from typing import Any

import pytest

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.failures import remove_partial_resources, stop_evaluation_job
from finetuning.orchestration.records import JobRecord
from tests.support.platform_fakes import REGION, stubbed

NAME = "open-model-0123456789-eval"


def described(status: str) -> dict[str, Any]:
    return {
        "ProcessingJobName": NAME,
        "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/{NAME}",
        "ProcessingJobStatus": status,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.g5.2xlarge",
                "VolumeSizeInGB": 50,
            }
        },
        "AppSpecification": {"ImageUri": "image"},
        "CreationTime": "2026-11-21T00:00:00Z",
    }


def record(evaluation: dict[str, Any] | None) -> JobRecord:
    return JobRecord(
        job_id="open-model-0123456789",
        job_name="open-model",
        backend="sagemaker",
        base_model="s3://bucket/models/base/",
        spec={},
        evaluation=evaluation,
    )


def test_a_running_evaluation_job_is_stopped() -> None:
    sagemaker, stubber = stubbed("sagemaker")
    stubber.add_response(
        "describe_processing_job", described("InProgress"), {"ProcessingJobName": NAME}
    )
    stubber.add_response("stop_processing_job", {}, {"ProcessingJobName": NAME})
    clients = Clients(REGION, lambda service, region: sagemaker)
    with stubber:
        removed = remove_partial_resources(record({"processing_job_name": NAME}), clients)
    stubber.assert_no_pending_responses()
    assert removed == [f"stopped evaluation job {NAME}"]


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped", "Stopping"])
def test_an_ended_evaluation_job_is_left_alone(status: str) -> None:
    sagemaker, stubber = stubbed("sagemaker")
    stubber.add_response("describe_processing_job", described(status), {"ProcessingJobName": NAME})
    with stubber:
        assert stop_evaluation_job(sagemaker, NAME) is False
    stubber.assert_no_pending_responses()


def test_an_evaluation_job_never_created_is_not_an_error() -> None:
    sagemaker, stubber = stubbed("sagemaker")
    stubber.add_client_error(
        "describe_processing_job",
        service_error_code="ValidationException",
        service_message=f"Could not find requested job with name {NAME}",
    )
    with stubber:
        assert stop_evaluation_job(sagemaker, NAME) is False
    assert remove_partial_resources(record(None), Clients(REGION, lambda s, r: None)) == []

"""CreateModelCustomizationJob requests and customization job statuses."""

from __future__ import annotations

import pytest

from finetuning.jobs import JobStatus
from finetuning.orchestration.aws_jobs.bedrock_customization import (
    CustomizationJobSpec,
    customization_job_request,
    customization_job_status,
)
from tests.aws_jobs.support import assert_valid

ROLE = "arn:aws:iam::123456789012:role/bedrock"
KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"


def spec(**changes) -> CustomizationJobSpec:
    fields = {
        "job_name": "support-bot-0123456789",
        "custom_model_name": "support-bot-0123456789",
        "role_arn": ROLE,
        "base_model": "amazon.nova-lite-v1:0:300k",
        "training_data_uri": "s3://data-bucket/train.jsonl",
        "output_uri": "s3://artifacts-bucket/models/final/support-bot-0123456789/",
    }
    return CustomizationJobSpec(**{**fields, **changes})


def test_the_smallest_request_has_only_the_required_fields() -> None:
    request = customization_job_request(spec())
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert set(request) == {
        "jobName",
        "customModelName",
        "roleArn",
        "baseModelIdentifier",
        "customizationType",
        "trainingDataConfig",
        "outputDataConfig",
        "hyperParameters",
    }
    assert request["customizationType"] == "FINE_TUNING"


def test_every_optional_field_lands_where_the_api_expects_it() -> None:
    request = customization_job_request(
        spec(
            validation_data_uri="s3://data-bucket/val.jsonl",
            kms_key_id=KEY,
            tags={"team": "ml", "cost-centre": "1234"},
            subnet_ids=("subnet-0a",),
            security_group_ids=("sg-01",),
            client_request_token="support-bot-0123456789",
            hyperparameters={"epochCount": 2, "learningRate": 1e-05, "earlyStop": True},
        )
    )
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert request["validationDataConfig"] == {
        "validators": [{"s3Uri": "s3://data-bucket/val.jsonl"}]
    }
    assert request["customModelKmsKeyId"] == KEY
    expected_tags = [{"key": "cost-centre", "value": "1234"}, {"key": "team", "value": "ml"}]
    assert request["jobTags"] == request["customModelTags"] == expected_tags
    assert request["vpcConfig"] == {"subnetIds": ["subnet-0a"], "securityGroupIds": ["sg-01"]}
    assert request["clientRequestToken"] == "support-bot-0123456789"
    assert request["hyperParameters"] == {
        "epochCount": "2",
        "learningRate": "0.00001",
        "earlyStop": "true",
    }


@pytest.mark.parametrize(
    ("status", "step", "step_status", "expected"),
    [
        ("Completed", None, None, JobStatus.COMPLETED),
        ("Failed", None, None, JobStatus.FAILED),
        ("Stopping", None, None, JobStatus.STOPPING),
        ("Stopped", None, None, JobStatus.CANCELLED),
        # statusDetails is optional: without it nothing says the job is still preparing.
        ("InProgress", None, None, JobStatus.RUNNING),
        ("InProgress", "validationDetails", "InProgress", JobStatus.PREPROCESSING),
        ("InProgress", "dataProcessingDetails", "InProgress", JobStatus.PREPROCESSING),
        ("InProgress", "validationDetails", "Completed", JobStatus.PREPROCESSING),
        ("InProgress", "trainingDetails", "NotStarted", JobStatus.PREPROCESSING),
        ("InProgress", "trainingDetails", "InProgress", JobStatus.RUNNING),
        ("InProgress", "trainingDetails", "Completed", JobStatus.RUNNING),
    ],
)
def test_statuses(
    status: str, step: str | None, step_status: str | None, expected: JobStatus
) -> None:
    details = {step: {"status": step_status}} if step else None
    assert customization_job_status(status, details) is expected

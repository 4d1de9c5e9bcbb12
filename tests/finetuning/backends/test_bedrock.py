"""Bedrock customization jobs against moto: request fields, idempotency, status, throttling."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from finetuning.backends.base import request_token
from finetuning.errors import InvalidJobConfigError, JobNotFoundError
from finetuning.jobs import Backend, JobStatus
from tests.support.library import ACCOUNT, NOVA_LITE, REGION, ROLE_ARN, conversation, put_jsonl

KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


def moto_job(name: str) -> dict:
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name].to_dict()


@pytest.fixture
def data(bucket):
    train = put_jsonl(bucket, "data/train.jsonl", [conversation(i) for i in range(10)])
    validation = put_jsonl(bucket, "data/validation.jsonl", [conversation(i) for i in range(3)])
    return train, validation


def job_config(train: str, validation: str | None = None, **changes) -> dict:
    config = {
        "base_model": NOVA_LITE,
        "training_data_uri": train,
        "validation_data_uri": validation,
        "output_uri": "s3://finetune-data-test/output/",
        "role_arn": ROLE_ARN,
        "job_name": "doc-classifier",
        "hyperparameters": {"epochCount": 3, "learningRate": "0.00002"},
    }
    config.update(changes)
    return config


def test_the_request_carries_every_required_and_requested_field(service, data):
    train, validation = data
    result = service.create_finetuning_job(
        job_config(
            train,
            validation,
            model_name="doc-classifier-v1",
            kms_key_id=KMS_KEY,
            tags={"team": "ml", "cost-centre": "1234"},
            subnet_ids=["subnet-0a", "subnet-0b"],
            security_group_ids=["sg-01"],
        )
    )
    stored = moto_job("doc-classifier")
    assert stored["jobName"] == "doc-classifier"
    assert stored["outputModelName"].startswith("doc-classifier-v1")  # customModelName
    assert stored["roleArn"] == ROLE_ARN
    assert stored["baseModelArn"].endswith(f"foundation-model/{NOVA_LITE}")
    assert stored["customizationType"] == "FINE_TUNING"
    assert stored["trainingDataConfig"] == {"s3Uri": train}
    assert stored["validationDataConfig"] == {"validators": [{"s3Uri": validation}]}
    assert stored["outputDataConfig"] == {"s3Uri": "s3://finetune-data-test/output/"}
    assert stored["hyperParameters"] == {"epochCount": "3", "learningRate": "0.00002"}
    assert stored["vpcConfig"] == {
        "subnetIds": ["subnet-0a", "subnet-0b"],
        "securityGroupIds": ["sg-01"],
    }
    assert len(stored["clientRequestToken"]) == 64

    from moto.bedrock.models import bedrock_backends

    backend = bedrock_backends[ACCOUNT][REGION]
    job = backend.model_customization_jobs["doc-classifier"]
    assert job.custom_model_kms_key_id == KMS_KEY
    expected_tags = [{"key": "cost-centre", "value": "1234"}, {"key": "team", "value": "ml"}]
    assert job.job_tags == expected_tags and job.custom_model_tags == expected_tags

    assert result.backend is Backend.BEDROCK
    assert result.job_arn == stored["jobArn"] and result.job_name == "doc-classifier"
    assert result.status is JobStatus.RUNNING and result.backend_status == "InProgress"
    # The real response fields: outputModelArn, metrics; no failure for a running job.
    assert result.model_id == stored["outputModelArn"]
    assert result.training_metrics == {"trainingLoss": 0.0}
    assert result.validation_metrics == {"validationLoss": 0.0}
    assert result.failure_reason is None


def test_the_same_spec_twice_makes_one_job(service, data):
    train, validation = data
    first = service.create_finetuning_job(job_config(train, validation))
    second = service.create_finetuning_job(job_config(train, validation))
    assert second.job_arn == first.job_arn
    listing = boto3.client("bedrock", region_name=REGION).list_model_customization_jobs()
    assert len(listing["modelCustomizationJobSummaries"]) == 1


def test_a_different_spec_under_a_used_name_is_a_conflict(service, data):
    train, validation = data
    service.create_finetuning_job(job_config(train, validation))
    with pytest.raises(InvalidJobConfigError) as error:
        service.create_finetuning_job(
            job_config(train, validation, hyperparameters={"epochCount": 4})
        )
    assert error.value.field == "job_name"
    assert "different spec" in str(error.value)


def test_the_token_is_derived_from_the_spec():
    from finetuning.backends.bedrock import BedrockBackend
    from finetuning.jobs import FinetuningJobConfig

    backend = BedrockBackend(client=None)
    config = FinetuningJobConfig.from_dict(job_config("s3://b1b/t.jsonl"))
    first = backend.build_request(config, {"epochCount": "2"})
    again = backend.build_request(config, {"epochCount": "2"})
    other = backend.build_request(config, {"epochCount": "3"})
    assert first["clientRequestToken"] == again["clientRequestToken"]
    assert first["clientRequestToken"] != other["clientRequestToken"]
    unsigned = {k: v for k, v in first.items() if k != "clientRequestToken"}
    assert first["clientRequestToken"] == request_token(unsigned)
    assert "validationDataConfig" not in first and "vpcConfig" not in first


def test_status_list_and_stop(service, data):
    train, validation = data
    created = service.create_finetuning_job(job_config(train, validation))
    status = service.get_job_status(created.job_arn)  # by ARN, no other argument
    assert status.status is JobStatus.RUNNING
    assert service.get_job_status("doc-classifier").job_arn == created.job_arn  # by name
    page = service.list_jobs(status_filter="running", limit=10)
    assert [job.job_name for job in page.jobs] == ["doc-classifier"]
    assert service.list_jobs(status_filter=JobStatus.COMPLETED).jobs == []
    stopped = service.stop_job(created.job_arn)
    assert stopped.status is JobStatus.CANCELLED and stopped.backend_status == "Stopped"
    assert [j.job_name for j in service.list_jobs("cancelled").jobs] == ["doc-classifier"]
    with pytest.raises(JobNotFoundError):
        service.get_job_status(
            f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/no-such-job"
        )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"status": "Completed"}, JobStatus.COMPLETED),
        ({"status": "Failed"}, JobStatus.FAILED),
        ({"status": "Stopping"}, JobStatus.STOPPING),
        ({"status": "Stopped"}, JobStatus.CANCELLED),
        ({"status": "InProgress"}, JobStatus.RUNNING),
        (
            {
                "status": "InProgress",
                "statusDetails": {
                    "validationDetails": {"status": "Completed"},
                    "dataProcessingDetails": {"status": "InProgress"},
                    "trainingDetails": {"status": "NotStarted"},
                },
            },
            JobStatus.PREPROCESSING,
        ),
        (
            {
                "status": "InProgress",
                "statusDetails": {
                    "dataProcessingDetails": {"status": "Completed"},
                    "trainingDetails": {"status": "InProgress"},
                },
            },
            JobStatus.RUNNING,
        ),
    ],
)
def test_bedrock_statuses_map_to_job_statuses(response, expected):
    from finetuning.backends.bedrock import BedrockBackend

    assert BedrockBackend._status(response) is expected


def test_a_failed_job_reports_its_failure_message():
    from finetuning.backends.bedrock import BedrockBackend

    result = BedrockBackend(client=None)._result(
        {
            "jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/x/abc",
            "jobName": "x",
            "status": "Failed",
            "failureMessage": "Invalid training data at line 3",
            "validationMetrics": [{"validationLoss": 1.5}, {"validationLoss": 1.7}],
        }
    )
    assert result.failure_reason == "Invalid training data at line 3"
    assert result.validation_metrics == {"validationLoss": 1.5, "validationLoss_1": 1.7}


class _Body:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def stream(self, **_):
        yield self.payload

    def read(self, *_):
        return self.payload


def test_throttling_is_retried_adaptively_then_succeeds(service, data, monkeypatch):
    """Two ThrottlingException answers, then moto's real one: the call succeeds."""
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda seconds: None)
    train, validation = data
    client = service.client("bedrock")
    assert client.meta.config.retries["mode"] == "adaptive"
    attempts = []

    def throttle(request, **_):
        attempts.append(request.url)
        if len(attempts) <= 2:
            body = json.dumps({"message": "Rate exceeded"}).encode()
            headers = {
                "x-amzn-ErrorType": "ThrottlingException",
                "Content-Type": "application/json",
            }
            return AWSResponse(request.url, 429, headers, _Body(body))
        return None

    client.meta.events.register_first("before-send.bedrock.CreateModelCustomizationJob", throttle)
    result = service.create_finetuning_job(job_config(train, validation))
    assert len(attempts) == 3
    assert result.job_name == "doc-classifier"


def test_other_aws_errors_pass_through_as_client_errors(service, data):
    train, validation = data
    client = service.client("bedrock")

    def deny(request, **_):
        body = json.dumps({"message": "User is not authorized to perform this action"}).encode()
        headers = {"x-amzn-ErrorType": "AccessDeniedException"}
        return AWSResponse(request.url, 403, headers, _Body(body))

    client.meta.events.register_first("before-send.bedrock.CreateModelCustomizationJob", deny)
    with pytest.raises(ClientError) as error:
        service.create_finetuning_job(job_config(train, validation))
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_model_customized_only_in_another_region_is_refused_before_any_call(service, data):
    """Llama 3.1 8B is customized in us-west-2 only (custom-model-supported.html, read
    2026-12-05); the service runs in us-east-1, so the job is refused naming both Regions,
    and nothing is created."""
    train, _ = data
    llama = "meta.llama3-1-8b-instruct-v1:0:128k"
    with pytest.raises(InvalidJobConfigError) as refused:
        service.create_finetuning_job(
            job_config(train, base_model=llama, hyperparameters={"epochCount": 1})
        )
    assert refused.value.field == "base_model"
    assert "a model Bedrock customizes in us-east-1" in refused.value.expected
    assert "in us-west-2 only" in refused.value.expected
    assert "--region us-west-2" in refused.value.expected
    from moto.bedrock.models import bedrock_backends

    assert bedrock_backends[ACCOUNT][REGION].model_customization_jobs == {}

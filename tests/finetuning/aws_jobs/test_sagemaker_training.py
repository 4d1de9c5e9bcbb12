"""CreateTrainingJob requests for train.py, and training job statuses."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from finetuning.aws_jobs.sagemaker_training import (
    TrainingJobSpec,
    training_failure_reason,
    training_job_request,
    training_job_status,
)
from finetuning.jobs import JobStatus
from finetuning.orchestration import sagemaker
from tests.support.aws_jobs import assert_valid

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:x"
CODE = "s3://artifacts-bucket/models/code/abc/sourcedir.tar.gz"
METRICS = [{"Name": "train_loss", "Regex": r" train_loss=([-+0-9.eE]+)"}]


def spec(**changes: Any) -> TrainingJobSpec:
    fields: dict[str, Any] = {
        "job_name": "open-model-0123456789",
        "role_arn": ROLE,
        "region": "us-east-1",
        "image_uri": IMAGE,
        "code_uri": CODE,
        "entry_point": "train.py",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "training_data_uri": "s3://data-bucket/train.jsonl",
        "output_uri": "s3://artifacts-bucket/models/final/",
        "instance_type": "ml.g5.2xlarge",
        "max_run_seconds": 3600,
        "metric_definitions": METRICS,
    }
    return TrainingJobSpec(**{**fields, **changes})


def decoded(request: dict[str, Any]) -> dict[str, Any]:
    return {name: json.loads(value) for name, value in request["HyperParameters"].items()}


def test_a_hub_model_without_isolation_downloads_its_code_from_s3() -> None:
    request = training_job_request(spec(hyperparameters={"learning_rate": 2e-4, "bf16": True}))
    assert_valid("sagemaker", "CreateTrainingJob", request)
    hyper = decoded(request)
    assert hyper["model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hyper["sagemaker_submit_directory"] == CODE
    assert hyper["sagemaker_program"] == "train.py"
    assert hyper["sagemaker_container_log_level"] == 20
    assert hyper["learning_rate"] == "0.0002" and hyper["bf16"] == "True"
    assert hyper["method"] == "lora"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train"]
    assert request["Environment"] == {"PYTHONPATH": "/opt/ml/code"}
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRICS
    for absent in ("Tags", "VpcConfig", "CheckpointConfig"):
        assert absent not in request
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://artifacts-bucket/models/final/"}


def test_an_isolated_job_gets_model_and_code_as_channels() -> None:
    request = training_job_request(
        spec(
            base_model="s3://artifacts-bucket/models/base/smollm2/",
            enable_network_isolation=True,
            use_spot_instances=True,
            max_wait_seconds=7200,
            checkpoint_uri="s3://artifacts-bucket/models/checkpoints/x/",
            kms_key_id=KEY,
            subnet_ids=["subnet-0a"],
            security_group_ids=["sg-01"],
            tags={"team": "ml"},
        )
    )
    assert_valid("sagemaker", "CreateTrainingJob", request)
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert list(channels) == ["train", "model", "code"]
    assert channels["code"]["DataSource"]["S3DataSource"]["S3Uri"] == CODE
    assert "ContentType" not in channels["model"]
    assert channels["train"]["ContentType"] == "application/jsonlines"
    hyper = decoded(request)
    assert hyper["model_name_or_path"] == "/opt/ml/input/data/model"
    assert hyper["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert request["Environment"] == {"PYTHONPATH": "/opt/ml/code", "HF_HUB_OFFLINE": "1"}
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }
    assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert request["OutputDataConfig"]["KmsKeyId"] == KEY
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]  # g5: instance storage
    assert request["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_spot_without_a_max_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="max_wait_seconds"):
        training_job_request(spec(use_spot_instances=True))


@pytest.mark.parametrize(
    ("instance_type", "count", "distributed", "torchrun"),
    [
        ("ml.g5.2xlarge", 1, None, False),
        ("ml.g5.12xlarge", 1, None, True),
        ("ml.g5.2xlarge", 2, None, True),
        ("ml.g5.12xlarge", 1, False, False),
        ("ml.g5.2xlarge", 1, True, True),
    ],
)
def test_torchrun_when_the_job_has_several_gpus_or_asks(
    instance_type: str, count: int, distributed: bool | None, torchrun: bool
) -> None:
    request = training_job_request(
        spec(instance_type=instance_type, instance_count=count, distributed=distributed)
    )
    hyper = decoded(request)
    assert hyper.get("sagemaker_torch_distributed_enabled", False) is torchrun
    assert ("sagemaker_instance_type" in hyper) is torchrun


def test_the_request_passes_the_service_model_of_a_stubbed_client(fake_aws_credentials) -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    request = training_job_request(spec(kms_key_id=KEY, instance_type="ml.p3.8xlarge"))
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == KEY  # p3: EBS volume
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/open-model-0123456789"
    with Stubber(client) as stubber:
        stubber.add_response("create_training_job", {"TrainingJobArn": arn}, request)
        assert sagemaker.start(client, request) == arn
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("status", "secondary", "expected", "reason"),
    [
        ("InProgress", "Starting", JobStatus.PREPROCESSING, None),
        ("InProgress", "Downloading", JobStatus.PREPROCESSING, None),
        ("InProgress", "Training", JobStatus.RUNNING, None),
        ("Stopping", "Stopping", JobStatus.STOPPING, None),
        ("Stopped", "Stopped", JobStatus.CANCELLED, None),
        ("Stopped", "MaxRuntimeExceeded", JobStatus.FAILED, "MaxRuntimeExceeded"),
        ("Stopped", "MaxWaitTimeExceeded", JobStatus.FAILED, "MaxWaitTimeExceeded"),
        ("Failed", "Failed", JobStatus.FAILED, None),
        ("Completed", "Completed", JobStatus.COMPLETED, None),
    ],
)
def test_statuses(status: str, secondary: str, expected: JobStatus, reason: str | None) -> None:
    assert training_job_status(status, secondary) is expected
    found = training_failure_reason(status, secondary, None)
    assert found == (f"SageMaker stopped the job: {reason}" if reason else None)
    assert training_failure_reason(status, secondary, "OOM") == "OOM"

"""Bedrock and SageMaker requests: every field checked against botocore's service model,
and the platform's security defaults asserted field by field."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from finetuning.aws_jobs.bedrock_customization import customization_job_status
from finetuning.aws_jobs.hyperparameter_values import bedrock_value
from finetuning.aws_jobs.provisioned_throughput import CommitmentDuration
from finetuning.aws_jobs.sagemaker_training import (
    training_failure_reason,
    training_job_status,
)
from finetuning.orchestration import bedrock, sagemaker, tags
from finetuning.orchestration.environment import Environment, Var
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import NO_COMMITMENT, parse_manifest
from finetuning.orchestration.records import JobStatus
from tests.support.platform_fakes import (
    ARTIFACTS_BUCKET,
    BEDROCK_ROLE,
    KEY_ARN,
    PREFIX,
    SAGEMAKER_ROLE,
    TRAINING_IMAGE,
    bedrock_manifest,
    function_environment,
    sagemaker_manifest,
)

ENV = Environment(function_environment())
METRICS = [{"Name": "train_loss", "Regex": r" train_loss=([-+0-9.eE]+)"}]


def assert_valid(service: str, operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_bedrock_customization_request() -> None:
    manifest = parse_manifest(
        bedrock_manifest(
            validation_data_uri=bedrock_manifest()["training_data_uri"].replace("train", "val")
        )
    )
    request = bedrock.customization_request(manifest, manifest.job_id, ENV)
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert request["jobName"] == request["clientRequestToken"] == manifest.job_id
    assert request["customModelName"] == manifest.job_id
    assert request["roleArn"] == BEDROCK_ROLE
    assert request["customModelKmsKeyId"] == KEY_ARN
    assert request["vpcConfig"] == {
        "subnetIds": ["subnet-0a", "subnet-0b"],
        "securityGroupIds": ["sg-0123"],
    }
    assert request["hyperParameters"] == {
        "epochCount": "2",
        "learningRate": "0.00001",
        "batchSize": "1",
    }
    assert request["outputDataConfig"]["s3Uri"] == (
        f"s3://{ARTIFACTS_BUCKET}/models/final/{manifest.job_id}/"
    )
    assert request["validationDataConfig"]["validators"][0]["s3Uri"].endswith("val.jsonl")
    job_tags = tags.from_key_value_list(request["jobTags"])
    assert job_tags == {"team": "support", tags.PLATFORM: PREFIX, tags.JOB_ID: manifest.job_id}
    assert request["customModelTags"] == request["jobTags"]


@pytest.mark.parametrize(
    ("value", "expected"), [(2, "2"), (1e-05, "0.00001"), (0.5, "0.5"), (True, "true"), ("x", "x")]
)
def test_bedrock_hyperparameters_are_plain_strings(value: object, expected: str) -> None:
    assert bedrock_value(value) == expected


def test_sagemaker_training_request_defaults_are_secure() -> None:
    manifest = parse_manifest(sagemaker_manifest())
    request = sagemaker.training_request(manifest, manifest.job_id, ENV, metric_definitions=METRICS)
    assert_valid("sagemaker", "CreateTrainingJob", request)
    assert request["TrainingJobName"] == manifest.job_id
    assert request["RoleArn"] == SAGEMAKER_ROLE
    assert request["EnableNetworkIsolation"] is True
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 86400,
        "MaxWaitTimeInSeconds": 172800,
    }
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{ARTIFACTS_BUCKET}/models/checkpoints/{manifest.job_id}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert request["OutputDataConfig"]["KmsKeyId"] == KEY_ARN
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123"],
        "Subnets": ["subnet-0a", "subnet-0b"],
    }
    assert request["AlgorithmSpecification"]["TrainingImage"] == TRAINING_IMAGE
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRICS
    # g5 instances have instance storage only: no volume key may be given.
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": manifest.training_data_uri,
        "model": manifest.base_model,
        "code": manifest.source_dir_uri,
    }
    # Script-mode values are JSON, as the SageMaker SDK encodes them and the toolkit decodes.
    assert request["HyperParameters"]["num_train_epochs"] == '"1"'
    hyper = {name: json.loads(value) for name, value in request["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == "training_scripts/train.py"
    assert hyper["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert hyper["model_name_or_path"] == "/opt/ml/input/data/model"
    assert hyper["method"] == "lora" and hyper["num_train_epochs"] == "1"
    assert "sagemaker_torch_distributed_enabled" not in hyper
    assert tags.from_key_value_list(request["Tags"])[tags.PLATFORM] == PREFIX


def test_sagemaker_request_on_demand_multi_node_with_ebs() -> None:
    # p3 (not p3dn) has EBS volumes only: the volume takes the platform key.
    env = Environment({**function_environment(), Var.ALLOWED_INSTANCE_FAMILIES: "g5,g6,p3"})
    manifest = parse_manifest(
        sagemaker_manifest(
            instance_type="ml.p3.8xlarge",
            instance_count=2,
            use_spot_instances=False,
            validation_data_uri=sagemaker_manifest()["training_data_uri"].replace("train", "val"),
        )
    )
    request = sagemaker.training_request(manifest, manifest.job_id, env)
    assert_valid("sagemaker", "CreateTrainingJob", request)
    assert request["EnableManagedSpotTraining"] is False
    assert "CheckpointConfig" not in request
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert request["HyperParameters"]["sagemaker_instance_type"] == '"ml.p3.8xlarge"'
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == [
        "train",
        "validation",
        "model",
        "code",
    ]


def test_sagemaker_g6_has_instance_storage_and_takes_no_volume_key() -> None:
    """g6 instances have local NVMe storage (EC2 instance-store table): CreateTrainingJob
    refuses a VolumeKmsKeyId for them."""
    manifest = parse_manifest(sagemaker_manifest(instance_type="ml.g6.12xlarge"))
    request = sagemaker.training_request(manifest, manifest.job_id, ENV)
    assert_valid("sagemaker", "CreateTrainingJob", request)
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]
    assert request["OutputDataConfig"]["KmsKeyId"] == KEY_ARN
    # Four GPUs on one instance: torchrun.
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"


def test_sagemaker_refuses_instance_families_the_settings_do_not_allow() -> None:
    manifest = parse_manifest(sagemaker_manifest(instance_type="ml.p5.48xlarge"))
    with pytest.raises(ManifestError, match=r"instance_type: 'ml.p5.48xlarge' is in family 'p5'"):
        sagemaker.training_request(manifest, manifest.job_id, ENV)


def test_throughput_request_has_no_commitment_unless_asked() -> None:
    request = bedrock.throughput_request(
        job_id="support-bot-0123456789",
        model_arn="arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abcdefghijkl",
        model_units=1,
        commitment=NO_COMMITMENT,
        serving_tags={tags.PLATFORM: PREFIX},
    )
    assert_valid("bedrock", "CreateProvisionedModelThroughput", request)
    assert "commitmentDuration" not in request
    assert (
        request["provisionedModelName"]
        == request["clientRequestToken"]
        == "support-bot-0123456789-pt"
    )
    committed = bedrock.throughput_request(
        job_id="x-0123456789",
        model_arn=request["modelId"],
        model_units=2,
        commitment=CommitmentDuration.ONE_MONTH,
        serving_tags={},
    )
    assert committed["commitmentDuration"] == "OneMonth"


@pytest.mark.parametrize(
    ("status", "training", "expected"),
    [
        # No statusDetails (optional in the response): nothing says it is still preparing.
        ("InProgress", None, JobStatus.RUNNING),
        ("InProgress", "NotStarted", JobStatus.PREPROCESSING),
        ("InProgress", "InProgress", JobStatus.RUNNING),
        ("Completed", None, JobStatus.COMPLETED),
        ("Failed", None, JobStatus.FAILED),
        ("Stopping", None, JobStatus.STOPPING),
        ("Stopped", None, JobStatus.CANCELLED),
    ],
)
def test_bedrock_status_mapping(status: str, training: str | None, expected: JobStatus) -> None:
    details = {"trainingDetails": {"status": training}} if training else None
    assert customization_job_status(status, details) is expected


@pytest.mark.parametrize(
    ("status", "secondary", "expected"),
    [
        ("InProgress", "Downloading", JobStatus.PREPROCESSING),
        ("InProgress", "Training", JobStatus.RUNNING),
        ("Completed", "Completed", JobStatus.COMPLETED),
        ("Failed", "Failed", JobStatus.FAILED),
        ("Stopped", "Stopped", JobStatus.CANCELLED),
        ("Stopped", "MaxWaitTimeExceeded", JobStatus.FAILED),
    ],
)
def test_sagemaker_status_mapping(status: str, secondary: str, expected: JobStatus) -> None:
    assert training_job_status(status, secondary) is expected
    reason = training_failure_reason(status, secondary, None)
    assert (reason is not None) == (secondary == "MaxWaitTimeExceeded")

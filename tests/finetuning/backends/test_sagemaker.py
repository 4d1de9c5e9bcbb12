"""SageMaker training jobs against moto: the CreateTrainingJob request, code, status, stop."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest

from finetuning.backends.sagemaker import (
    REPOSITORY_ROOT,
    SPEC_TAG,
    SageMakerBackend,
    source_archive,
)
from finetuning.backends.sagemaker_images import training_image_uri
from finetuning.errors import InvalidJobConfigError
from finetuning.jobs import Backend, JobStatus
from tests.support.library import ACCOUNT, REGION, conversation, put_jsonl

SM_ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"
PLATFORM_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:training"


def moto_training_job(name: str) -> dict:
    return boto3.client("sagemaker", region_name=REGION).describe_training_job(TrainingJobName=name)


def record_requests(service) -> list[dict]:
    """The CreateTrainingJob parameters as sent (moto's describe answers some fields, such as
    MetricDefinitions, with fixed values of its own)."""
    sent: list[dict] = []
    service.client("sagemaker").meta.events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(dict(params)),
    )
    return sent


def sm_config(train: str, **changes) -> dict:
    config = {
        "backend": "sagemaker",
        "base_model": SMOLLM,
        "training_data_uri": train,
        "output_uri": "s3://finetune-data-test/output/",
        "role_arn": SM_ROLE,
        "job_name": "smollm-lora",
        "instance_type": "ml.g5.2xlarge",
        "validation_split": None,
        "hyperparameters": {"epochCount": 2, "learningRate": 2e-4, "max_steps": 50, "bf16": True},
    }
    config.update(changes)
    return config


@pytest.fixture
def train(bucket) -> str:
    return put_jsonl(
        bucket, "training-data/processed/train.jsonl", [conversation(i) for i in range(6)]
    )


def test_a_lora_job_on_the_hugging_face_container(service, train):
    sent = record_requests(service)
    result = service.create_finetuning_job(sm_config(train))
    job = moto_training_job("smollm-lora")
    spec = sent[0]["AlgorithmSpecification"]
    assert spec["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:"
        "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04"
    )
    from training_scripts.metric_definitions import METRIC_DEFINITIONS

    assert spec["MetricDefinitions"] == METRIC_DEFINITIONS
    assert spec["TrainingInputMode"] == "File" and spec["EnableSageMakerMetricsTimeSeries"]
    assert sent[0]["Environment"] == {"PYTHONPATH": "/opt/ml/code"}
    hyper = {key: json.loads(value) for key, value in job["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == "training_scripts/train.py"
    assert hyper["num_train_epochs"] == "2" and hyper["learning_rate"] == "0.0002"
    assert hyper["max_steps"] == "50" and hyper["bf16"] == "True"
    assert hyper["method"] == "lora" and hyper["model_name_or_path"] == SMOLLM
    assert "sagemaker_torch_distributed_enabled" not in hyper  # one instance, one GPU
    code = hyper["sagemaker_submit_directory"]
    assert code.startswith("s3://finetune-data-test/output/code/") and code.endswith(
        "/sourcedir.tar.gz"
    )
    assert job["InputDataConfig"][0]["ChannelName"] == "train"
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == train
    assert job["ResourceConfig"] == {
        "InstanceType": "ml.g5.2xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 100,
    }
    assert job["EnableInterContainerTrafficEncryption"] is True
    assert job["EnableNetworkIsolation"] is False and job["EnableManagedSpotTraining"] is False
    assert result.backend is Backend.SAGEMAKER and result.job_name == "smollm-lora"
    assert result.status is JobStatus.COMPLETED  # moto finishes training jobs at once
    assert result.model_id == "s3://finetune-data-test/output/smollm-lora/output/model.tar.gz"
    assert result.hyperparameters["method"] == "lora"

    # The uploaded code has what train.py imports, and the training requirements.
    body = (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket="finetune-data-test", Key=code.split("/", 3)[3])["Body"]
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = set(archive.getnames())
    assert {"training_scripts/train.py", "finetuning/__init__.py"} <= names
    has_requirements = (REPOSITORY_ROOT / "training_scripts" / "requirements.txt").is_file()
    assert ("requirements.txt" in names) == has_requirements
    assert "finetuning/data/formats.py" in names and "finetuning/service.py" not in names


def test_spot_vpc_kms_isolation_and_torchrun(service, train, bucket):
    model = put_jsonl(bucket, "models/base/config.json", [{}])
    service.create_finetuning_job(
        sm_config(
            train,
            base_model=model.rsplit("/", 1)[0] + "/",
            instance_type="ml.g5.12xlarge",
            instance_count=2,
            use_spot_instances=True,
            max_run_seconds=3600,
            kms_key_id=KMS_KEY,
            subnet_ids=["subnet-0a"],
            security_group_ids=["sg-01"],
            enable_network_isolation=True,
            # An isolated job cannot pip install: it needs an image with the packages.
            image_uri=PLATFORM_IMAGE,
            method="full",
            tags={"team": "ml"},
        )
    )
    client = boto3.client("sagemaker", region_name=REGION)
    job = client.describe_training_job(TrainingJobName="smollm-lora")
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {
        "S3Uri": "s3://finetune-data-test/output/smollm-lora/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert job["VpcConfig"] == {"SecurityGroupIds": ["sg-01"], "Subnets": ["subnet-0a"]}
    assert job["OutputDataConfig"]["KmsKeyId"] == KMS_KEY
    # g5 has NVMe instance storage: SageMaker refuses a volume key for it.
    assert "VolumeKmsKeyId" not in job["ResourceConfig"]
    assert job["EnableNetworkIsolation"] is True
    hyper = {key: json.loads(value) for key, value in job["HyperParameters"].items()}
    assert hyper["sagemaker_torch_distributed_enabled"] is True
    assert hyper["sagemaker_instance_type"] == "ml.g5.12xlarge"
    # The model channel's mount point, named explicitly (as the platform's jobs do).
    assert hyper["model_name_or_path"] == "/opt/ml/input/data/model"
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("models/base/")
    # An isolated container cannot fetch its code from S3: it arrives as the "code" channel.
    assert hyper["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    code = channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert code.startswith("s3://finetune-data-test/output/code/")
    assert code.endswith("/sourcedir.tar.gz")
    tags = client.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "team", "Value": "ml"} in tags
    assert any(tag["Key"] == SPEC_TAG for tag in tags)


def test_the_same_spec_twice_makes_one_training_job(bucket, train):
    """A retried create meets SageMaker's duplicate-name error; the spec digest tag tells a
    retry (return the job) from a clash (error). moto does not refuse duplicate names, so the
    SageMaker side is a Stubber checked against the real service model."""
    from datetime import UTC, datetime

    from botocore.stub import Stubber

    from finetuning.jobs import FinetuningJobConfig

    client = boto3.client("sagemaker", region_name=REGION)
    backend = SageMakerBackend(client, boto3.client("s3", region_name=REGION), REGION)
    config = FinetuningJobConfig.from_dict(sm_config(train))
    hyperparameters = backend.check(config)
    code_uri = backend.upload_code(config)
    digest = next(
        tag["Value"]
        for tag in backend.build_request(config, hyperparameters, code_uri)["Tags"]
        if tag["Key"] == SPEC_TAG
    )
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/smollm-lora"
    described = {
        "TrainingJobName": "smollm-lora",
        "TrainingJobArn": arn,
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 100,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime(2025, 1, 1, tzinfo=UTC),
        "ModelArtifacts": {"S3ModelArtifacts": ""},
    }
    duplicate = (
        "Training job names must be unique within an AWS account and region, and a training "
        "job with this name already exists (arn)"
    )
    name = {"TrainingJobName": "smollm-lora"}
    with Stubber(client) as stubber:
        for tag in (digest, "a-different-spec"):
            stubber.add_client_error("create_training_job", "ResourceInUse", duplicate)
            stubber.add_response("describe_training_job", described, name)
            stubber.add_response(
                "list_tags", {"Tags": [{"Key": SPEC_TAG, "Value": tag}]}, {"ResourceArn": arn}
            )
        retried = backend.create(config, hyperparameters)
        assert retried.job_arn == arn and retried.status is JobStatus.RUNNING
        with pytest.raises(InvalidJobConfigError, match="different spec") as error:
            backend.create(config, hyperparameters)
        stubber.assert_no_pending_responses()
    assert error.value.field == "job_name"


def test_status_and_list(service, train):
    created = service.create_finetuning_job(sm_config(train))
    assert service.get_job_status(created.job_arn).status is JobStatus.COMPLETED
    page = service.list_jobs(backend="sagemaker", status_filter="completed")
    assert [job.job_name for job in page.jobs] == ["smollm-lora"]
    assert service.list_jobs(backend="sagemaker", status_filter="running").jobs == []


def test_stop(fake_aws_credentials):
    """moto has no StopTrainingJob: the Stubber checks the request against the real model."""
    from datetime import UTC, datetime

    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name=REGION)
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/smollm-lora"

    def described(status: str, secondary: str) -> dict:
        return {
            "TrainingJobName": "smollm-lora",
            "TrainingJobArn": arn,
            "TrainingJobStatus": status,
            "SecondaryStatus": secondary,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {
                "InstanceType": "ml.g5.2xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 100,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "CreationTime": datetime(2025, 1, 1, tzinfo=UTC),
            "ModelArtifacts": {"S3ModelArtifacts": ""},
        }

    with Stubber(client) as stubber:
        name = {"TrainingJobName": "smollm-lora"}
        stubber.add_response("describe_training_job", described("InProgress", "Training"), name)
        stubber.add_response("stop_training_job", {}, name)
        stubber.add_response("describe_training_job", described("Stopping", "Stopping"), name)
        result = SageMakerBackend(client, None, REGION).stop(arn)
    assert result.status is JobStatus.STOPPING


@pytest.mark.parametrize(
    ("status", "secondary", "expected"),
    [
        ("InProgress", "Starting", JobStatus.PREPROCESSING),
        ("InProgress", "Downloading", JobStatus.PREPROCESSING),
        ("InProgress", "Training", JobStatus.RUNNING),
        ("InProgress", "Interrupted", JobStatus.RUNNING),
        ("Stopping", "Stopping", JobStatus.STOPPING),
        ("Stopped", "Stopped", JobStatus.CANCELLED),
        ("Failed", "Failed", JobStatus.FAILED),
        ("Completed", "Completed", JobStatus.COMPLETED),
    ],
)
def test_training_job_statuses_map(status, secondary, expected):
    assert (
        SageMakerBackend._status({"TrainingJobStatus": status, "SecondaryStatus": secondary})
        is expected
    )


def test_unknown_train_hyperparameters_list_the_allowed_ones(service, train):
    with pytest.raises(InvalidJobConfigError) as error:
        service.create_finetuning_job(sm_config(train, hyperparameters={"lora_rank": 8}))
    assert error.value.field == "hyperparameters.lora_rank"
    assert "lora_r" in str(error.value) and "max_steps" in str(error.value)
    with pytest.raises(InvalidJobConfigError, match="set from the job's base_model"):
        service.create_finetuning_job(sm_config(train, hyperparameters={"model_name_or_path": "x"}))
    with pytest.raises(InvalidJobConfigError, match="true or false"):
        service.create_finetuning_job(sm_config(train, hyperparameters={"packing": "maybe"}))


def test_the_source_archive_is_reproducible_and_holds_what_train_py_needs(tmp_path):
    assert source_archive() == source_archive()
    root = tmp_path / "repo"
    (root / "training_scripts" / "__pycache__").mkdir(parents=True)
    (root / "training_scripts" / "train.py").write_text("print('train')\n")
    (root / "training_scripts" / "requirements.txt").write_text("transformers==5.23.0\n")
    (root / "training_scripts" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    (root / "finetuning" / "data").mkdir(parents=True)
    (root / "finetuning" / "data" / "formats.py").write_text("FORMATS = ()\n")
    (root / "finetuning" / "service.py").write_text("client code\n")

    def names(archive: bytes) -> list[str]:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            return tar.getnames()

    assert names(source_archive(root=root)) == [
        "finetuning/__init__.py",
        "finetuning/data/formats.py",
        "requirements.txt",
        "training_scripts/requirements.txt",
        "training_scripts/train.py",
    ]
    # An isolated container cannot pip install: no requirements.txt at the root then.
    assert "requirements.txt" not in names(source_archive(include_requirements=False, root=root))


def test_an_isolated_job_needs_an_image_with_the_packages(service, train, bucket):
    model = put_jsonl(bucket, "models/base/config.json", [{}])
    with pytest.raises(InvalidJobConfigError, match="cannot install packages") as error:
        service.create_finetuning_job(
            sm_config(
                train, base_model=model.rsplit("/", 1)[0] + "/", enable_network_isolation=True
            )
        )
    assert error.value.field == "image_uri"


def test_image_uris_per_region():
    assert training_image_uri("eu-south-1").startswith(
        "692866216735.dkr.ecr.eu-south-1.amazonaws.com/"
    )
    assert training_image_uri("cn-north-1").startswith(
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/"
    )
    with pytest.raises(InvalidJobConfigError, match="image_uri"):
        training_image_uri("xx-nowhere-1")

"""CreateTrainingJob requests that run ``train.py`` in script mode, and training job statuses.

The job runs the Hugging Face PyTorch training container; the SageMaker training toolkit in it
reads the ``sagemaker_*`` hyperparameters (the names the SageMaker Python SDK's framework
estimators send, see
https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/huggingface/estimator.py),
unpacks the code and runs the entry point with the other hyperparameters as ``--name value``.

Request and response fields:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetuning.aws_jobs.hyperparameter_values import (
    json_encoded,
    train_argument_value,
)
from finetuning.aws_jobs.instance_types import has_instance_storage, uses_torchrun
from finetuning.aws_jobs.job_status import JobStatus
from finetuning.aws_jobs.source_archives import SOURCE_ARCHIVE_NAME
from finetuning.aws_jobs.tags import as_key_value_list

CODE_DIR = "/opt/ml/code"
CHANNEL_ROOT = "/opt/ml/input/data"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
DATA_CONTENT_TYPE = "application/jsonlines"
MODEL_CHANNEL = "model"
# With network isolation the container cannot fetch its code from S3, so (as the SageMaker
# Python SDK does) the source tarball arrives as a "code" input channel, see
# CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH in
# https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/estimator.py
CODE_CHANNEL = "code"
CODE_CHANNEL_TARBALL = f"{CHANNEL_ROOT}/{CODE_CHANNEL}/{SOURCE_ARCHIVE_NAME}"
# Hyperparameters the training toolkit reads, and the Hugging Face estimator's switch for
# torchrun (LAUNCH_TORCH_DISTRIBUTED_ENV_NAME).
PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
REGION = "sagemaker_region"
LOG_LEVEL = "sagemaker_container_log_level"
JOB_NAME = "sagemaker_job_name"
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
INSTANCE_TYPE = "sagemaker_instance_type"
FRAMEWORK_PREFIX = "sagemaker_"
LOG_LEVEL_INFO = 20

# DescribeTrainingJob SecondaryStatus values of an InProgress job before the script runs, and
# those of a Stopped job that SageMaker itself stopped at a time limit:
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
_PREPARING = frozenset(
    {
        "Starting",
        "Pending",
        "LaunchingMLInstances",
        "PreparingTrainingStack",
        "Downloading",
        "DownloadingTrainingImage",
    }
)
_LIMIT_EXCEEDED = frozenset({"MaxRuntimeExceeded", "MaxWaitTimeExceeded"})
_STATUS = {
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.STOPPING,
    "Stopped": JobStatus.CANCELLED,
}


@dataclass(frozen=True, kw_only=True)
class TrainingJobSpec:
    """Everything a CreateTrainingJob request for ``train.py`` says, resolved by the caller."""

    job_name: str
    role_arn: str
    region: str
    image_uri: str
    # sourcedir.tar.gz in S3, and the script inside it.
    code_uri: str
    entry_point: str
    # An s3:// model directory (mounted as the "model" channel) or a Hugging Face Hub id.
    base_model: str
    training_data_uri: str
    output_uri: str
    instance_type: str
    max_run_seconds: int
    method: str = "lora"
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    validation_data_uri: str | None = None
    instance_count: int = 1
    volume_size_gb: int = 100
    # None: torchrun when the job has more than one GPU.
    distributed: bool | None = None
    use_spot_instances: bool = False
    # Required with spot instances (at least max_run_seconds).
    max_wait_seconds: int | None = None
    checkpoint_uri: str | None = None
    kms_key_id: str | None = None
    subnet_ids: Sequence[str] = ()
    security_group_ids: Sequence[str] = ()
    enable_network_isolation: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    metric_definitions: Sequence[Mapping[str, str]] | None = None


def _channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def _metric_definitions(spec: TrainingJobSpec) -> list[dict[str, str]]:
    definitions = spec.metric_definitions
    if definitions is None:
        # The regexes of the log lines train.py prints (standard library only).
        from training_scripts.metric_definitions import METRIC_DEFINITIONS

        definitions = METRIC_DEFINITIONS
    return [dict(definition) for definition in definitions]


def training_job_request(spec: TrainingJobSpec) -> dict[str, Any]:
    """CreateTrainingJob arguments for ``train.py`` in script mode."""
    script_args = {name: train_argument_value(v) for name, v in spec.hyperparameters.items()}
    script_args["method"] = spec.method
    channels = [_channel("train", spec.training_data_uri, DATA_CONTENT_TYPE)]
    if spec.validation_data_uri:
        channels.append(_channel("validation", spec.validation_data_uri, DATA_CONTENT_TYPE))
    if spec.base_model.startswith("s3://"):
        channels.append(_channel(MODEL_CHANNEL, spec.base_model))
        script_args["model_name_or_path"] = f"{CHANNEL_ROOT}/{MODEL_CHANNEL}"
    else:
        script_args["model_name_or_path"] = spec.base_model
    if spec.enable_network_isolation:
        channels.append(_channel(CODE_CHANNEL, spec.code_uri))
        submit_directory = CODE_CHANNEL_TARBALL
    else:
        submit_directory = spec.code_uri
    framework: dict[str, Any] = {
        PROGRAM: spec.entry_point,
        SUBMIT_DIRECTORY: submit_directory,
        REGION: spec.region,
        LOG_LEVEL: LOG_LEVEL_INFO,
        JOB_NAME: spec.job_name,
    }
    if uses_torchrun(spec.instance_type, spec.instance_count, spec.distributed):
        framework[TORCH_DISTRIBUTED] = True
        framework[INSTANCE_TYPE] = spec.instance_type
    resources: dict[str, Any] = {
        "InstanceType": spec.instance_type,
        "InstanceCount": spec.instance_count,
        "VolumeSizeInGB": spec.volume_size_gb,
    }
    if spec.kms_key_id and not has_instance_storage(spec.instance_type):
        resources["VolumeKmsKeyId"] = spec.kms_key_id
    output: dict[str, Any] = {"S3OutputPath": spec.output_uri}
    if spec.kms_key_id:
        output["KmsKeyId"] = spec.kms_key_id
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": spec.max_run_seconds}
    if spec.use_spot_instances:
        if spec.max_wait_seconds is None:
            raise ValueError("max_wait_seconds is required with use_spot_instances")
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait_seconds
    environment = {"PYTHONPATH": CODE_DIR}
    if spec.enable_network_isolation:
        # An isolated container cannot reach the Hugging Face Hub; don't let libraries try.
        environment["HF_HUB_OFFLINE"] = "1"
    request: dict[str, Any] = {
        "TrainingJobName": spec.job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": _metric_definitions(spec),
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "HyperParameters": json_encoded({**script_args, **framework}),
        "InputDataConfig": channels,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": spec.enable_network_isolation,
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": spec.use_spot_instances,
        "Environment": environment,
    }
    if spec.checkpoint_uri:
        # Spot interruptions resume from here: SageMaker syncs /opt/ml/checkpoints both ways.
        request["CheckpointConfig"] = {
            "S3Uri": spec.checkpoint_uri,
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    if spec.subnet_ids:
        request["VpcConfig"] = {
            "SecurityGroupIds": list(spec.security_group_ids),
            "Subnets": list(spec.subnet_ids),
        }
    if spec.tags:
        request["Tags"] = as_key_value_list(spec.tags, "Key", "Value")
    return request


def training_job_status(status: str, secondary: str | None = None) -> JobStatus:
    """The backend-neutral status: InProgress is preprocessing until the script runs; a job
    SageMaker stopped at MaxRuntime or MaxWaitTime failed (nobody cancelled it)."""
    if status == "InProgress":
        return JobStatus.PREPROCESSING if secondary in _PREPARING else JobStatus.RUNNING
    if status == "Stopped" and secondary in _LIMIT_EXCEEDED:
        return JobStatus.FAILED
    return _STATUS.get(status, JobStatus.RUNNING)


def training_failure_reason(status: str, secondary: str | None, reason: str | None) -> str | None:
    """FailureReason, or what stopped a job at a time limit."""
    if reason:
        return reason
    if status == "Stopped" and secondary in _LIMIT_EXCEEDED:
        return f"SageMaker stopped the job: {secondary}"
    return None

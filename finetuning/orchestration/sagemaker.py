"""SageMaker training jobs running ``training_scripts/train.py``, as the workflow starts them.

Every platform job runs in the training subnets with network isolation, inter-container
traffic encryption, the platform key on output (and on the volume where the instance has
an EBS volume), managed spot capacity with checkpoints in S3 unless the spec turns spot off.
Request fields: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetuning.orchestration import tags
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.records import JobStatus
from finetuning.orchestration.state import JobState, finite_metrics

FINAL_MODELS_PREFIX = "models/final/"
CHECKPOINTS_PREFIX = "models/checkpoints/"
CHANNEL_ROOT = "/opt/ml/input/data"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# With network isolation the container cannot fetch its code from S3, so (as the SageMaker
# Python SDK does) the source tarball arrives as a "code" input channel, see
# CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH in
# https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/estimator.py
CODE_CHANNEL = "code"
CODE_CHANNEL_TARBALL = f"{CHANNEL_ROOT}/{CODE_CHANNEL}/sourcedir.tar.gz"
# Hyperparameters the SageMaker training toolkit reads (script mode), and the HuggingFace
# estimator's switch for torchrun (LAUNCH_TORCH_DISTRIBUTED_ENV_NAME), see
# https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/huggingface/estimator.py
PROGRAM = "sagemaker_program"
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
REGION = "sagemaker_region"
LOG_LEVEL = "sagemaker_container_log_level"
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
INSTANCE_TYPE = "sagemaker_instance_type"
# Families with instance storage and no EBS volume take neither VolumeKmsKeyId nor a volume
# size (the SDK's volume_size_supported: any family with a "d", and g5), see
# https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/utils.py
_MULTI_GPU_SIZES = ("12xlarge", "24xlarge", "48xlarge")
# InProgress secondary statuses that come before the training script runs.
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


def has_ebs_volume(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    return "d" not in family and not family.startswith("g5")


def is_distributed(instance_type: str, instance_count: int) -> bool:
    return instance_count > 1 or instance_type.rsplit(".", 1)[-1] in _MULTI_GPU_SIZES


def format_hyperparameter(value: Any) -> str:
    """train.py parses ``--name value``; booleans arrive as ``True``/``False``."""
    return str(value)


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
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


def check_instance_type(instance_type: str, allowed_families: Sequence[str]) -> None:
    family = instance_type.split(".")[1]
    if family not in allowed_families:
        raise ManifestError(
            f"instance_type: {instance_type!r} is in family {family!r}; this platform allows "
            f"{', '.join(allowed_families)} (settings: training.allowed_instance_families)"
        )


def training_request(
    manifest: JobManifest,
    job_id: str,
    env: Environment,
    *,
    metric_definitions: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob arguments for train.py in script mode; metric definitions default
    to the regexes of the log lines train.py prints (training_scripts.metric_definitions)."""
    if metric_definitions is None:
        from training_scripts.metric_definitions import METRIC_DEFINITIONS

        metric_definitions = METRIC_DEFINITIONS
    assert manifest.source_dir_uri is not None  # the manifest requires it for sagemaker
    instance_type = manifest.instance_type or env.default_instance_type
    check_instance_type(instance_type, env.allowed_instance_families)
    hyperparameters: dict[str, str] = {
        name: format_hyperparameter(value) for name, value in manifest.hyperparameters.items()
    }
    hyperparameters.update(
        {
            PROGRAM: manifest.entry_point,
            SUBMIT_DIRECTORY: CODE_CHANNEL_TARBALL,
            REGION: env.region,
            LOG_LEVEL: "20",
            "model_name_or_path": f"{CHANNEL_ROOT}/model",
            "method": manifest.method,
        }
    )
    if is_distributed(instance_type, manifest.instance_count):
        hyperparameters[TORCH_DISTRIBUTED] = "true"
        hyperparameters[INSTANCE_TYPE] = instance_type
    channels = [
        _channel("train", manifest.training_data_uri),
        _channel("model", manifest.base_model),
        _channel(CODE_CHANNEL, manifest.source_dir_uri),
    ]
    if manifest.validation_data_uri:
        channels.insert(1, _channel("validation", manifest.validation_data_uri))
    resources: dict[str, Any] = {
        "InstanceType": instance_type,
        "InstanceCount": manifest.instance_count,
        "VolumeSizeInGB": manifest.volume_size_gb,
    }
    if has_ebs_volume(instance_type):
        resources["VolumeKmsKeyId"] = env.platform_key_arn
    output = manifest.output_uri or f"s3://{env.artifacts_bucket}/{FINAL_MODELS_PREFIX}"
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": manifest.max_run_seconds}
    request: dict[str, Any] = {
        "TrainingJobName": job_id,
        "AlgorithmSpecification": {
            "TrainingImage": manifest.image_uri or env.training_image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(d) for d in metric_definitions],
        },
        "RoleArn": env.sagemaker_role_arn,
        "HyperParameters": hyperparameters,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output, "KmsKeyId": env.platform_key_arn},
        "ResourceConfig": resources,
        "VpcConfig": {
            "SecurityGroupIds": env.security_group_ids,
            "Subnets": env.subnet_ids,
        },
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": manifest.use_spot_instances,
        "Tags": tags.as_key_value_list(
            tags.platform_tags(env.resource_prefix, job_id, manifest.tags), "Key", "Value"
        ),
    }
    if manifest.use_spot_instances:
        # Spot capacity can be reclaimed; train.py resumes from the newest checkpoint.
        stopping["MaxWaitTimeInSeconds"] = manifest.wait_seconds
        request["CheckpointConfig"] = {
            "S3Uri": f"s3://{env.artifacts_bucket}/{CHECKPOINTS_PREFIX}{job_id}/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return request


def start(client: Any, request: Mapping[str, Any]) -> str:
    """Create the job, or find the one an earlier attempt created; returns its ARN."""
    name = request["TrainingJobName"]
    with retryable_errors(f"starting SageMaker training job {name}"):
        try:
            return client.create_training_job(**request)["TrainingJobArn"]
        except client.exceptions.ClientError as exc:
            code, message = error_code(exc), str(exc)
            duplicate = code == "ResourceInUse" or (
                code == "ValidationException" and "must be unique" in message
            )
            if not duplicate:
                raise
            return client.describe_training_job(TrainingJobName=name)["TrainingJobArn"]


def status_of(status: str, secondary: str | None) -> JobStatus:
    if status == "InProgress":
        return JobStatus.PREPROCESSING if secondary in _PREPARING else JobStatus.RUNNING
    if status == "Stopped" and secondary in _LIMIT_EXCEEDED:
        return JobStatus.FAILED
    return {
        "Completed": JobStatus.COMPLETED,
        "Failed": JobStatus.FAILED,
        "Stopping": JobStatus.STOPPING,
        "Stopped": JobStatus.CANCELLED,
    }.get(status, JobStatus.RUNNING)


def failure_reason(status: str, secondary: str | None, reason: str | None) -> str | None:
    if reason:
        return reason
    if status == "Stopped" and secondary in _LIMIT_EXCEEDED:
        return f"SageMaker stopped the job: {secondary}"
    return None


def describe(client: Any, job_name: str) -> JobState:
    with retryable_errors(f"describing SageMaker training job {job_name}"):
        job = client.describe_training_job(TrainingJobName=job_name)
    status, secondary = job["TrainingJobStatus"], job.get("SecondaryStatus")
    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList") or []}
    artifacts = {
        key: value
        for key, value in {
            "model_uri": (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            "output_uri": (job.get("OutputDataConfig") or {}).get("S3OutputPath"),
            "checkpoint_uri": (job.get("CheckpointConfig") or {}).get("S3Uri"),
        }.items()
        if value
    }
    resources = job.get("ResourceConfig") or {}
    # BillableTimeInSeconds already reflects managed spot savings, see
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
    usage = {
        key: value
        for key, value in {
            "instance_type": resources.get("InstanceType"),
            "instance_count": resources.get("InstanceCount"),
            "training_seconds": job.get("TrainingTimeInSeconds"),
            "billable_seconds": job.get("BillableTimeInSeconds"),
            "spot": job.get("EnableManagedSpotTraining"),
        }.items()
        if value is not None
    }
    return JobState(
        job_name=job_name,
        status=status_of(status, secondary),
        backend_status=status if not secondary else f"{status}/{secondary}",
        failure_reason=failure_reason(status, secondary, job.get("FailureReason")),
        job_arn=job.get("TrainingJobArn"),
        metrics=finite_metrics(metrics),
        artifacts=artifacts,
        usage=usage,
    )


def stop(client: Any, job_name: str) -> bool:
    """Stop a running job; False when it had already ended or never started."""
    with retryable_errors(f"stopping SageMaker training job {job_name}"):
        try:
            client.stop_training_job(TrainingJobName=job_name)
        except client.exceptions.ClientError as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return False
            raise
    return True

"""SageMaker training jobs running ``training_scripts/train.py``, as the workflow starts them.

Every platform job runs in the training subnets with network isolation, inter-container
traffic encryption, the platform key on output (and on the volume where the instance has
an EBS volume), managed spot capacity with checkpoints in S3 unless the spec turns spot off.
The request itself is built by :mod:`finetuning.aws_jobs.sagemaker_training`, as the
library's is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetuning.aws_jobs.instance_types import instance_family
from finetuning.aws_jobs.sagemaker_training import (
    TrainingJobSpec,
    training_failure_reason,
    training_job_request,
    training_job_status,
)
from finetuning.orchestration import tags
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.state import JobState, finite_metrics
from finetuning.platform import FINAL_MODELS_PREFIX

CHECKPOINTS_PREFIX = "models/checkpoints/"


def check_instance_type(instance_type: str, allowed_families: Sequence[str]) -> None:
    family = instance_family(instance_type)
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
    assert manifest.source_dir_uri is not None  # the manifest requires it for sagemaker
    instance_type = manifest.instance_type or env.default_instance_type
    check_instance_type(instance_type, env.allowed_instance_families)
    return training_job_request(
        TrainingJobSpec(
            job_name=job_id,
            role_arn=env.sagemaker_role_arn,
            region=env.region,
            image_uri=manifest.image_uri or env.training_image_uri,
            code_uri=manifest.source_dir_uri,
            entry_point=manifest.entry_point,
            base_model=manifest.base_model,
            training_data_uri=manifest.training_data_uri,
            validation_data_uri=manifest.validation_data_uri,
            output_uri=manifest.output_uri or f"s3://{env.artifacts_bucket}/{FINAL_MODELS_PREFIX}",
            method=manifest.method,
            hyperparameters=manifest.hyperparameters,
            instance_type=instance_type,
            instance_count=manifest.instance_count,
            volume_size_gb=manifest.volume_size_gb,
            max_run_seconds=manifest.max_run_seconds,
            use_spot_instances=manifest.use_spot_instances,
            max_wait_seconds=manifest.wait_seconds,
            # Spot capacity can be reclaimed; train.py resumes from the newest checkpoint.
            checkpoint_uri=(
                f"s3://{env.artifacts_bucket}/{CHECKPOINTS_PREFIX}{job_id}/"
                if manifest.use_spot_instances
                else None
            ),
            kms_key_id=env.platform_key_arn,
            subnet_ids=env.subnet_ids,
            security_group_ids=env.security_group_ids,
            enable_network_isolation=True,
            tags=tags.platform_tags(env.resource_prefix, job_id, manifest.tags),
            metric_definitions=metric_definitions,
        )
    )


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
        status=training_job_status(status, secondary),
        backend_status=status if not secondary else f"{status}/{secondary}",
        failure_reason=training_failure_reason(status, secondary, job.get("FailureReason")),
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

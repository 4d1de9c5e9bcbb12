"""SageMaker training jobs running ``training_scripts/train.py`` in script mode.

The job runs on the Hugging Face PyTorch DLC. The code travels as ``sourcedir.tar.gz``
(``training_scripts/``, ``finetuning/data/`` which train.py imports, and the training
requirements), uploaded once per content digest. Hyperparameters are JSON-encoded the way the
SageMaker training toolkit decodes them; the toolkit turns them into ``--name value``.

Request and response fields follow the API reference:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListTrainingJobs.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StopTrainingJob.html
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from finetuning.aws_jobs.hyperparameter_values import json_decoded
from finetuning.aws_jobs.instance_types import INSTANCE_TYPE, INSTANCE_TYPE_DESCRIPTION
from finetuning.aws_jobs.sagemaker_training import (
    FRAMEWORK_PREFIX,
    MODEL_CHANNEL,
    TrainingJobSpec,
    training_failure_reason,
    training_job_request,
    training_job_status,
)
from finetuning.aws_jobs.source_archives import (
    SOURCE_ARCHIVE_NAME,
    TRAINING_ENTRY_POINT,
    training_source_archive,
)
from finetuning.aws_jobs.tags import as_key_value_list
from finetuning.backends.base import request_token
from finetuning.backends.bedrock import KMS_KEY, ROLE_ARN
from finetuning.backends.sagemaker_images import training_image_uri
from finetuning.errors import InvalidJobConfigError, JobNotFoundError
from finetuning.hyperparameters import validate_train_hyperparameters
from finetuning.jobs import (
    SAGEMAKER_JOB_NAME,
    Backend,
    FinetuningJobConfig,
    FinetuningJobResult,
    JobPage,
    JobStatus,
)
from finetuning.uris import is_s3_uri, join_s3, parse_s3_uri

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = TRAINING_ENTRY_POINT
SPEC_TAG = "finetuning:spec-digest"

_STATUS_EQUALS = {
    JobStatus.PREPROCESSING: "InProgress",
    JobStatus.RUNNING: "InProgress",
    JobStatus.STOPPING: "Stopping",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Stopped",
}
# ListTrainingJobs MaxResults: 1-100.
MAX_PAGE_SIZE = 100


def source_archive(include_requirements: bool = True, root: Path | None = None) -> bytes:
    """``sourcedir.tar.gz`` of ``root`` (a checkout; default: the installed packages), built by
    the one archive builder every SageMaker path uses."""
    return training_source_archive(
        install_requirements=include_requirements,
        scripts_dir=root / "training_scripts" if root else None,
        data_dir=root / "finetuning" / "data" if root else None,
    )


class SageMakerBackend:
    name = Backend.SAGEMAKER

    def __init__(self, client: Any, s3_client: Any, region: str) -> None:
        self.client = client
        self.s3 = s3_client
        self.region = region

    # -- validation ------------------------------------------------------------------------

    def check(
        self, config: FinetuningJobConfig, sources: dict[str, str] | None = None
    ) -> dict[str, str]:
        required = (
            "base_model",
            "training_data_uri",
            "output_uri",
            "role_arn",
            "job_name",
            "instance_type",
        )
        for name in required:
            if not getattr(config, name):
                raise InvalidJobConfigError(
                    name,
                    "a value (SageMaker jobs need base_model, training_data_uri, output_uri, "
                    "role_arn, job_name and instance_type; a deployed platform provides "
                    "role_arn and output_uri)",
                    getattr(config, name),
                )
        for name in ("training_data_uri", "validation_data_uri", "output_uri", "checkpoint_uri"):
            value = getattr(config, name)
            if value:
                parse_s3_uri(value, name)
        if not SAGEMAKER_JOB_NAME.match(config.job_name):
            raise InvalidJobConfigError(
                "job_name",
                "1-63 letters, digits and hyphens, starting with a letter or digit",
                config.job_name,
            )
        if not ROLE_ARN.match(config.role_arn):
            raise InvalidJobConfigError(
                "role_arn",
                "an IAM role ARN such as arn:aws:iam::123456789012:role/Name",
                config.role_arn,
            )
        if not INSTANCE_TYPE.match(config.instance_type):
            raise InvalidJobConfigError(
                "instance_type",
                INSTANCE_TYPE_DESCRIPTION,
                config.instance_type,
            )
        if config.kms_key_id and not KMS_KEY.match(config.kms_key_id):
            raise InvalidJobConfigError(
                "kms_key_id", "a KMS key ARN, key id, alias ARN or alias/name", config.kms_key_id
            )
        if (
            config.use_spot_instances
            and config.max_wait_seconds is not None
            and (config.max_wait_seconds < config.max_run_seconds)
        ):
            raise InvalidJobConfigError(
                "max_wait_seconds",
                f"at least max_run_seconds ({config.max_run_seconds}) for spot training",
                config.max_wait_seconds,
            )
        if config.max_wait_seconds is not None and not config.use_spot_instances:
            raise InvalidJobConfigError(
                "max_wait_seconds",
                "unset unless use_spot_instances is true",
                config.max_wait_seconds,
            )
        if not config.image_uri:
            training_image_uri(self.region)  # raises for a region without a known registry
        if config.enable_network_isolation and not is_s3_uri(config.base_model):
            raise InvalidJobConfigError(
                "base_model",
                "an s3:// model directory when enable_network_isolation is true (an isolated "
                "container cannot download from the Hugging Face Hub)",
                config.base_model,
            )
        if config.enable_network_isolation and not config.image_uri:
            # The toolkit cannot pip install requirements.txt without a network, and the
            # Hugging Face DLC ships older transformers/peft/accelerate than train.py is
            # tested with (docs/training.md, "Images").
            raise InvalidJobConfigError(
                "image_uri",
                "an image with training_scripts/requirements.txt installed (such as the "
                "platform's training image, containers/training/Dockerfile) when "
                "enable_network_isolation is true: an isolated job cannot install packages",
                config.image_uri,
            )
        return validate_train_hyperparameters(config.hyperparameters or {}, sources)

    # -- requests ---------------------------------------------------------------------------

    def upload_code(self, config: FinetuningJobConfig) -> str:
        archive = source_archive(include_requirements=not config.enable_network_isolation)
        digest = hashlib.sha256(archive).hexdigest()[:16]
        uri = join_s3(config.output_uri, "code", digest, SOURCE_ARCHIVE_NAME)
        location = parse_s3_uri(uri, "output_uri")
        try:
            self.s3.head_object(Bucket=location.bucket, Key=location.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            extra = (
                {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": config.kms_key_id}
                if config.kms_key_id
                else {}
            )
            self.s3.put_object(Bucket=location.bucket, Key=location.key, Body=archive, **extra)
        return uri

    def build_request(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str], code_uri: str
    ) -> dict[str, Any]:
        checkpoint_uri = config.checkpoint_uri or (
            join_s3(config.output_uri, config.job_name, "checkpoints")
            if config.use_spot_instances
            else None
        )
        request = training_job_request(
            TrainingJobSpec(
                job_name=config.job_name,
                role_arn=config.role_arn,
                region=self.region,
                image_uri=config.image_uri or training_image_uri(self.region),
                code_uri=code_uri,
                entry_point=ENTRY_POINT,
                base_model=config.base_model,
                training_data_uri=config.training_data_uri,
                validation_data_uri=config.validation_data_uri,
                output_uri=config.output_uri,
                method=config.method,
                hyperparameters=hyperparameters,
                instance_type=config.instance_type,
                instance_count=config.instance_count,
                volume_size_gb=config.volume_size_gb,
                distributed=config.distributed,
                max_run_seconds=config.max_run_seconds,
                use_spot_instances=config.use_spot_instances,
                max_wait_seconds=config.max_wait_seconds or 2 * config.max_run_seconds,
                checkpoint_uri=checkpoint_uri,
                kms_key_id=config.kms_key_id,
                subnet_ids=config.subnet_ids,
                security_group_ids=config.security_group_ids,
                enable_network_isolation=config.enable_network_isolation,
            )
        )
        # CreateTrainingJob has no client token: a digest of the request, kept as a tag, tells
        # a retry of this spec from another job under the same name.
        tags = {**dict(config.tags), SPEC_TAG: request_token(request)}
        request["Tags"] = as_key_value_list(tags, "Key", "Value")
        return request

    def create(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> FinetuningJobResult:
        code_uri = self.upload_code(config)
        request = self.build_request(config, hyperparameters, code_uri)
        digest = next(tag["Value"] for tag in request["Tags"] if tag["Key"] == SPEC_TAG)
        try:
            self.client.create_training_job(**request)
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", "")
            if (
                "already exists" not in message
                and exc.response.get("Error", {}).get("Code") != "ResourceInUse"
            ):
                raise
            # CreateTrainingJob has no client token; job names are unique per account and
            # region, and the spec digest tag tells a retry from a real name clash.
            existing = self.client.describe_training_job(TrainingJobName=config.job_name)
            tags = self.client.list_tags(ResourceArn=existing["TrainingJobArn"]).get("Tags", [])
            if {"Key": SPEC_TAG, "Value": digest} not in tags:
                raise InvalidJobConfigError(
                    "job_name",
                    "a name no other training job uses (one exists with a different spec)",
                    config.job_name,
                ) from exc
            return self._result(existing)
        return self.get(config.job_name)

    def get(self, identifier: str) -> FinetuningJobResult:
        name = identifier.rsplit("training-job/", 1)[-1]
        try:
            response = self.client.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in ("ValidationException", "ResourceNotFound") and (
                "not found" in error.get("Message", "").lower()
                or "does not exist" in error.get("Message", "").lower()
            ):
                raise JobNotFoundError(identifier, "sagemaker") from exc
            raise
        return self._result(response)

    def list(
        self,
        status_filter: JobStatus | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> JobPage:
        if status_filter is JobStatus.QUEUED:
            return JobPage(jobs=[])
        request: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        if status_filter is not None:
            request["StatusEquals"] = _STATUS_EQUALS[status_filter]
        if limit is not None:
            request["MaxResults"] = max(1, min(limit, MAX_PAGE_SIZE))
        if next_token:
            request["NextToken"] = next_token
        response = self.client.list_training_jobs(**request)
        jobs = [
            FinetuningJobResult(
                job_arn=item["TrainingJobArn"],
                job_name=item["TrainingJobName"],
                status=self._status(item),
                backend=Backend.SAGEMAKER,
                creation_time=item.get("CreationTime"),
                last_modified_time=item.get("LastModifiedTime"),
                end_time=item.get("TrainingEndTime"),
                backend_status=item.get("TrainingJobStatus"),
            )
            for item in response.get("TrainingJobSummaries", [])
        ]
        if status_filter in (JobStatus.PREPROCESSING, JobStatus.RUNNING):
            jobs = [job for job in jobs if job.status is status_filter]
        return JobPage(jobs=jobs, next_token=response.get("NextToken"))

    def stop(self, identifier: str) -> FinetuningJobResult:
        name = identifier.rsplit("training-job/", 1)[-1]
        self.get(name)
        self.client.stop_training_job(TrainingJobName=name)
        return self.get(name)

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def _status(response: dict[str, Any]) -> JobStatus:
        return training_job_status(
            response.get("TrainingJobStatus", "InProgress"), response.get("SecondaryStatus")
        )

    def _result(self, response: dict[str, Any]) -> FinetuningJobResult:
        status = self._status(response)
        hyperparameters = {
            key: json_decoded(value)
            for key, value in (response.get("HyperParameters") or {}).items()
            if not key.startswith(FRAMEWORK_PREFIX)
        }
        channels = {
            channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
            for channel in response.get("InputDataConfig") or []
            if "S3DataSource" in channel.get("DataSource", {})
        }
        metrics = {
            item["MetricName"]: item["Value"] for item in response.get("FinalMetricDataList") or []
        }
        return FinetuningJobResult(
            job_arn=response["TrainingJobArn"],
            job_name=response["TrainingJobName"],
            status=status,
            backend=Backend.SAGEMAKER,
            model_id=(response.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            base_model=channels.get(MODEL_CHANNEL) or hyperparameters.get("model_name_or_path"),
            creation_time=response.get("CreationTime"),
            last_modified_time=response.get("LastModifiedTime"),
            end_time=response.get("TrainingEndTime"),
            failure_reason=(
                training_failure_reason(
                    response.get("TrainingJobStatus", ""),
                    response.get("SecondaryStatus"),
                    response.get("FailureReason"),
                )
                if status is JobStatus.FAILED
                else None
            ),
            output_uri=(response.get("OutputDataConfig") or {}).get("S3OutputPath"),
            training_data_uri=channels.get("train"),
            validation_data_uri=channels.get("validation"),
            hyperparameters=hyperparameters,
            training_metrics={k: v for k, v in metrics.items() if not k.startswith("eval_")},
            validation_metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
            backend_status=response.get("SecondaryStatus") or response.get("TrainingJobStatus"),
        )

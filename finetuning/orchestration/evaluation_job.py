"""The evaluation's SageMaker Processing job for open models, as the workflow starts and watches it.

The job runs ``containers/evaluation`` (``python -m finetuning.evaluation.processing``) on the
model a SageMaker training job wrote, in the training subnets with network isolation: every
input arrives as a channel and the report leaves through the output channel. Its name derives
from the job id, so a retried task finds the job an earlier attempt started instead of
starting a second one. Request fields:
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html

``plan`` is what the workflow's PrepareEvaluation step returns for this route::

    {"route": "processing",
     "request": {<EvaluationStepRequest fields: job_name, test_set_uri, quality_gate, ...>},
     "processing": {"model_data_url": "s3://.../model.tar.gz",
                    "base_model_uri": "s3://.../" | None,
                    "training_metrics_uri": "s3://.../output.tar.gz" | None,
                    "instance_type": "ml.g5.2xlarge", "volume_size_gb": 50,
                    "max_runtime_seconds": 7200},
     "registration": {...}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from finetuning.aws_jobs.instance_types import DEFAULT_INSTANCE_TYPE, has_instance_storage
from finetuning.evaluation.processing import (
    BASE_CHANNEL,
    CONFIG_CHANNEL,
    DEFAULT_INPUT_DIR,
    DEFAULT_OUTPUT_DIR,
    METRICS_CHANNEL,
    MODEL_CHANNEL,
    OUTCOME_FILE,
    TEST_CHANNEL,
)
from finetuning.evaluation.request import S3_URI, EvaluationStepRequest, StepError
from finetuning.orchestration import tags
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import EvaluationJobFailedError
from finetuning.orchestration.names import DIGEST_LENGTH, NAME_LIMIT, slug
from finetuning.platform import EVALUATION_REPORTS_PREFIX

NAME_SUFFIX = "eval"
CONFIG_OBJECT = "evaluation-request.json"
REPORT_OUTPUT = "report"
DEFAULT_VOLUME_SIZE_GB = 50
DEFAULT_MAX_RUNTIME_SECONDS = 2 * 3600
# ProcessingClusterConfig.VolumeSizeInGB: 1 to 16384.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingClusterConfig.html
VOLUME_SIZE_RANGE = (1, 16384)
# ProcessingStoppingCondition.MaxRuntimeInSeconds: 1 to 777600 (9 days).
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingStoppingCondition.html
MAX_RUNTIME_RANGE = (1, 777600)
IN_PROGRESS = frozenset({"InProgress", "Stopping"})
ENDED_BADLY = frozenset({"Failed", "Stopped"})


def processing_job_name(job_id: str) -> str:
    """``<job id>-eval``; ids too long for that (or not already a slug) keep a readable head
    and gain 10 hex digits of their SHA-256, so distinct ids keep distinct names.

    ProcessingJobName: 1 to 63 characters, ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html
    """
    base = slug(job_id)
    if base and base == job_id and len(base) + 1 + len(NAME_SUFFIX) <= NAME_LIMIT:
        return f"{base}-{NAME_SUFFIX}"
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:DIGEST_LENGTH]
    room = NAME_LIMIT - len(NAME_SUFFIX) - DIGEST_LENGTH - 2
    head = base[:room].rstrip("-") or "job"
    return f"{head}-{digest}-{NAME_SUFFIX}"


def report_uri(job_id: str, env: Environment) -> str:
    """Where the job's output goes, and its request: one prefix per job id, so one job's
    inputs and report never overwrite another's."""
    return f"s3://{env.evaluation_bucket}/{EVALUATION_REPORTS_PREFIX}{job_id}/"


def config_key(job_id: str) -> str:
    return f"{EVALUATION_REPORTS_PREFIX}{job_id}/{CONFIG_OBJECT}"


def _section(plan: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = plan.get(name)
    if not isinstance(value, dict):
        raise StepError(f"plan.{name}: expected an object, got {type(value).__name__}")
    return value


def _optional_uri(section: Mapping[str, Any], name: str) -> str | None:
    value = section.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not S3_URI.match(value):
        raise StepError(f"plan.processing.{name}: expected an s3://bucket/key URI, got {value!r}")
    return value


def _bounded(section: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int:
    value = section.get(name)
    if value is None:
        return default
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StepError(
            f"plan.processing.{name}: expected an integer {low} to {high}, got {value!r}"
        )
    return value


def evaluation_config(job_id: str, plan: Mapping[str, Any], *, env: Environment) -> dict[str, Any]:
    """The container's request: the plan's evaluation request, the model's name in the report
    (the model archive, unless the request names it) and where the output is uploaded.

    It is parsed here with the container's own parser, so a request that cannot run fails the
    task before a paid instance starts.
    """
    request = _section(plan, "request")
    processing = _section(plan, "processing")
    model_data_url = _optional_uri(processing, "model_data_url")
    if model_data_url is None:
        raise StepError("plan.processing.model_data_url: expected the training job's model URI")
    config = {
        **request,
        "model_id": request.get("model_id") or model_data_url,
        "output_uri": report_uri(job_id, env),
    }
    parsed = EvaluationStepRequest.from_event(config)
    gate = parsed.quality_gate
    if gate is not None and gate.needs_base and not parsed.base_model_id:
        raise StepError(
            "quality_gate: min_improvement_over_base needs base_model_id (and "
            "plan.processing.base_model_uri)"
        )
    if parsed.base_model_id and not processing.get("base_model_uri"):
        raise StepError(
            f"base_model_id {parsed.base_model_id!r} asks for a comparison with the base model: "
            "plan.processing.base_model_uri must say where its weights are"
        )
    return config


def _input(name: str, uri: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{DEFAULT_INPUT_DIR}/{name}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            # Gzip decompression is for Pipe mode only; archives are extracted by the job.
            "S3CompressionType": "None",
        },
    }


def processing_job_request(
    job_id: str, plan: dict[str, Any], *, env: Environment, config_uri: str
) -> dict[str, Any]:
    """CreateProcessingJob arguments for the evaluation of ``job_id``'s model."""
    processing = _section(plan, "processing")
    request = _section(plan, "request")
    model_data_url = _optional_uri(processing, "model_data_url")
    test_set_uri = request.get("test_set_uri")
    if model_data_url is None:
        raise StepError("plan.processing.model_data_url: expected the training job's model URI")
    if not isinstance(test_set_uri, str) or not S3_URI.match(test_set_uri):
        raise StepError(f"plan.request.test_set_uri: expected an s3:// URI, got {test_set_uri!r}")
    instance_type = processing.get("instance_type") or DEFAULT_INSTANCE_TYPE
    inputs = [
        _input(CONFIG_CHANNEL, config_uri),
        _input(MODEL_CHANNEL, model_data_url),
        _input(TEST_CHANNEL, test_set_uri),
    ]
    base_model_uri = _optional_uri(processing, "base_model_uri")
    if base_model_uri:
        inputs.append(_input(BASE_CHANNEL, base_model_uri))
    metrics_uri = _optional_uri(processing, "training_metrics_uri")
    if metrics_uri:
        inputs.append(_input(METRICS_CHANNEL, metrics_uri))
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": instance_type,
        "VolumeSizeInGB": _bounded(
            processing, "volume_size_gb", DEFAULT_VOLUME_SIZE_GB, VOLUME_SIZE_RANGE
        ),
    }
    # "You can't request a VolumeKmsKeyId when using an instance type with local storage"
    # (g5, and families with a "d"); their NVMe volume is encrypted by the instance.
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingClusterConfig.html
    if not has_instance_storage(instance_type):
        cluster["VolumeKmsKeyId"] = env.platform_key_arn
    name = processing_job_name(job_id)
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": REPORT_OUTPUT,
                    "S3Output": {
                        "S3Uri": report_uri(job_id, env),
                        "LocalPath": str(DEFAULT_OUTPUT_DIR),
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": env.platform_key_arn,
        },
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {
            "MaxRuntimeInSeconds": _bounded(
                processing, "max_runtime_seconds", DEFAULT_MAX_RUNTIME_SECONDS, MAX_RUNTIME_RANGE
            )
        },
        "AppSpecification": {"ImageUri": env.evaluation_image_uri},
        "NetworkConfig": {
            "EnableInterContainerTrafficEncryption": True,
            "EnableNetworkIsolation": True,
            "VpcConfig": {
                "SecurityGroupIds": env.security_group_ids,
                "Subnets": env.subnet_ids,
            },
        },
        "RoleArn": env.sagemaker_role_arn,
        "Tags": tags.as_key_value_list(
            tags.platform_tags(env.resource_prefix, job_id), "Key", "Value"
        ),
    }


def _is_missing(exc: BaseException) -> bool:
    """DescribeProcessingJob's answer for a name that has no job: the service model lists
    ResourceNotFound; SageMaker (and moto) answer ValidationException "Could not find ..."."""
    code, message = error_code(exc), str(exc).lower()
    return code == "ResourceNotFound" or (
        code == "ValidationException" and ("could not find" in message or "not found" in message)
    )


def _is_duplicate(exc: BaseException) -> bool:
    """CreateProcessingJob's answer for a name in use: ResourceInUse in the service model;
    ValidationException "... must be unique ..." as training jobs answer."""
    code, message = error_code(exc), str(exc).lower()
    duplicate = "must be unique" in message or "already exists" in message
    return code == "ResourceInUse" or (code == "ValidationException" and duplicate)


def describe_job(sagemaker: Any, name: str) -> dict[str, Any] | None:
    """The job, or None when no job has that name."""
    with retryable_errors(f"describing SageMaker Processing job {name}"):
        try:
            return sagemaker.describe_processing_job(ProcessingJobName=name)
        except sagemaker.exceptions.ClientError as exc:
            if _is_missing(exc):
                return None
            raise


def stop_evaluation_job(sagemaker: Any, name: str) -> bool:
    """Stop the evaluation job ``name`` if it is still running (a failed run's cleanup)."""
    job = describe_job(sagemaker, name)
    if job is None or job["ProcessingJobStatus"] != "InProgress":
        return False
    with retryable_errors(f"stopping SageMaker Processing job {name}"):
        sagemaker.stop_processing_job(ProcessingJobName=name)
    return True


def write_config(job_id: str, config: Mapping[str, Any], *, env: Environment, s3: Any) -> str:
    """Store the container's request (SSE-KMS with the platform key); returns its URI."""
    key = config_key(job_id)
    with retryable_errors(f"writing the evaluation request of {job_id}"):
        s3.put_object(
            Bucket=env.evaluation_bucket,
            Key=key,
            Body=json.dumps(config, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=env.platform_key_arn,
        )
    return f"s3://{env.evaluation_bucket}/{key}"


def _output_uri(job: Mapping[str, Any], fallback: str) -> str:
    for output in (job.get("ProcessingOutputConfig") or {}).get("Outputs", []):
        if output.get("OutputName") == REPORT_OUTPUT:
            uri = output.get("S3Output", {}).get("S3Uri") or fallback
            return uri if uri.endswith("/") else uri + "/"
    return fallback


def read_outcome(job: Mapping[str, Any], name: str, fallback_prefix: str, s3: Any) -> dict:
    """The ``outcome.json`` a completed job uploaded."""
    uri = _output_uri(job, fallback_prefix) + OUTCOME_FILE
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    with retryable_errors(f"reading the outcome of SageMaker Processing job {name}"):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.ClientError as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise
            raise EvaluationJobFailedError(
                f"SageMaker Processing job {name} completed but wrote no {uri}"
            ) from None
    try:
        outcome = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationJobFailedError(f"{uri}: not valid JSON ({exc})") from None
    if not isinstance(outcome, dict):
        raise EvaluationJobFailedError(f"{uri}: expected a JSON object")
    return outcome


def _failure(job: Mapping[str, Any], name: str) -> EvaluationJobFailedError:
    status = job["ProcessingJobStatus"]
    # FailureReason is SageMaker's text; ExitMessage is the container's own error line
    # (/opt/ml/output/message), which names the bad input.
    parts = [job.get("FailureReason"), job.get("ExitMessage")]
    detail = "; ".join(p.strip() for p in parts if p and p.strip())
    if not detail:
        detail = "stopped before it finished" if status == "Stopped" else "no reason given"
    return EvaluationJobFailedError(f"SageMaker Processing job {name} {status}: {detail}")


def ensure_evaluation_job(
    job_id: str, plan: dict[str, Any], *, env: Environment, sagemaker: Any, s3: Any
) -> dict[str, Any]:
    """Start the evaluation job unless it exists, and report where it stands.

    Returns ``{"processing_job_name", "status", "done": False}`` while it runs, and the
    container's outcome (``finetuning.evaluation.step.step_outcome``) with
    ``processing_job_name``, ``status: "Completed"`` and ``done: True`` once it completed.
    A failed quality gate is a completed job whose outcome says so; a job that Failed or was
    Stopped raises :class:`EvaluationJobFailedError` with SageMaker's reason and the
    container's message.
    """
    name = processing_job_name(job_id)
    job = describe_job(sagemaker, name)
    if job is None:
        # Everything is checked before anything is written: a plan that cannot run leaves
        # no request object behind.
        config = evaluation_config(job_id, plan, env=env)
        config_uri = f"s3://{env.evaluation_bucket}/{config_key(job_id)}"
        request = processing_job_request(job_id, plan, env=env, config_uri=config_uri)
        write_config(job_id, config, env=env, s3=s3)
        with retryable_errors(f"starting SageMaker Processing job {name}"):
            try:
                sagemaker.create_processing_job(**request)
            except sagemaker.exceptions.ClientError as exc:
                if not _is_duplicate(exc):
                    raise
                # Another attempt created it between our describe and create.
                job = describe_job(sagemaker, name)
        if job is None:
            return {"processing_job_name": name, "status": "InProgress", "done": False}
    status = job["ProcessingJobStatus"]
    if status in IN_PROGRESS:
        return {"processing_job_name": name, "status": status, "done": False}
    if status in ENDED_BADLY:
        raise _failure(job, name)
    outcome = read_outcome(job, name, report_uri(job_id, env), s3)
    return {**outcome, "processing_job_name": name, "status": status, "done": True}

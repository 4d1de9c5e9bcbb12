"""Start the backend job for a validated spec (idempotently) and record it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from finetuning.aws_jobs.backends import PLATFORM_BACKENDS, Backend
from finetuning.orchestration import bedrock, open_weight, sagemaker
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ConfigurationError
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.records import JobStage, JobStatus, JobTable, timestamp
from finetuning.orchestration.state import JobState


def _platform_backend(value: str) -> Backend:
    """The job table's backend; the platform runs no ``local`` jobs."""
    backend = Backend(value)
    if backend not in PLATFORM_BACKENDS:
        raise ValueError(f"{value!r} is not a platform backend (expected bedrock or sagemaker)")
    return backend


def _open_weight_region(job_url: str) -> str:
    """The Region in a job URL (https://bedrock-mantle.<region>.api.aws/...), else this
    function's: a short-term key works only in the Region it was made for."""
    match = re.match(r"^https://bedrock-mantle\.([a-z0-9-]+)\.api\.aws/", job_url)
    return match[1] if match else os.environ.get("AWS_REGION", "")


def describe_job(
    backend: str, job_name: str, clients: Clients, job_arn: str | None = None
) -> JobState:
    """The job's state; ``job_arn`` (the job table's backend_job_arn) tells an open-weight
    RFT job, whose id is its URL on Bedrock's OpenAI-compatible endpoint."""
    if _platform_backend(backend) == Backend.BEDROCK:
        if job_arn and open_weight.is_open_weight_job(job_arn):
            rft = clients.open_weight_rft(_open_weight_region(job_arn))
            return open_weight.describe(rft, job_arn)
        return bedrock.describe(clients("bedrock"), job_name)
    return sagemaker.describe(clients("sagemaker"), job_name)


def stop_job(backend: str, job_name: str, clients: Clients, job_arn: str | None = None) -> bool:
    if _platform_backend(backend) == Backend.BEDROCK:
        if job_arn and open_weight.is_open_weight_job(job_arn):
            rft = clients.open_weight_rft(_open_weight_region(job_arn))
            return open_weight.stop(rft, job_arn)
        return bedrock.stop(clients("bedrock"), job_name)
    return sagemaker.stop(clients("sagemaker"), job_name)


def start_job(
    manifest: JobManifest,
    job_id: str,
    *,
    env: Environment,
    table: JobTable,
    clients: Clients,
    metric_definitions: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Create the Bedrock customization job or SageMaker training job named ``job_id``.

    Safe to repeat: the job name and client request token are the job id, so a retry finds
    the job the first attempt created instead of creating another. Each backend has its own
    start function (and role); ``env.expected_backend`` says which one this is.
    """
    if manifest.backend.value != env.expected_backend:
        raise ConfigurationError(
            f"this function starts {env.expected_backend} jobs; job {job_id} is a "
            f"{manifest.backend.value} job (the workflow's Backend choice routes by backend)"
        )
    table.update(job_id, stage=JobStage.STARTING.value)
    if open_weight.is_open_weight_manifest(manifest):
        # Bedrock's OpenAI-compatible API: the job's id is its URL, stored as its ARN.
        job_arn = open_weight.start(clients.open_weight_rft(env.region), manifest, job_id)
    elif manifest.backend == Backend.BEDROCK:
        job_arn = bedrock.start(
            clients("bedrock"), bedrock.customization_request(manifest, job_id, env)
        )
    else:
        request = sagemaker.training_request(
            manifest, job_id, env, metric_definitions=metric_definitions
        )
        job_arn = sagemaker.start(clients("sagemaker"), request)
    state = describe_job(manifest.backend.value, job_id, clients, job_arn)
    # A terminal status is written only by the steps that end the job (JobTable.finish),
    # so that exactly one of them notifies; the wait step sees it on its first check.
    status = JobStatus.RUNNING if state.is_terminal else state.status
    table.update(
        job_id,
        backend_job_arn=job_arn,
        status=status.value,
        stage=JobStage.TRAINING.value,
        started_at=timestamp(),
    )
    return {"job_arn": job_arn, "job_name": job_id, "status": state.status.value}

"""Provisioned throughput for a tuned Bedrock model, with an expiry so it never bills forever.

The throughput is created (idempotently, its name and client token derive from the job id)
with the platform tags, then checked until InService. At that moment the expiry clock
starts: the throughput is tagged ``finetuning:expires-at`` (unless it has a commitment,
which cannot be deleted before its term) and the job record says when it will go.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from finetuning.orchestration import bedrock, tags
from finetuning.orchestration.aws import retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ThroughputFailedError
from finetuning.orchestration.manifest import Commitment, JobManifest
from finetuning.orchestration.records import (
    JobTable,
    Stage,
    parse_timestamp,
    timestamp,
    utc_now,
)


def provision_throughput(
    manifest: JobManifest,
    job_id: str,
    *,
    results: dict[str, Any],
    env: Environment,
    table: JobTable,
    client: Any,
) -> dict[str, Any]:
    spec = manifest.serving.provisioned_throughput
    if spec is None:
        return {"requested": False}
    model_arn = results.get("artifacts", {}).get("custom_model_arn")
    if not model_arn:
        raise ThroughputFailedError(
            f"job {job_id} produced no custom model ARN to provision throughput for"
        )
    table.update(job_id, stage=Stage.PROVISIONING.value)
    request = bedrock.throughput_request(
        job_id=job_id,
        model_arn=model_arn,
        model_units=spec.model_units,
        commitment=spec.commitment,
        serving_tags=tags.serving_tags(
            env.resource_prefix, job_id, expires_at=None, keep=spec.keep, user_tags=manifest.tags
        ),
    )
    arn = bedrock.create_throughput(client, request)
    serving = {
        "provisioned_model_arn": arn,
        "provisioned_model_name": request["provisionedModelName"],
        "model_units": spec.model_units,
        "commitment": spec.commitment.value,
        "keep": spec.keep,
        "status": "Creating",
        "requested_at": timestamp(),
    }
    table.annotate(job_id, serving=serving)
    return {"requested": True, **serving}


def check_throughput(
    manifest: JobManifest,
    job_id: str,
    *,
    serving: dict[str, Any],
    env: Environment,
    table: JobTable,
    client: Any,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"in_service": bool, ...}``; raises when it failed or took too long."""
    now = now or utc_now()
    arn = serving["provisioned_model_arn"]
    status, failure = bedrock.throughput_status(client, arn)
    if status == bedrock.THROUGHPUT_FAILED:
        raise ThroughputFailedError(f"provisioned throughput {arn} failed: {failure}")
    if status != bedrock.THROUGHPUT_IN_SERVICE:
        waited = now - parse_timestamp(serving["requested_at"])
        limit = timedelta(minutes=env.throughput_max_wait_minutes)
        if waited > limit:
            raise ThroughputFailedError(
                f"provisioned throughput {arn} is still {status} after "
                f"{int(waited.total_seconds() // 60)} minutes "
                f"(limit {env.throughput_max_wait_minutes})"
            )
        return {**serving, "in_service": False, "status": status}
    spec = manifest.serving.provisioned_throughput
    expires_at = None
    if spec is not None and spec.commitment == Commitment.NONE and not spec.keep:
        hours = spec.expires_after_hours or env.default_serving_hours
        expires_at = now + timedelta(hours=hours)
        with retryable_errors(f"tagging provisioned throughput {arn} with its expiry"):
            client.tag_resource(
                resourceARN=arn,
                tags=tags.as_key_value_list({tags.EXPIRES_AT: timestamp(expires_at)}),
            )
    updated = {
        **serving,
        "status": status,
        "in_service_at": timestamp(now),
        "expires_at": timestamp(expires_at) if expires_at else None,
    }
    table.annotate(job_id, serving={k: v for k, v in updated.items() if v is not None})
    return {**updated, "in_service": True}

"""The workflow's serving step: a tuned Bedrock model served inside the fine-tuning state
machine, with an expiry so it never bills (or lingers) forever.

(The deployment of approved model packages is :mod:`finetuning.approved_model_deployment`;
the API's throughput and deployment calls are :mod:`finetuning.backends.bedrock_inference`.)

Two modes (``serving.mode`` of the job manifest, resolved once by :func:`serving_mode` when
the data is validated, and kept as ``$.validation.serving_mode`` for the state machine):

- ``provisioned_throughput``: created (idempotently, its name and client token derive from
  the job id) with the platform tags, then checked until InService. It bills every hour.
- ``on_demand``: a custom model deployment (CreateCustomModelDeployment) of an eligible
  model (:mod:`finetuning.aws_jobs.on_demand`), checked until Active. No
  hourly charge: tokens are billed as used.

When the resource is ready the expiry clock starts: it is tagged ``finetuning:expires-at``
(unless kept, or a throughput with a commitment, which cannot be deleted before its term)
and the job record says when it will go.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from finetuning.aws_jobs.on_demand import (
    DEPLOYMENT_ACTIVE,
    DEPLOYMENT_FAILED,
    ineligibility,
)
from finetuning.orchestration import bedrock, tags
from finetuning.orchestration.aws import retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import (
    DeploymentFailedError,
    ManifestError,
    ThroughputFailedError,
)
from finetuning.orchestration.manifest import NO_COMMITMENT, JobManifest, ServingMode
from finetuning.orchestration.records import (
    JobStage,
    JobTable,
    parse_timestamp,
    timestamp,
    utc_now,
)

# Where the state machine finds the resolved mode (ValidateDataset's result).
SERVING_MODE_KEY = "serving_mode"


def serving_mode(manifest: JobManifest, region: str) -> ServingMode:
    """The manifest's serving mode in this Region; on_demand is refused, before any job
    starts, where the Region has no on-demand deployments (the manifest itself already
    refused ineligible models and customization types)."""
    mode = manifest.serving_mode
    if mode == ServingMode.ON_DEMAND:
        refusal = ineligibility(manifest.base_model, manifest.customization_type, region=region)
        if refusal:
            raise ManifestError(
                f"serving.mode on_demand: {refusal}; set serving.mode: provisioned_throughput "
                "and serving.provisioned_throughput (billed per hour) to serve it here"
            )
    return mode


def start_serving(
    manifest: JobManifest,
    job_id: str,
    *,
    mode: str,
    results: dict[str, Any],
    env: Environment,
    table: JobTable,
    client: Any,
) -> dict[str, Any]:
    """Create what ``mode`` names (ProvisionThroughput and DeployCustomModel both run this)."""
    if mode == ServingMode.ON_DEMAND:
        return deploy_on_demand(
            manifest, job_id, results=results, env=env, table=table, client=client
        )
    return provision_throughput(
        manifest, job_id, results=results, env=env, table=table, client=client
    )


def check_serving(
    manifest: JobManifest,
    job_id: str,
    *,
    serving: dict[str, Any],
    env: Environment,
    table: JobTable,
    client: Any,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check what :func:`start_serving` created (its result says which)."""
    check = check_deployment if serving.get("mode") == ServingMode.ON_DEMAND else check_throughput
    return check(manifest, job_id, serving=serving, env=env, table=table, client=client, now=now)


def _custom_model_arn(
    job_id: str, results: dict[str, Any], what: str, error: type[Exception]
) -> str:
    model_arn = results.get("artifacts", {}).get("custom_model_arn")
    if not model_arn:
        raise error(f"job {job_id} produced no custom model ARN to {what}")
    return model_arn


def _wait_limit(
    what: str,
    status: str,
    serving: dict[str, Any],
    *,
    env: Environment,
    now: datetime,
    error: type[Exception],
) -> None:
    """Raise ``error`` when ``what`` has been ``status`` longer than the platform allows."""
    waited = now - parse_timestamp(serving["requested_at"])
    limit = timedelta(minutes=env.throughput_max_wait_minutes)
    if waited > limit:
        raise error(
            f"{what} is still {status} after {int(waited.total_seconds() // 60)} minutes "
            f"(limit {env.throughput_max_wait_minutes})"
        )


def deploy_on_demand(
    manifest: JobManifest,
    job_id: str,
    *,
    results: dict[str, Any],
    env: Environment,
    table: JobTable,
    client: Any,
) -> dict[str, Any]:
    spec = manifest.serving.on_demand
    keep = bool(spec and spec.keep)
    model_arn = _custom_model_arn(job_id, results, "deploy on demand", DeploymentFailedError)
    table.update(job_id, stage=JobStage.PROVISIONING.value)
    request = bedrock.deployment_request(
        job_id=job_id,
        model_arn=model_arn,
        serving_tags=tags.serving_tags(
            env.resource_prefix, job_id, expires_at=None, keep=keep, user_tags=manifest.tags
        ),
    )
    arn = bedrock.create_deployment(client, request)
    serving = {
        "mode": ServingMode.ON_DEMAND.value,
        "deployment_arn": arn,
        "deployment_name": request["modelDeploymentName"],
        "custom_model_arn": model_arn,
        "keep": keep,
        "status": "Creating",
        "requested_at": timestamp(),
    }
    table.annotate(job_id, serving=serving)
    return {"requested": True, **serving}


def check_deployment(
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
    arn = serving["deployment_arn"]
    status, failure = bedrock.deployment_status(client, arn)
    if status == DEPLOYMENT_FAILED:
        raise DeploymentFailedError(f"custom model deployment {arn} failed: {failure}")
    if status != DEPLOYMENT_ACTIVE:
        _wait_limit(
            f"custom model deployment {arn}",
            status,
            serving,
            env=env,
            now=now,
            error=DeploymentFailedError,
        )
        return {**serving, "in_service": False, "status": status}
    spec = manifest.serving.on_demand
    hours = None
    if not serving.get("keep"):
        hours = (spec.expires_after_hours if spec else None) or env.default_serving_hours
    return _in_service(
        "custom model deployment", arn, job_id, serving, status, hours, now, client, table
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
    model_arn = _custom_model_arn(
        job_id, results, "provision throughput for", ThroughputFailedError
    )
    table.update(job_id, stage=JobStage.PROVISIONING.value)
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
        "mode": ServingMode.PROVISIONED_THROUGHPUT.value,
        "provisioned_model_arn": arn,
        "provisioned_model_name": request["provisionedModelName"],
        "model_units": spec.model_units,
        "commitment": str(spec.commitment),
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
        _wait_limit(
            f"provisioned throughput {arn}",
            status,
            serving,
            env=env,
            now=now,
            error=ThroughputFailedError,
        )
        return {**serving, "in_service": False, "status": status}
    spec = manifest.serving.provisioned_throughput
    hours = None
    if spec is not None and spec.commitment == NO_COMMITMENT and not spec.keep:
        hours = spec.expires_after_hours or env.default_serving_hours
    return _in_service(
        "provisioned throughput", arn, job_id, serving, status, hours, now, client, table
    )


def _in_service(
    kind: str,
    arn: str,
    job_id: str,
    serving: dict[str, Any],
    status: str,
    hours: float | None,
    now: datetime,
    client: Any,
    table: JobTable,
) -> dict[str, Any]:
    """The resource is ready: start its expiry clock (``hours``; None: kept, or a committed
    throughput) by tagging it, and record when it went into service and when it goes."""
    expires_at = None
    if hours is not None:
        expires_at = now + timedelta(hours=hours)
        with retryable_errors(f"tagging {kind} {arn} with its expiry"):
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

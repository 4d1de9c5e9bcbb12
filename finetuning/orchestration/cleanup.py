"""The scheduled cleanup: warn before, then delete, serving resources past their expiry.

Candidates are this environment's Bedrock provisioned throughputs, Bedrock on-demand custom
model deployments and SageMaker endpoints,
found by their tags (:mod:`tags`): ``finetuning:platform`` names the environment,
``finetuning:expires-at`` the deadline. :func:`decide` is the whole policy, a pure
function of a resource and the time:

- no platform tag, or another environment's: not ours, never touched;
- ``finetuning:keep=true``: kept, whatever its expiry;
- no expiry tag: nothing to do, unless its job failed or was cancelled: then the run's own
  cleanup missed it (e.g. the function that created it failed before recording its ARN),
  and it is adopted: given an expiry one warning window ahead, and warned now;
- a commitment that has not ended: cannot be deleted yet (Bedrock refuses), warned once;
- within the warning window (or past the expiry) and not yet warned: warned once, the
  warning remembered as the tag ``finetuning:expiry-warned-at``;
- past the expiry and warned: deleted, and the owners told. Deletion always follows a
  warning by at least one cleanup interval, even when the cleanup first sees a resource
  after its expiry.

A deletion Bedrock refuses because the resource is busy (``ConflictException``: a
deployment or throughput still Creating) is ``deferred``: nothing fails, the tags stay, and
the next pass tries again. The failure handler uses the same hand-over
(:func:`hand_over`) for what a failed run leaves still Creating: it tags the resource
expired and warned (the failure notification is the warning), so the next pass deletes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from finetuning.orchestration import bedrock, notifications, tags
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ServingResourceBusyError
from finetuning.orchestration.records import JobStatus, JobTable, timestamp, utc_now

WARNED_AT = "finetuning:expiry-warned-at"
THROUGHPUT = "provisioned throughput"
DEPLOYMENT = "custom model deployment"
ENDPOINT = "endpoint"
# Bedrock resources: tagged and deleted through the bedrock client.
BEDROCK_KINDS = (THROUGHPUT, DEPLOYMENT)
# A serving resource of a job that ended so, without an expiry, was missed by its run's
# cleanup (HandleFailure deletes what the job record names).
UNSUCCESSFUL = frozenset({JobStatus.FAILED.value, JobStatus.CANCELLED.value})


class Action(StrEnum):
    IGNORE = "ignore"
    KEEP = "keep"
    NONE = "none"
    WARN = "warn"
    DELETE = "delete"
    BLOCKED = "blocked"
    ADOPT = "adopt"
    # Not a decision of the policy: a deletion Bedrock refused for now (still Creating).
    DEFERRED = "deferred"


@dataclass(frozen=True)
class ServingResource:
    kind: str
    name: str
    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    # Bedrock commitments end at this time; before it the throughput cannot be deleted.
    commitment_ends_at: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        return tags.expiry_of(self.tags)

    @property
    def job_id(self) -> str | None:
        return self.tags.get(tags.JOB_ID)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(
    resource: ServingResource,
    *,
    resource_prefix: str,
    now: datetime,
    warning: timedelta,
    job_status: str | None = None,
) -> Decision:
    """``job_status``: the status of the resource's job in the job table, where known."""
    if resource.tags.get(tags.PLATFORM) != resource_prefix:
        return Decision(Action.IGNORE, f"not tagged {tags.PLATFORM}={resource_prefix}")
    if tags.is_kept(resource.tags):
        return Decision(Action.KEEP, f"tagged {tags.KEEP}=true")
    expires_at = resource.expires_at
    if expires_at is None:
        if job_status in UNSUCCESSFUL:
            return Decision(Action.ADOPT, f"no {tags.EXPIRES_AT} tag and its job {job_status}")
        return Decision(Action.NONE, f"no {tags.EXPIRES_AT} tag")
    warned = WARNED_AT in resource.tags
    if resource.commitment_ends_at is not None and resource.commitment_ends_at > now:
        if now >= expires_at - warning and not warned:
            return Decision(
                Action.BLOCKED,
                f"expired or expiring, but its commitment runs until "
                f"{timestamp(resource.commitment_ends_at)}",
            )
        return Decision(Action.NONE, "commitment has not ended")
    if now >= expires_at - warning and not warned:
        return Decision(Action.WARN, f"expires at {timestamp(expires_at)}")
    if now >= expires_at:
        return Decision(Action.DELETE, f"expired at {timestamp(expires_at)}")
    return Decision(Action.NONE, "not yet due")


def _throughputs(client: Any) -> Iterator[ServingResource]:
    with retryable_errors("listing provisioned throughputs"):
        pages = list(client.get_paginator("list_provisioned_model_throughputs").paginate())
    for page in pages:
        for summary in page.get("provisionedModelSummaries", []):
            arn = summary["provisionedModelArn"]
            with retryable_errors(f"reading the tags of {arn}"):
                found = client.list_tags_for_resource(resourceARN=arn).get("tags", [])
            yield ServingResource(
                kind=THROUGHPUT,
                name=summary["provisionedModelName"],
                arn=arn,
                tags=tags.from_key_value_list(found),
                commitment_ends_at=summary.get("commitmentExpirationTime"),
            )


def _deployments(client: Any) -> Iterator[ServingResource]:
    """On-demand custom model deployments, see
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListCustomModelDeployments.html
    """
    with retryable_errors("listing custom model deployments"):
        pages = list(client.get_paginator("list_custom_model_deployments").paginate())
    for page in pages:
        for summary in page.get("modelDeploymentSummaries", []):
            arn = summary["customModelDeploymentArn"]
            with retryable_errors(f"reading the tags of {arn}"):
                found = client.list_tags_for_resource(resourceARN=arn).get("tags", [])
            yield ServingResource(
                kind=DEPLOYMENT,
                name=summary["customModelDeploymentName"],
                arn=arn,
                tags=tags.from_key_value_list(found),
            )


def _endpoints(client: Any) -> Iterator[ServingResource]:
    with retryable_errors("listing SageMaker endpoints"):
        pages = list(client.get_paginator("list_endpoints").paginate())
    for page in pages:
        for summary in page.get("Endpoints", []):
            arn = summary["EndpointArn"]
            with retryable_errors(f"reading the tags of {arn}"):
                found = client.list_tags(ResourceArn=arn).get("Tags", [])
            yield ServingResource(
                kind=ENDPOINT,
                name=summary["EndpointName"],
                arn=arn,
                tags=tags.from_key_value_list(found),
            )


def _mark_warned(resource: ServingResource, clients: Clients, now: datetime, **more: str) -> None:
    """Tag it warned (and with ``more`` tags, given by key)."""
    values = {**more, WARNED_AT: timestamp(now)}
    with retryable_errors(f"tagging {resource.arn} as warned"):
        if resource.kind in BEDROCK_KINDS:
            clients("bedrock").tag_resource(
                resourceARN=resource.arn, tags=tags.as_key_value_list(values)
            )
        else:
            clients("sagemaker").add_tags(
                ResourceArn=resource.arn,
                Tags=[{"Key": key, "Value": value} for key, value in values.items()],
            )


def _job_status(resource: ServingResource, prefix: str, table: JobTable) -> str | None:
    """The job's status, read only where it can change the decision (own, unkept, no
    expiry, a job id)."""
    if (
        resource.tags.get(tags.PLATFORM) != prefix
        or tags.is_kept(resource.tags)
        or resource.expires_at is not None
        or not resource.job_id
    ):
        return None
    record = table.get(resource.job_id)
    return str(record.status) if record is not None else None


def hand_over(client: Any, arn: str, now: datetime | None = None) -> None:
    """Tag a Bedrock serving resource that cannot be deleted yet as expired and warned, so
    the next cleanup pass deletes it (and keeps trying until Bedrock lets it)."""
    value = timestamp(now or utc_now())
    with retryable_errors(f"tagging {arn} for deletion by the expiry cleanup"):
        client.tag_resource(
            resourceARN=arn,
            tags=tags.as_key_value_list({tags.EXPIRES_AT: value, WARNED_AT: value}),
        )


def _delete(resource: ServingResource, clients: Clients) -> bool:
    if resource.kind == THROUGHPUT:
        return bedrock.delete_throughput(clients("bedrock"), resource.arn)
    if resource.kind == DEPLOYMENT:
        return bedrock.delete_deployment(clients("bedrock"), resource.arn)
    sagemaker = clients("sagemaker")
    with retryable_errors(f"deleting endpoint {resource.name}"):
        try:
            sagemaker.delete_endpoint(EndpointName=resource.name)
        except sagemaker.exceptions.ClientError as exc:
            if error_code(exc) == "ValidationException" and "Could not find" in str(exc):
                return False
            raise
    return True


def clean_up_expired(
    *, env: Environment, table: JobTable, clients: Clients, now: datetime | None = None
) -> dict[str, Any]:
    """One cleanup pass over every candidate; returns what it did to each."""
    now = now or utc_now()
    warning = timedelta(hours=env.expiry_warning_hours)
    prefix, region = env.resource_prefix, env.region
    sns = clients("sns")
    report: dict[str, list[dict[str, str]]] = {action.value: [] for action in Action}
    candidates = [
        *_throughputs(clients("bedrock")),
        *_deployments(clients("bedrock")),
        *_endpoints(clients("sagemaker")),
    ]
    for resource in candidates:
        decision = decide(
            resource,
            resource_prefix=prefix,
            now=now,
            warning=warning,
            job_status=_job_status(resource, prefix, table),
        )
        entry = {"kind": resource.kind, "arn": resource.arn, "reason": decision.reason}
        report[decision.action.value].append(entry)
        expires = timestamp(resource.expires_at) if resource.expires_at else "unknown"
        adopted = {}
        if decision.action == Action.ADOPT:
            expires = timestamp(now + warning)
            adopted = {tags.EXPIRES_AT: expires}
        if decision.action in (Action.WARN, Action.BLOCKED, Action.ADOPT):
            notifications.publish(
                sns,
                env.topic_arn,
                notifications.expiry_warning(
                    prefix,
                    region,
                    kind=resource.kind,
                    name=resource.name,
                    arn=resource.arn,
                    expires_at=expires,
                    job_id=resource.job_id,
                ),
            )
            _mark_warned(resource, clients, now, **adopted)
        elif decision.action == Action.DELETE:
            try:
                deleted = _delete(resource, clients)
            except ServingResourceBusyError as busy:
                report[Action.DELETE.value].remove(entry)
                report[Action.DEFERRED.value].append({**entry, "reason": str(busy)})
                continue
            if deleted:
                notifications.publish(
                    sns,
                    env.topic_arn,
                    notifications.expired(
                        prefix,
                        region,
                        kind=resource.kind,
                        name=resource.name,
                        arn=resource.arn,
                        expires_at=expires,
                        job_id=resource.job_id,
                    ),
                )
            if resource.job_id and table.get(resource.job_id) is not None:
                record = table.require(resource.job_id)
                serving = {**(record.serving or {}), "deleted_at": timestamp(now)}
                table.annotate(resource.job_id, serving=serving)
    return {key: value for key, value in report.items() if value and key != Action.IGNORE}

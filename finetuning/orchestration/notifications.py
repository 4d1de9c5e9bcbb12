"""Notification texts (success, failure, expiry) and publishing them to the SNS topic.

Every message names the job, its status and metrics, and links to the console pages
where a person continues: the execution, the backend job, the serving resource. SNS
subjects are at most 100 printable ASCII characters, see
https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from finetuning.orchestration.aws import retryable_errors

SUBJECT_LIMIT = 100


@dataclass(frozen=True)
class Message:
    kind: str  # succeeded | failed | cancelled | expiry-warning | expired
    subject: str
    body: str
    job_id: str | None = None


def console(region: str, service: str, fragment: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{service}/home?region={region}#{fragment}"


def execution_link(region: str, execution_arn: str) -> str:
    return console(region, "states", f"/v2/executions/details/{quote(execution_arn, safe='')}")


def job_link(region: str, backend: str, job_name: str) -> str:
    if backend == "sagemaker":
        return console(region, "sagemaker", f"/jobs/{quote(job_name)}")
    return console(region, "bedrock", "/custom-models")


def resource_link(region: str, kind: str, name: str) -> str:
    if kind == "endpoint":
        return console(region, "sagemaker", f"/endpoints/{quote(name)}")
    if kind == "custom model deployment":
        # Deployments are reached from the custom models page of the console.
        return console(region, "bedrock", "/custom-models")
    return console(region, "bedrock", "/provisioned-throughput")


def _subject(prefix: str, text: str) -> str:
    subject = f"[{prefix}] {text}"
    subject = subject.encode("ascii", "replace").decode()
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."


def _lines(title: str, values: Mapping[str, Any] | None) -> list[str]:
    if not values:
        return []
    lines = [f"{title}:"]
    for name, value in sorted(values.items()):
        shown = f"{value:.6g}" if isinstance(value, float) else value
        lines.append(f"  {name}: {shown}")
    return lines


def _links(region: str, job: Mapping[str, Any]) -> list[str]:
    lines = ["Links:"]
    if job.get("execution_arn"):
        lines.append(f"  execution: {execution_link(region, job['execution_arn'])}")
    lines.append(f"  {job['backend']} job: {job_link(region, job['backend'], job['job_id'])}")
    return lines


def _header(job: Mapping[str, Any], status: str) -> list[str]:
    return [
        f"Job:        {job['job_name']} ({job['job_id']})",
        f"Status:     {status}",
        f"Backend:    {job['backend']}",
        f"Base model: {job['base_model']}",
    ]


def job_succeeded(prefix: str, region: str, job: Mapping[str, Any]) -> Message:
    body = _header(job, "completed")
    body += _lines("Metrics", job.get("metrics"))
    body += _lines("Artifacts", job.get("artifacts"))
    cost = job.get("cost") or {}
    if cost:
        estimate = cost.get("estimated_usd")
        shown = f"{estimate} USD" if estimate is not None else "not estimated"
        body.append(f"Estimated cost: {shown} ({cost.get('basis', '')})")
    serving = job.get("serving") or {}
    if serving.get("provisioned_model_arn"):
        body.append(f"Provisioned throughput: {serving['provisioned_model_arn']}")
        body.append(f"  expires: {serving.get('expires_at') or 'never (kept or committed)'}")
    if serving.get("deployment_arn"):
        body.append(f"On-demand deployment: {serving['deployment_arn']} (no hourly charge)")
        body.append(f"  expires: {serving.get('expires_at') or 'never (kept)'}")
    evaluation = job.get("evaluation") or {}
    if evaluation.get("report_uri"):
        body.append(f"Evaluation: {evaluation['report_uri']} ({evaluation.get('reason', '')})")
    if evaluation.get("model_package_arn"):
        body.append(
            f"Model package: {evaluation['model_package_arn']} "
            f"({evaluation.get('approval_status') or 'status unknown'})"
        )
    body += _links(region, job)
    return Message(
        kind="succeeded",
        subject=_subject(prefix, f"Fine-tuning job {job['job_id']} completed"),
        body="\n".join(body),
        job_id=job["job_id"],
    )


def job_failed(
    prefix: str,
    region: str,
    job: Mapping[str, Any],
    *,
    status: str,
    error: str,
    cause: str,
    cleaned_up: list[str],
) -> Message:
    body = _header(job, status)
    body.append(f"Stage:      {job.get('stage', 'unknown')}")
    body.append(f"Error:      {error}")
    body.append(f"Cause:      {cause}")
    body += _lines("Metrics", job.get("metrics"))
    if cleaned_up:
        body.append("Removed so nothing keeps billing:")
        body += [f"  {item}" for item in cleaned_up]
    body += _links(region, job)
    verb = "was cancelled" if status == "cancelled" else "failed"
    return Message(
        kind=status,
        subject=_subject(prefix, f"Fine-tuning job {job['job_id']} {verb}: {error}"),
        body="\n".join(body),
        job_id=job["job_id"],
    )


def expiry_warning(
    prefix: str, region: str, *, kind: str, name: str, arn: str, expires_at: str, job_id: str | None
) -> Message:
    body = [
        f"The {kind} {name} expires at {expires_at} and will then be deleted.",
        f"ARN:  {arn}",
        f"Job:  {job_id or 'unknown'}",
        "To keep it, tag it finetuning:keep=true, or move finetuning:expires-at later.",
        f"Link: {resource_link(region, kind, name)}",
    ]
    return Message(
        kind="expiry-warning",
        subject=_subject(prefix, f"{kind} {name} will be deleted at {expires_at}"),
        body="\n".join(body),
        job_id=job_id,
    )


def expired(
    prefix: str, region: str, *, kind: str, name: str, arn: str, expires_at: str, job_id: str | None
) -> Message:
    body = [
        f"The {kind} {name} expired at {expires_at} and was deleted.",
        f"ARN:  {arn}",
        f"Job:  {job_id or 'unknown'}",
        f"Link: {resource_link(region, kind, name)}",
    ]
    return Message(
        kind="expired",
        subject=_subject(prefix, f"{kind} {name} expired and was deleted"),
        body="\n".join(body),
        job_id=job_id,
    )


def manifest_rejected(prefix: str, uri: str, reason: str) -> Message:
    body = [
        f"The job manifest {uri} was not started:",
        "",
        reason,
        "",
        "Fix the manifest and upload it again (docs/orchestration.md, 'Job manifest').",
    ]
    name = uri.rsplit("/", 1)[-1]
    return Message(
        kind="rejected",
        subject=_subject(prefix, f"Job manifest {name} rejected"),
        body="\n".join(body),
    )


def publish(sns: Any, topic_arn: str, message: Message) -> str:
    attributes = {"kind": {"DataType": "String", "StringValue": message.kind}}
    if message.job_id:
        attributes["job_id"] = {"DataType": "String", "StringValue": message.job_id}
    with retryable_errors(f"publishing the {message.kind} notification"):
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=message.subject,
            Message=message.body,
            MessageAttributes=attributes,
        )
    return response["MessageId"]

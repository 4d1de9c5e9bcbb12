"""When a run fails or is stopped: mark the job, remove what would keep billing, notify.

Two paths lead here. The state machine's Catch on every task sends the error to the
failure step; and when an execution is stopped (StopExecution), times out or fails outside
a Catch, the "Step Functions Execution Status Change" event sends it to the
execution-ended function. Both call :func:`handle_failure`; whichever ends the job in the
table first does the cleanup and the notification, the other finds nothing left to do.
"""

from __future__ import annotations

import json
from typing import Any

from finetuning.orchestration import bedrock, notifications, tags
from finetuning.orchestration.cleanup import hand_over
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import JOB_STOPPED, ServingResourceBusyError
from finetuning.orchestration.evaluation_job import stop_evaluation_job
from finetuning.orchestration.launch import describe_job, stop_job
from finetuning.orchestration.records import JobRecord, JobStatus, JobTable

# Step Functions execution statuses that end an execution without its Catch running, see
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html
EXECUTION_END_ERRORS = {
    "ABORTED": "ExecutionAborted",
    "TIMED_OUT": "ExecutionTimedOut",
    "FAILED": "ExecutionFailed",
}
CANCELLING_ERRORS = frozenset({JOB_STOPPED, EXECUTION_END_ERRORS["ABORTED"]})


def error_message(cause: str | None) -> str:
    """The readable part of a Catch's ``Cause``: Lambda errors arrive as a JSON document."""
    if not cause:
        return "no cause recorded"
    try:
        document = json.loads(cause)
    except (ValueError, TypeError):
        return cause
    if isinstance(document, dict) and document.get("errorMessage"):
        return str(document["errorMessage"])
    return cause


def remove_partial_resources(record: JobRecord, clients: Clients) -> list[str]:
    """Stop a job still running, stop its evaluation job, delete the provisioned throughput
    or on-demand deployment the failed run created. One that Bedrock cannot delete yet
    (still Creating) is handed to the expiry cleanup, which deletes it on its next run."""
    removed = []
    if record.backend_job_arn:
        job_arn = record.backend_job_arn
        state = describe_job(record.backend, record.job_id, clients, job_arn)
        if not state.is_terminal and stop_job(record.backend, record.job_id, clients, job_arn):
            removed.append(f"stopped {record.backend} job {record.job_id}")
    evaluation_job = (record.evaluation or {}).get("processing_job_name")
    if evaluation_job and stop_evaluation_job(clients("sagemaker"), evaluation_job):
        removed.append(f"stopped evaluation job {evaluation_job}")
    serving = record.serving or {}
    served = [
        ("provisioned throughput", serving.get("provisioned_model_arn"), bedrock.delete_throughput),
        ("custom model deployment", serving.get("deployment_arn"), bedrock.delete_deployment),
    ]
    for kind, arn, delete in served:
        if not arn or serving.get("deleted_at"):
            continue
        if serving.get("keep"):
            removed.append(f"kept {kind} {arn} (tagged {tags.KEEP}=true)")
        else:
            removed.extend(_delete_or_hand_over(kind, arn, delete, clients))
    return removed


def _delete_or_hand_over(kind: str, arn: str, delete: Any, clients: Clients) -> list[str]:
    try:
        return [f"deleted {kind} {arn}"] if delete(clients("bedrock"), arn) else []
    except ServingResourceBusyError:
        hand_over(clients("bedrock"), arn)
        return [
            f"left {kind} {arn} to the expiry cleanup: Bedrock cannot delete it yet (still "
            f"being created); tagged {tags.EXPIRES_AT}, it is deleted on the cleanup's next run"
        ]


def handle_failure(
    job_id: str,
    *,
    error: str,
    cause: str | None,
    execution_arn: str | None,
    env: Environment,
    table: JobTable,
    clients: Clients,
) -> dict[str, Any]:
    status = JobStatus.CANCELLED if error in CANCELLING_ERRORS else JobStatus.FAILED
    message = error_message(cause)
    record = table.get(job_id)
    if record is None:
        # Failed before the job was registered (an execution input that is not a job).
        return {"status": status.value, "recorded": False, "error": error, "cause": message}
    failure = {"error": error, "cause": message[:4000], "stage": record.stage}
    if not table.finish(job_id, status, failure=failure):
        return {"status": record.status, "recorded": False, "reason": "job had already ended"}
    removed = remove_partial_resources(record, clients)
    if removed:
        table.annotate(job_id, failure={**failure, "cleanup": removed})
    job = {**record.summary(), "execution_arn": execution_arn or record.execution_arn}
    note = notifications.job_failed(
        env.resource_prefix,
        env.region,
        job,
        status=status.value,
        error=error,
        cause=message,
        cleaned_up=removed,
    )
    notifications.publish(clients("sns"), env.topic_arn, note)
    return {"status": status.value, "recorded": True, "cleanup": removed, "error": error}


def on_execution_ended(
    detail: dict[str, Any], *, env: Environment, table: JobTable, clients: Clients
) -> dict[str, Any]:
    """Handle an execution that ended without running its Catch (stopped, timed out)."""
    status = str(detail.get("status", ""))
    if status not in EXECUTION_END_ERRORS:
        return {"action": "ignored", "reason": f"execution status {status or 'missing'}"}
    job_id = str(detail.get("name", ""))
    cause = detail.get("cause") or detail.get("error") or f"the execution ended {status}"
    return handle_failure(
        job_id,
        error=EXECUTION_END_ERRORS[status],
        cause=str(cause),
        execution_arn=detail.get("executionArn"),
        env=env,
        table=table,
        clients=clients,
    )

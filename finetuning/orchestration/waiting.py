"""Waiting for a job: a task token answered by the job's state-change event, or by a poll.

The wait task stores its token in the job table and looks at the job once; the
EventBridge rule on Bedrock and SageMaker job state changes answers the token when the job
ends. Those events are delivered on a best-effort basis, see
https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-bedrock.html, so the wait
task times out after the poll interval and runs again: each run looks at the job itself,
which is the slower polling fallback. Both paths may answer the same token; the second
answer is refused by Step Functions and ignored here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from finetuning.aws_jobs.backends import Backend
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.errors import JOB_FAILED, JOB_STOPPED
from finetuning.orchestration.launch import describe_job
from finetuning.orchestration.records import JobStatus, JobTable
from finetuning.orchestration.state import JobState

# SendTaskSuccess/SendTaskFailure errors for a token that was already answered or expired.
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
STALE_TOKEN_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
MAX_ERROR = 256
MAX_CAUSE = 32768
# The detail-types of the two services' job state-change events, see
# https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
BEDROCK_EVENT = ("aws.bedrock", "Model Customization Job State Change")
SAGEMAKER_EVENT = ("aws.sagemaker", "SageMaker Training Job State Change")
TERMINAL_BACKEND_STATUSES = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class JobEvent:
    backend: Backend
    job_name: str
    backend_status: str


def parse_job_event(source: str, detail_type: str, detail: dict[str, Any]) -> JobEvent | None:
    """The job an EventBridge event is about, or None for events of other kinds."""
    if (source, detail_type) == BEDROCK_EVENT:
        # Bedrock's sample event names the status "jobStatus"; accept "status" as well.
        status = detail.get("jobStatus") or detail.get("status")
        name = detail.get("jobName")
        backend = Backend.BEDROCK
    elif (source, detail_type) == SAGEMAKER_EVENT:
        status = detail.get("TrainingJobStatus")
        name = detail.get("TrainingJobName")
        backend = Backend.SAGEMAKER
    else:
        return None
    if not name or not status:
        return None
    return JobEvent(backend=backend, job_name=str(name), backend_status=str(status))


def answer(sfn: Any, token: str, state: JobState) -> bool:
    """Report a finished job to the waiting task; False if the token was already answered."""
    with retryable_errors(f"answering the wait of job {state.job_name}"):
        try:
            if state.status == JobStatus.COMPLETED:
                sfn.send_task_success(taskToken=token, output=json.dumps(state.to_dict()))
            else:
                error = JOB_FAILED if state.status == JobStatus.FAILED else JOB_STOPPED
                cause = (
                    f"{state.job_name} ended {state.backend_status}: "
                    f"{state.failure_reason or 'no reason given'}"
                )
                sfn.send_task_failure(
                    taskToken=token, error=error[:MAX_ERROR], cause=cause[:MAX_CAUSE]
                )
        except sfn.exceptions.ClientError as exc:
            if error_code(exc) in STALE_TOKEN_CODES:
                return False
            raise
    return True


def register_wait(
    job_id: str, task_token: str, *, table: JobTable, clients: Clients
) -> dict[str, Any]:
    """Store the token, then look at the job: a job that already ended is answered now."""
    record = table.require(job_id)
    sfn = clients("stepfunctions")
    if JobStatus(record.status).is_terminal:
        # Ended by someone else (the execution-ended handler); release the wait.
        stopped = JobState(
            job_name=job_id,
            status=JobStatus.CANCELLED,
            backend_status=record.status,
            failure_reason="the job was ended outside this execution",
        )
        answer(sfn, task_token, stopped)
        return {"answered": True, "status": record.status}
    table.update(job_id, task_token=task_token)
    state = describe_job(record.backend, job_id, clients, record.backend_job_arn)
    if not state.is_terminal:
        table.update(job_id, status=state.status.value)
        return {"answered": False, "status": state.status.value}
    answered = answer(sfn, task_token, state)
    return {"answered": answered, "status": state.status.value}


def on_job_event(event: JobEvent, *, table: JobTable, clients: Clients) -> dict[str, Any]:
    """Answer the waiting task of the job an event is about (if it is a platform job)."""
    record = table.get(event.job_name)
    if record is None or record.backend != event.backend.value:
        return {"action": "ignored", "reason": "not a job of this platform"}
    if event.backend_status not in TERMINAL_BACKEND_STATUSES:
        return {"action": "ignored", "reason": f"status {event.backend_status} is not final"}
    if not record.task_token:
        return {"action": "ignored", "reason": "no wait registered; the next poll sees the end"}
    # Events can arrive out of order or twice: the job's own description decides.
    state = describe_job(record.backend, record.job_id, clients, record.backend_job_arn)
    if not state.is_terminal:
        return {"action": "ignored", "reason": f"job is {state.backend_status} (stale event)"}
    answered = answer(clients("stepfunctions"), record.task_token, state)
    if answered:
        table.update(record.job_id, task_token=None)
    return {"action": "answered" if answered else "already-answered", "status": state.status}

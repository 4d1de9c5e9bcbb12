"""Last step of a successful run: mark the job completed and tell its owners."""

from __future__ import annotations

from typing import Any

from finetuning.orchestration import notifications
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.evaluation import evaluation_record
from finetuning.orchestration.records import JobStage, JobStatus, JobTable


def complete_job(
    job_id: str,
    *,
    execution_arn: str | None,
    env: Environment,
    table: JobTable,
    sns: Any,
    evaluation: dict[str, Any] | None = None,
    registration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark completed once; only the call that did so sends the success notification.

    ``evaluation`` and ``registration`` are the evaluation step's outcome and the model
    package the register step created, if the run evaluated and registered the model."""
    attributes: dict[str, Any] = {"stage": JobStage.DONE.value}
    if evaluation:
        record = table.require(job_id)
        attributes["evaluation"] = {
            **(record.evaluation or {}),
            **evaluation_record(evaluation, registration or {}),
        }
    ended = table.finish(job_id, JobStatus.COMPLETED, **attributes)
    if not ended:
        return {"completed": False, "notified": False}
    record = table.require(job_id)
    job = {**record.summary(), "execution_arn": execution_arn or record.execution_arn}
    job.update(artifacts=record.artifacts, serving=record.serving, evaluation=record.evaluation)
    message = notifications.job_succeeded(env.resource_prefix, env.region, job)
    message_id = notifications.publish(sns, env.topic_arn, message)
    return {"completed": True, "notified": True, "message_id": message_id}

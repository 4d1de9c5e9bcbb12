"""First step of every run: put the job in the job table (once)."""

from __future__ import annotations

from typing import Any

from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.records import JobRecord, JobTable
from finetuning.orchestration.workflow import WorkflowState


def register_job(state: WorkflowState, *, execution_arn: str | None, table: JobTable) -> dict:
    """Create the job's record; a retry of this step finds the record its first try made.

    A job id that already ran under another execution (a name reused after Step Functions'
    90-day window) is refused: the same spec never makes a second job.
    """
    manifest = state.manifest
    if manifest.job_id != state.job_id:
        raise ManifestError(
            f"execution input: job_id {state.job_id!r} does not match the job spec, whose id "
            f"is {manifest.job_id!r}; start executions with finetuning.platform_client"
        )
    record = JobRecord(
        job_id=state.job_id,
        job_name=manifest.job_name,
        backend=manifest.backend.value,
        base_model=manifest.base_model,
        spec=manifest.to_spec(),
        source=state.source,
        execution_arn=execution_arn,
        manifest_uri=state.manifest_uri,
    )
    stored, created = table.register(record)
    if not created and stored.execution_arn not in (None, execution_arn):
        raise ManifestError(
            f"job {state.job_id} already ran in execution {stored.execution_arn} (status "
            f"{stored.status}); set revision: {manifest.revision + 1} in the manifest to run "
            "the same spec again"
        )
    result: dict[str, Any] = {"created": created, "created_at": stored.created_at}
    return result

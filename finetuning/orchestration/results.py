"""Collect what a finished job produced: metrics, artifact locations and a cost estimate."""

from __future__ import annotations

from typing import Any

from finetuning.orchestration import cost
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.launch import describe_job
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.records import JobStage, JobTable


def collect_results(
    manifest: JobManifest,
    job_id: str,
    *,
    table: JobTable,
    clients: Clients,
    dataset_tokens: int | None,
    prices: cost.PriceTable,
) -> dict[str, Any]:
    table.update(job_id, stage=JobStage.COLLECTING.value)
    job_arn = table.require(job_id).backend_job_arn
    state = describe_job(manifest.backend.value, job_id, clients, job_arn)
    estimate = cost.estimate(manifest, state, dataset_tokens=dataset_tokens, prices=prices)
    table.update(
        job_id,
        metrics=state.metrics,
        artifacts=state.artifacts,
        cost=estimate,
        stage=JobStage.EVALUATING.value,
    )
    return {
        "backend_status": state.backend_status,
        "metrics": state.metrics,
        "artifacts": state.artifacts,
        "cost": estimate,
    }

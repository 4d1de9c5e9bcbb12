"""The evaluation hand-off: the step that the evaluation work plugs into.

Contract (docs/orchestration.md, "Evaluation hand-off"): the step receives the workflow
state (the job spec, whose ``evaluation`` section is the evaluation's own settings such
as a quality gate, and ``results`` with metrics and artifact locations) and returns
``{"passed": bool, "report_uri": str, "metrics": {...}, "reason": str}``. The workflow
fails the run with ``reason`` when ``passed`` is false.

Until a real evaluation is wired in, this step records the training metrics as the
evaluation record and passes: it never invents a verdict about model quality.
"""

from __future__ import annotations

import json
from typing import Any

from finetuning.orchestration.aws import retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable, timestamp
from finetuning.platform import EVALUATION_REPORTS_PREFIX


def record_training_metrics(
    job_id: str,
    *,
    evaluation_spec: dict[str, Any],
    results: dict[str, Any],
    env: Environment,
    s3: Any,
    table: JobTable,
) -> dict[str, Any]:
    key = f"{EVALUATION_REPORTS_PREFIX}{job_id}/training-metrics.json"
    document = {
        "job_id": job_id,
        "recorded_at": timestamp(),
        "metrics": results.get("metrics", {}),
        "artifacts": results.get("artifacts", {}),
        "evaluation_spec": evaluation_spec,
    }
    with retryable_errors(f"writing the evaluation record of {job_id}"):
        s3.put_object(
            Bucket=env.evaluation_bucket,
            Key=key,
            Body=json.dumps(document, indent=2).encode(),
            ContentType="application/json",
        )
    reason = "training metrics recorded; no model evaluation is installed in this workflow"
    if evaluation_spec:
        reason += " (the manifest's evaluation settings were recorded, not applied)"
    outcome = {
        "passed": True,
        "report_uri": f"s3://{env.evaluation_bucket}/{key}",
        "metrics": results.get("metrics", {}),
        "reason": reason,
    }
    table.update(job_id, evaluation=outcome)
    return outcome

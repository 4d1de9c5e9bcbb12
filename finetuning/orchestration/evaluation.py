"""PrepareEvaluation: record the training metrics and plan the evaluation of a finished job.

The plan (``$.evaluation`` in the workflow state, docs/orchestration.md "Evaluation, gate
and registration") tells the state machine which way to go:

- ``route: "bedrock"``: the serving stack's evaluate-candidate function evaluates the
  on-demand custom model deployment or the provisioned throughput the workflow created
  (its ARN is ``request.model_id``; ``request`` is that function's input);
- ``route: "processing"``: a SageMaker Processing job evaluates the trained open model
  (``request`` is the job's evaluation config, ``processing`` its resources and inputs);
- ``route: "none"``: the spec has no test set; only the training metrics are recorded.

``registration`` is the register-model function's input, less the evaluation's results,
and ``registration.register`` says whether to register at all. The training metrics are
always written to ``evaluation/reports/<job id>/training-metrics.json``.
"""

from __future__ import annotations

import json
from typing import Any

from finetuning.aws_jobs.backends import Backend
from finetuning.orchestration import names
from finetuning.orchestration.aws import retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import JobManifest
from finetuning.orchestration.records import JobStage, JobTable, timestamp
from finetuning.platform import EVALUATION_REPORTS_PREFIX

ROUTE_BEDROCK = "bedrock"
ROUTE_PROCESSING = "processing"
ROUTE_NONE = "none"
# Registry model names: 1-63 characters (finetuning.model_package_registry.RegistrationRequest).
MAX_MODEL_NAME = 63


def registry_model_name(manifest: JobManifest) -> str:
    """The spec's ``evaluation.model_name``, else the job name made registry-safe."""
    if manifest.evaluation.model_name:
        return manifest.evaluation.model_name
    return names.slug(manifest.job_name)[:MAX_MODEL_NAME].rstrip("-")


def plan_evaluation(
    manifest: JobManifest,
    job_id: str,
    *,
    results: dict[str, Any],
    serving: dict[str, Any],
    env: Environment,
    s3: Any,
    table: JobTable,
) -> dict[str, Any]:
    spec = manifest.evaluation
    artifacts = results.get("artifacts", {})
    metrics_uri = _record_training_metrics(manifest, job_id, results, env=env, s3=s3)
    plan: dict[str, Any] = {"route": ROUTE_NONE, "training_metrics_uri": metrics_uri}
    if not spec.runs:
        plan["reason"] = "no evaluation.test_set_uri in the job spec: training metrics recorded"
        table.update(job_id, stage=JobStage.EVALUATING.value, evaluation=plan)
        return plan

    bedrock = manifest.backend == Backend.BEDROCK
    request: dict[str, Any] = {
        "job_name": job_id,
        "test_set_uri": spec.test_set_uri,
        "inference": spec.inference.model_dump(exclude_none=True),
        "max_samples": spec.max_samples,
        "concurrency": spec.concurrency,
    }
    optional = {
        "quality_gate": spec.quality_gate.model_dump() if spec.quality_gate else None,
        "task": spec.task,
        "label_key": spec.label_key,
    }
    request.update({key: value for key, value in optional.items() if value is not None})
    registration = {
        "register": spec.register_model,
        "model_name": registry_model_name(manifest),
        "job_name": job_id,
        "backend": manifest.backend.value,
        "base_model": manifest.base_model,
        "model_data_url": None,
        "bedrock_custom_model_arn": None,
    }
    if bedrock:
        # A custom model answers only through what serves it (workflow_serving.py).
        served = serving.get("deployment_arn") or serving.get("provisioned_model_arn")
        custom_model = artifacts.get("custom_model_arn")
        if not served or not custom_model:
            raise ManifestError(
                f"job {job_id}: a Bedrock evaluation needs the provisioned throughput (or "
                f"the on-demand deployment) and the custom model (got served by {served!r}, "
                f"custom model {custom_model!r})"
            )
        request["model_id"] = served
        if spec.compare_with_base:
            request["base_model_id"] = spec.base_model_id or manifest.base_model
        if artifacts.get("output_uri"):
            # Bedrock writes step_wise_training_metrics.csv under the job's output prefix.
            request["training_metrics_uri"] = artifacts["output_uri"]
        registration["bedrock_custom_model_arn"] = custom_model
        plan.update(route=ROUTE_BEDROCK, request=request, registration=registration)
    else:
        model_uri = artifacts.get("model_uri")
        if not model_uri:
            raise ManifestError(f"job {job_id}: the training job reported no model artifact")
        request["model_id"] = model_uri
        if spec.batch_size is not None:
            request["batch_size"] = spec.batch_size
        if spec.compare_with_base:
            # The container compares with the base weights it gets as its base channel.
            request["base_model_id"] = manifest.base_model
        registration["model_data_url"] = model_uri
        plan.update(
            route=ROUTE_PROCESSING,
            request=request,
            registration=registration,
            processing={
                "model_data_url": model_uri,
                "base_model_uri": manifest.base_model if spec.compare_with_base else None,
                "training_metrics_uri": _output_archive(model_uri),
                "instance_type": spec.instance_type,
                "volume_size_gb": spec.volume_size_gb,
                "max_runtime_seconds": spec.max_runtime_seconds,
            },
        )
    plan["reason"] = f"evaluating on {spec.test_set_uri} ({plan['route']})"
    table.update(
        job_id,
        stage=JobStage.EVALUATING.value,
        evaluation={"route": plan["route"], "training_metrics_uri": metrics_uri},
    )
    return plan


def _output_archive(model_uri: str) -> str | None:
    """train.py's CSVs (loss curves) leave the training job in ``output.tar.gz``, beside
    ``model.tar.gz`` under ``<output path>/<job>/output/``."""
    if model_uri.endswith("/model.tar.gz"):
        return model_uri.removesuffix("model.tar.gz") + "output.tar.gz"
    return None


def _record_training_metrics(
    manifest: JobManifest, job_id: str, results: dict[str, Any], *, env: Environment, s3: Any
) -> str:
    key = f"{EVALUATION_REPORTS_PREFIX}{job_id}/training-metrics.json"
    document = {
        "job_id": job_id,
        "recorded_at": timestamp(),
        "metrics": results.get("metrics", {}),
        "artifacts": results.get("artifacts", {}),
        "evaluation_spec": manifest.evaluation.model_dump(mode="json", exclude_none=True),
    }
    with retryable_errors(f"writing the training metrics of {job_id}"):
        s3.put_object(
            Bucket=env.evaluation_bucket,
            Key=key,
            Body=json.dumps(document, indent=2).encode(),
            ContentType="application/json",
        )
    return f"s3://{env.evaluation_bucket}/{key}"


def evaluation_record(outcome: dict[str, Any], registration: dict[str, Any]) -> dict[str, Any]:
    """What the job table keeps of a finished evaluation (CompleteJob writes it)."""
    kept = ("report_uri", "evaluation_results_uri", "quality_gate_passed", "metrics", "reason")
    record = {key: outcome[key] for key in kept if outcome.get(key) is not None}
    if outcome.get("processing_job_name"):
        record["processing_job_name"] = outcome["processing_job_name"]
    if registration.get("model_package_arn"):
        record["model_package_arn"] = registration["model_package_arn"]
        record["approval_status"] = registration.get("approval_status")
    return record

"""The workflow's evaluation step for Bedrock targets (``lambda/evaluate_candidate``).

It evaluates the tuned model (provisioned throughput, custom model deployment or any Converse
model id) and optionally its base model on a JSONL test set in S3, applies the job's quality
gate, and stores the results JSON and the report under ``evaluation/reports/<job>/`` in the
evaluation bucket. The verdict is returned, not raised: the register step refuses a failed
model (``finetuning.orchestration.errors.QualityGateFailedError``) so the run fails with the
report's address.

A Lambda invocation lasts at most 15 minutes; ``max_samples`` bounds the test set so the step
finishes inside it (about 1-3 seconds per Converse call, ``concurrency`` at a time).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from finetuning.evaluation.curves import CurveError, read_loss_curves
from finetuning.evaluation.evaluator import EvaluationSettings, evaluate
from finetuning.evaluation.report import upload_report, write_report
from finetuning.evaluation.request import (  # noqa: F401 (re-exported: the request's old home)
    JOB_NAME,
    S3_URI,
    EvaluationStepRequest,
    StepError,
)
from finetuning.evaluation.runner import RunOptions
from finetuning.evaluation.samples import read_test_set
from finetuning.evaluation.targets import BedrockConverseTarget
from finetuning.platform import EVALUATION_REPORTS_PREFIX

LOGGER = logging.getLogger(__name__)


def report_prefix(job_name: str) -> str:
    return f"{EVALUATION_REPORTS_PREFIX}{job_name}/"


def run_evaluation_step(
    request: EvaluationStepRequest,
    *,
    runtime: Any,
    control: Any,
    s3: Any,
    evaluation_bucket: str,
    workdir: Path,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """Evaluate, report and upload; return where everything went and the gate's verdict."""
    bucket, _, key = request.test_set_uri.removeprefix("s3://").partition("/")
    test_file = workdir / "test.jsonl"
    s3.download_file(bucket, key, str(test_file))
    samples = read_test_set(test_file)[: request.max_samples]

    tuned = BedrockConverseTarget(
        request.model_id, runtime, family=request.model_family, control_client=control
    )
    base = None
    if request.base_model_id:
        base = BedrockConverseTarget(request.base_model_id, runtime, control_client=control)
    curves = None
    if request.training_metrics_uri:
        try:
            curves = read_loss_curves([request.training_metrics_uri], s3_client=s3)
        except CurveError as exc:
            # Loss curves illustrate the report; their absence must not cost the verdict.
            LOGGER.warning("report without loss curves: %s", exc)
    settings = EvaluationSettings(
        params=request.inference,
        run=RunOptions(concurrency=request.concurrency, progress=False),
        task=request.task,
        label_key=request.label_key,
        gate=request.quality_gate,
    )
    results_file = workdir / "results.json"
    document = evaluate(
        tuned,
        samples,
        settings,
        base=base,
        output_file=results_file,
        curves=curves,
        inputs={"test_set": request.test_set_uri, "samples": len(samples)},
    )
    files = write_report(
        document, workdir / "report", curves=curves, title=f"Evaluation: {request.job_name}"
    )
    destination = f"s3://{evaluation_bucket}/{report_prefix(request.job_name)}"
    upload_report(files.all, files.directory, destination, s3, kms_key_id=kms_key_arn)
    upload_report([results_file], workdir, destination, s3, kms_key_id=kms_key_arn)

    return step_outcome(document, request.job_name, destination)


def step_outcome(document: Any, job_name: str, destination: str) -> dict[str, Any]:
    """What an evaluation step returns (the Lambda function and the Processing job alike):
    where the results and report are, the headline metrics and the gate's verdict, with a
    one-line ``reason`` that names the failed checks and the report."""
    gate = document.quality_gate
    headline = {
        k: v
        for k, v in document.tuned.metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    report_uri = f"{destination}report.html"
    if gate is None:
        reason = "no quality gate in the job spec"
    elif gate["passed"]:
        reason = f"quality gate passed ({len(gate.get('checks', []))} checks)"
    else:
        failed = "; ".join(c["message"] for c in gate.get("checks", []) if not c.get("passed"))
        reason = f"quality gate failed: {failed}"
    return {
        "job_name": job_name,
        "evaluation_results_uri": f"{destination}results.json",
        "report_uri": report_uri,
        "report_markdown_uri": f"{destination}report.md",
        "quality_gate_passed": None if gate is None else bool(gate["passed"]),
        "quality_gate": gate,
        "metrics": headline,
        "improvement": document.improvement() or None,
        "reason": f"{reason}; report: {report_uri}",
    }

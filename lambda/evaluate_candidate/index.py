"""Evaluate a Bedrock model for the workflow: metrics, report and quality-gate verdict.

Input: ``{"job_name", "model_id", "test_set_uri", "base_model_id"?, "quality_gate"?,
"inference"?, "task"?, "label_key"?, "training_metrics_uri"?, "max_samples"?,
"concurrency"?}``. Output: where the results and report went, the metrics and the gate's
verdict (``quality_gate_passed``); the register step refuses a failed model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from finetuning.evaluation.step import EvaluationStepRequest, run_evaluation_step
from finetuning.orchestration.environment import Environment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
ENV = Environment()
# Read once at cold start: a missing setting fails here, naming its variable.
EVALUATION_BUCKET, KEY_ARN = ENV.evaluation_bucket, ENV.platform_key_arn
# One attempt per call: the evaluation runner retries throttling with backoff itself.
RUNTIME_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=120)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = EvaluationStepRequest.from_event(event)
    with tempfile.TemporaryDirectory() as workdir:
        outcome = run_evaluation_step(
            request,
            runtime=boto3.client("bedrock-runtime", config=RUNTIME_CONFIG),
            control=boto3.client("bedrock"),
            s3=boto3.client("s3"),
            evaluation_bucket=EVALUATION_BUCKET,
            workdir=Path(workdir),
            kms_key_arn=KEY_ARN,
        )
    passed = outcome["quality_gate_passed"]
    metrics.add_metric(
        name="QualityGateFailures", unit=MetricUnit.Count, value=int(passed is False)
    )
    logger.info("evaluated", extra={"report_uri": outcome["report_uri"], "passed": passed})
    return outcome

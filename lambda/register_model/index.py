"""Register an evaluated model in the SageMaker Model Registry (a Step Functions task).

Input: ``{"model_name", "job_name", "backend": "sagemaker"|"bedrock",
"evaluation_results_uri", "model_data_url" | "bedrock_custom_model_arn", "report_uri"?,
"base_model"?}``. Output: ``{"model_package_arn", "approval_status", "model_quality_uri",
"created"}``. A failed quality gate raises ``QualityGateFailedError`` (catch it by that name).
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.model_package_registry import RegistrationRequest, register_evaluated_model
from finetuning.orchestration.environment import Environment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
ENV = Environment()
# Read once at cold start: a missing or invalid setting fails here, naming its variable.
SETTINGS = ENV.serving_settings()
GROUP, EVALUATION_BUCKET, KEY_ARN = (
    ENV.model_package_group,
    ENV.evaluation_bucket,
    ENV.platform_key_arn,
)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RegistrationRequest.from_event(event)
    registration = register_evaluated_model(
        boto3.client("sagemaker"),
        boto3.client("s3"),
        request,
        group=GROUP,
        evaluation_bucket=EVALUATION_BUCKET,
        region=ENV.region,
        settings=SETTINGS,
        kms_key_arn=KEY_ARN,
    )
    if registration.created:
        metrics.add_metric(name="ModelsRegistered", unit=MetricUnit.Count, value=1)
    logger.info("registered", extra={"registration": registration.as_dict()})
    return registration.as_dict()

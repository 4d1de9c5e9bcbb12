"""Serve approved models: reacts to two EventBridge events.

- "SageMaker Model Package State Change" (approved): create or blue/green-update the
  model's endpoint, or provision Bedrock serving for a Bedrock custom model;
- "SageMaker Endpoint State Change" (a platform endpoint): once in service, put
  target-tracking autoscaling on it (an update removes it first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.approved_model_deployment import (
    DeploymentContext,
    PackageStateChange,
    deploy_approved_package,
    on_endpoint_in_service,
)
from finetuning.orchestration.environment import Environment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
CONTEXT = DeploymentContext.from_environment(Environment())
SERVICES = ("sagemaker", "cloudwatch", "application-autoscaling", "bedrock")


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    clients = {name: boto3.client(name) for name in SERVICES}
    if event.detail_type == "SageMaker Endpoint State Change":
        result = on_endpoint_in_service(
            clients["sagemaker"],
            clients["application-autoscaling"],
            CONTEXT,
            event.detail["EndpointName"],
        )
    else:
        change = PackageStateChange.from_event(event.raw_event)
        result = deploy_approved_package(clients, CONTEXT, change, now=datetime.now(UTC))
    metrics.add_metric(name=f"Deployments{result.action.title()}", unit=MetricUnit.Count, value=1)
    logger.info("deployment", extra={"deployment": result.as_dict()})
    return result.as_dict()

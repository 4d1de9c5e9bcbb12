"""Execution stopped, timed out or failed outside a Catch -> stop its job, clean up, notify."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.failures import on_execution_ended
from finetuning.orchestration.records import JobTable

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def handler(event: EventBridgeModel, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.detail.get("name"), status=event.detail.get("status"))
    return on_execution_ended(
        event.detail,
        env=ENV,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        clients=CLIENTS,
    )

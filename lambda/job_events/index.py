"""Job state-change events (Bedrock, SageMaker) -> answer the waiting execution's token."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.waiting import on_job_event, parse_job_event

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def handler(event: EventBridgeModel, context: LambdaContext) -> dict:
    job_event = parse_job_event(event.source, event.detail_type, event.detail)
    if job_event is None:
        return {"action": "ignored", "reason": f"not a job event: {event.detail_type}"}
    logger.append_keys(job_id=job_event.job_name, backend=job_event.backend.value)
    table = JobTable(CLIENTS("dynamodb"), ENV.job_table)
    result = on_job_event(job_event, table=table, clients=CLIENTS)
    if result["action"] == "answered":
        metrics.add_metric(name="WaitsAnsweredByEvent", unit=MetricUnit.Count, value=1)
    return result

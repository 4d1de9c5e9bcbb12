"""RegisterJob: put the job in the job table (first state of every execution)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.registration import register_job
from finetuning.orchestration.workflow import TaskEvent

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TaskEvent)
def handler(event: TaskEvent, context: LambdaContext) -> dict:
    state = event.input
    logger.append_keys(job_id=state.job_id)
    table = JobTable(CLIENTS("dynamodb"), ENV.job_table)
    result = register_job(state, execution_arn=event.execution_arn, table=table)
    if result["created"]:
        metrics.add_metric(name="JobsRegistered", unit=MetricUnit.Count, value=1)
    return result

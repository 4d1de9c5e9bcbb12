"""WaitForJob: store the task token; answer it at once if the job has already ended."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ConfigurationError
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.waiting import register_wait
from finetuning.orchestration.workflow import TaskEvent

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TaskEvent)
def handler(event: TaskEvent, context: LambdaContext) -> dict:
    if not event.task_token:
        raise ConfigurationError("WaitForJob must be invoked with a task token")
    logger.append_keys(job_id=event.input.job_id)
    table = JobTable(CLIENTS("dynamodb"), ENV.job_table)
    return register_wait(event.input.job_id, event.task_token, table=table, clients=CLIENTS)

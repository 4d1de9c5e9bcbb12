"""HandleFailure: every Catch ends here. Mark the job, remove partial resources, notify."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.failures import handle_failure
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.workflow import ResultKeys, TaskEvent

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TaskEvent)
def handler(event: TaskEvent, context: LambdaContext) -> dict:
    state = event.input
    error = state.result(ResultKeys.ERROR)
    logger.append_keys(job_id=state.job_id, error=error.get("Error"))
    result = handle_failure(
        state.job_id,
        error=error.get("Error", "UnknownError"),
        cause=error.get("Cause"),
        execution_arn=event.execution_arn,
        env=ENV,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        clients=CLIENTS,
    )
    if result.get("recorded"):
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
    return result

"""CompleteJob: mark the job completed and send the success notification."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.completion import complete_job
from finetuning.orchestration.environment import Environment
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
    job_id = event.input.job_id
    logger.append_keys(job_id=job_id)
    result = complete_job(
        job_id,
        execution_arn=event.execution_arn,
        env=ENV,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        sns=CLIENTS("sns"),
        evaluation=event.input.result(ResultKeys.EVALUATION_RESULT),
        registration=event.input.result(ResultKeys.MODEL_REGISTRATION),
    )
    if result["completed"]:
        metrics.add_metric(name="JobsSucceeded", unit=MetricUnit.Count, value=1)
    return result

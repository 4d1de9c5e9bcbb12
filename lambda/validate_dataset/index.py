"""ValidateDataset: check the training data with finetuning.data; errors fail the run."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.validation import validate_job_data
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
    summary = validate_job_data(
        state.manifest, state.job_id, env=ENV, s3=CLIENTS("s3"), table=table
    )
    metrics.add_metric(name="RecordsValidated", unit=MetricUnit.Count, value=summary["records"])
    return summary

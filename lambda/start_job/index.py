"""StartJob: create the Bedrock or SageMaker job, at most once per job id."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import idempotency
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.launch import start_job
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.workflow import TaskEvent

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()
# A retried task or a re-delivered invocation returns the first result, never a second job.
IDEMPOTENCY = idempotency.IdempotencyConfig(
    event_key_jmespath="input.job_id",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=ENV.idempotency_ttl_seconds,
)
PERSISTENCE = idempotency.DynamoDBPersistenceLayer(table_name=ENV.idempotency_table)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotency.idempotent(config=IDEMPOTENCY, persistence_store=PERSISTENCE)
def handler(event: dict, context: LambdaContext) -> dict:
    task = parse(event=event, model=TaskEvent)
    logger.append_keys(job_id=task.input.job_id)
    table = JobTable(CLIENTS("dynamodb"), ENV.job_table)
    launched = start_job(
        task.input.manifest, task.input.job_id, env=ENV, table=table, clients=CLIENTS
    )
    metrics.add_metric(name="JobsStarted", unit=MetricUnit.Count, value=1)
    return launched

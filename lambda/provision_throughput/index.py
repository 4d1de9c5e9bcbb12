"""ProvisionThroughput and DeployCustomModel: create the provisioned throughput or the
on-demand custom model deployment the job's serving mode names."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import idempotency
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.workflow import ResultKeys, TaskEvent
from finetuning.orchestration.workflow_serving import SERVING_MODE_KEY, start_serving

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()
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
    state = parse(event=event, model=TaskEvent).input
    logger.append_keys(job_id=state.job_id)
    manifest = state.manifest
    mode = state.result(ResultKeys.VALIDATION).get(SERVING_MODE_KEY) or manifest.serving_mode
    serving = start_serving(
        manifest,
        state.job_id,
        mode=mode,
        results=state.result(ResultKeys.RESULTS),
        env=ENV,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        client=CLIENTS("bedrock"),
    )
    if serving["requested"]:
        name = "DeploymentsRequested" if "deployment_arn" in serving else "ThroughputsRequested"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return serving

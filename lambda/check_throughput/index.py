"""CheckThroughput and CheckDeployment: is the provisioned throughput InService, or the
on-demand deployment Active, yet? Starts its expiry if so."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.workflow import ResultKeys, TaskEvent
from finetuning.orchestration.workflow_serving import check_serving

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
    return check_serving(
        state.manifest,
        state.job_id,
        serving=state.result(ResultKeys.SERVING),
        env=ENV,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        client=CLIENTS("bedrock"),
    )

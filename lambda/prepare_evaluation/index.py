"""PrepareEvaluation: record the training metrics and plan the evaluation (see
finetuning.orchestration.evaluation)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.evaluation import plan_evaluation
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
    logger.append_keys(job_id=state.job_id)
    plan = plan_evaluation(
        state.manifest,
        state.job_id,
        results=state.result(ResultKeys.RESULTS),
        serving=state.result(ResultKeys.SERVING),
        env=ENV,
        s3=CLIENTS("s3"),
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
    )
    logger.info("evaluation planned", extra={"route": plan["route"]})
    return plan

"""EvaluateOpenModel: start the evaluation Processing job once, then report its state
(see finetuning.orchestration.evaluation_job); the workflow calls it until ``done``."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.evaluation_job import ensure_evaluation_job
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
    outcome = ensure_evaluation_job(
        state.job_id,
        state.result(ResultKeys.EVALUATION),
        env=ENV,
        sagemaker=CLIENTS("sagemaker"),
        s3=CLIENTS("s3"),
    )
    # The failure handler stops a job that is still running when the run fails.
    table = JobTable(CLIENTS("dynamodb"), ENV.job_table)
    record = table.require(state.job_id)
    table.update(
        state.job_id,
        evaluation={
            **(record.evaluation or {}),
            "processing_job_name": outcome["processing_job_name"],
            "processing_job_status": outcome["status"],
        },
    )
    logger.info("evaluation job", extra={"status": outcome["status"]})
    return outcome

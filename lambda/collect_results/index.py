"""CollectResults: metrics, artifact locations and a cost estimate of the finished job."""

import json
import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.cost import PriceTable
from finetuning.orchestration.environment import Environment, Var
from finetuning.orchestration.records import JobTable
from finetuning.orchestration.results import collect_results
from finetuning.orchestration.workflow import ResultKeys, TaskEvent

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()
PRICES = PriceTable.published().overridden_by(
    PriceTable.from_dict(json.loads(os.environ.get(Var.PRICE_TABLE, "{}")))
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TaskEvent)
def handler(event: TaskEvent, context: LambdaContext) -> dict:
    state = event.input
    logger.append_keys(job_id=state.job_id)
    return collect_results(
        state.manifest,
        state.job_id,
        table=JobTable(CLIENTS("dynamodb"), ENV.job_table),
        clients=CLIENTS,
        dataset_tokens=state.result(ResultKeys.VALIDATION).get("tokens"),
        prices=PRICES,
    )

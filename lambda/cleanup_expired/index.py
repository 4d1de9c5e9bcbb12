"""Scheduled cleanup: warn about, then delete, serving resources past their expiry."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.cleanup import clean_up_expired
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobTable

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV = Environment()
CLIENTS = Clients()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # The schedule's input carries nothing the cleanup needs: it looks at every candidate.
    report = clean_up_expired(
        env=ENV, table=JobTable(CLIENTS("dynamodb"), ENV.job_table), clients=CLIENTS
    )
    for action in ("warn", "delete", "blocked", "deferred", "adopt"):
        count = len(report.get(action, []))
        metrics.add_metric(name=f"Serving{action.title()}", unit=MetricUnit.Count, value=count)
    return report

"""A job manifest put under s3://<data bucket>/jobs/ -> start its execution (once)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import idempotency
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.submission import submit_manifest_object

logger, tracer, metrics = Logger(), Tracer(), Metrics()
ENV, CLIENTS = Environment(), Clients()
# S3 may deliver an event more than once; one object version starts one execution.
IDEMPOTENCY = idempotency.IdempotencyConfig(
    event_key_jmespath="detail.[bucket.name, object.key, object.etag]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=ENV.idempotency_ttl_seconds,
)
PERSISTENCE = idempotency.DynamoDBPersistenceLayer(table_name=ENV.idempotency_table)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotency.idempotent(config=IDEMPOTENCY, persistence_store=PERSISTENCE)
def handler(event: dict, context: LambdaContext) -> dict:
    detail = parse(event=event, model=S3EventNotificationEventBridgeModel).detail
    logger.append_keys(manifest=f"s3://{detail.bucket.name}/{detail.object.key}")
    result = submit_manifest_object(
        s3=CLIENTS("s3"),
        sfn=CLIENTS("stepfunctions"),
        sns=CLIENTS("sns"),
        state_machine_arn=ENV.state_machine_arn,
        topic_arn=ENV.topic_arn,
        resource_prefix=ENV.resource_prefix,
        bucket=detail.bucket.name,
        key=detail.object.key,
        version_id=detail.object.version_id,
    )
    outcome = "ManifestsRejected" if result["rejected"] else "ManifestsSubmitted"
    metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
    return result

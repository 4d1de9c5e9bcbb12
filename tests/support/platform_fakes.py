"""The platform's AWS resources in moto, and helpers the orchestration tests share."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from finetuning.orchestration.environment import Var
from finetuning.orchestration.records import CREATED_INDEX, STATUS_INDEX
from tests.fixtures.events import documented_event, sample_for, with_detail
from tests.support.lambda_handlers import load_handler as load_lambda_handler

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "llm-finetuning-test"
LAMBDA_ROOT = Path(__file__).resolve().parents[2] / "lambda"
DATA_BUCKET = f"{PREFIX}-data-{ACCOUNT}-{REGION}"
ARTIFACTS_BUCKET = f"{PREFIX}-artifacts-{ACCOUNT}-{REGION}"
EVALUATION_BUCKET = f"{PREFIX}-evaluation-{ACCOUNT}-{REGION}"
JOB_TABLE = f"{PREFIX}-jobs"
IDEMPOTENCY_TABLE = f"{PREFIX}-idempotency"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
BEDROCK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/bedrock-customization"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
STATE_MACHINE_NAME = f"{PREFIX}-finetuning"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"
TRAINING_IMAGE = (
    f"763104351884.dkr.ecr.{REGION}.amazonaws.com/huggingface-pytorch-training:"
    "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04"
)
NOVA = "amazon.nova-lite-v1:0:300k"
MODEL_PACKAGE_GROUP = f"{PREFIX}-models"
EVALUATION_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:evaluation"
INFERENCE_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:inference"


def nova_records(count: int = 10) -> str:
    lines = [
        {
            "schemaVersion": "bedrock-conversation-2024",
            "system": [{"text": "You answer support questions."}],
            "messages": [
                {"role": "user", "content": [{"text": f"How do I reset password {i}?"}]},
                {"role": "assistant", "content": [{"text": f"Open settings, step {i}."}]},
            ],
        }
        for i in range(count)
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def chat_records(count: int = 10) -> str:
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i}."},
            ]
        }
        for i in range(count)
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def bedrock_manifest(**overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "job_name": "support-bot",
        "backend": "bedrock",
        "base_model": NOVA,
        "training_data_uri": f"s3://{DATA_BUCKET}/training-data/processed/support/train.jsonl",
        "hyperparameters": {"epochCount": 2, "learningRate": 0.00001, "batchSize": 1},
        "tags": {"team": "support"},
    }
    manifest.update(overrides)
    return manifest


def sagemaker_manifest(**overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "job_name": "open-model",
        "backend": "sagemaker",
        "base_model": f"s3://{ARTIFACTS_BUCKET}/models/base/smollm2/",
        "training_data_uri": f"s3://{DATA_BUCKET}/training-data/processed/chat/train.jsonl",
        "source_dir_uri": f"s3://{ARTIFACTS_BUCKET}/models/code/sourcedir.tar.gz",
        "instance_type": "ml.g5.2xlarge",
        "hyperparameters": {"num_train_epochs": 1, "learning_rate": 0.0002},
    }
    manifest.update(overrides)
    return manifest


def client(service: str) -> Any:
    """A client from one shared session: botocore loads each service model only once."""
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session.client(service, region_name=REGION)


_session: boto3.session.Session | None = None


def function_environment() -> dict[str, str]:
    """Every variable any function reads (the stack sets a subset on each)."""
    return {
        Var.REGION: REGION,
        Var.RESOURCE_PREFIX: PREFIX,
        Var.JOB_TABLE: JOB_TABLE,
        Var.IDEMPOTENCY_TABLE: IDEMPOTENCY_TABLE,
        Var.STATE_MACHINE_ARN: STATE_MACHINE_ARN,
        Var.DATA_BUCKET: DATA_BUCKET,
        Var.ARTIFACTS_BUCKET: ARTIFACTS_BUCKET,
        Var.EVALUATION_BUCKET: EVALUATION_BUCKET,
        Var.PLATFORM_KEY_ARN: KEY_ARN,
        Var.SAGEMAKER_ROLE_ARN: SAGEMAKER_ROLE,
        Var.BEDROCK_ROLE_ARN: BEDROCK_ROLE,
        Var.SUBNET_IDS: "subnet-0a,subnet-0b",
        Var.SECURITY_GROUP_IDS: "sg-0123",
        Var.DEFAULT_INSTANCE_TYPE: "ml.g5.2xlarge",
        Var.ALLOWED_INSTANCE_FAMILIES: "g5,g6,p4d",
        Var.TRAINING_IMAGE_URI: TRAINING_IMAGE,
        Var.EVALUATION_IMAGE_URI: EVALUATION_IMAGE,
        # The serving stack's functions.
        Var.MODEL_PACKAGE_GROUP: MODEL_PACKAGE_GROUP,
        Var.ENDPOINT_SUBNET_IDS: "subnet-0a,subnet-0b",
        Var.ENDPOINT_SECURITY_GROUP_IDS: "sg-0endpoint",
        Var.SERVING_SETTINGS: json.dumps(
            {
                "approval_status": "PendingManualApproval",
                # The serving stack's inference image asset (containers/inference).
                "endpoint": {"huggingface_image": INFERENCE_IMAGE},
            }
        ),
        Var.DEFAULT_SERVING_HOURS: "24",
        Var.EXPIRY_WARNING_HOURS: "6",
        Var.THROUGHPUT_MAX_WAIT_MINUTES: "60",
        Var.IDEMPOTENCY_TTL_SECONDS: "3600",
        Var.PRICE_TABLE: json.dumps(
            {"instance_hour": {"ml.g5.2xlarge": 1.5}, "as_of": "test", "source": "test"}
        ),
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "FineTuningPlatformTest",
        "POWERTOOLS_SERVICE_NAME": "orchestration-test",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def create_job_table(dynamodb: Any) -> None:
    """The job table as the stack defines it (key, two indexes)."""
    created = {"AttributeName": "created_at", "KeyType": "RANGE"}
    dynamodb.create_table(
        TableName=JOB_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("job_id", "status", "record_type", "created_at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, created],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": CREATED_INDEX,
                "KeySchema": [{"AttributeName": "record_type", "KeyType": "HASH"}, created],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


@dataclass
class Platform:
    """Handles on the moto-backed platform resources."""

    s3: Any
    dynamodb: Any
    sns: Any
    sqs: Any
    sfn: Any
    ssm: Any
    topic_arn: str
    inbox_url: str
    state_machine_arn: str
    environment: dict[str, str] = field(default_factory=function_environment)

    def put(self, uri: str, body: str | bytes) -> None:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def notifications(self) -> list[dict[str, Any]]:
        """SNS messages delivered so far (subject, message, attributes), oldest first."""
        found = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "subject": envelope.get("Subject"),
                        "message": envelope["Message"],
                        "kind": envelope.get("MessageAttributes", {}).get("kind", {}).get("Value"),
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )


def create_platform() -> Platform:
    """Buckets, tables, topic (with an SQS inbox), state machine; call inside mock_aws."""
    s3 = client("s3")
    for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET, EVALUATION_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = client("dynamodb")
    create_job_table(dynamodb)
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    client("sagemaker").create_model_package_group(ModelPackageGroupName=MODEL_PACKAGE_GROUP)
    sns = client("sns")
    topic_arn = sns.create_topic(Name=f"{PREFIX}-notifications")["TopicArn"]
    sqs = client("sqs")
    inbox_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    sfn = client("stepfunctions")
    state_machine_arn = sfn.create_state_machine(
        name=STATE_MACHINE_NAME,
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/state-machine",
    )["stateMachineArn"]
    platform = Platform(
        s3=s3,
        dynamodb=dynamodb,
        sns=sns,
        sqs=sqs,
        sfn=sfn,
        ssm=client("ssm"),
        topic_arn=topic_arn,
        inbox_url=inbox_url,
        state_machine_arn=state_machine_arn,
    )
    platform.environment[Var.TOPIC_ARN] = topic_arn
    platform.environment[Var.STATE_MACHINE_ARN] = state_machine_arn
    return platform


_counter = itertools.count()


# Functions deployed from another function's folder, with their own environment (the stack
# deploys lambda/start_job twice, one function per backend).
FUNCTIONS = {
    "start_bedrock_job": ("start_job", {Var.EXPECTED_BACKEND: "bedrock"}),
    "start_sagemaker_job": ("start_job", {Var.EXPECTED_BACKEND: "sagemaker"}),
}


def load_handler(name: str) -> ModuleType:
    """Import a function's ``index.py`` afresh, in that function's environment (its
    module-level setup reads the environment once, as in Lambda)."""
    folder, extra = FUNCTIONS.get(name, (name, {}))
    return load_lambda_handler(folder, environment=extra)


class LambdaContext:
    """What Powertools reads from the Lambda context."""

    function_name = "test-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = f"request-{next(_counter)}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def moto_backend(service: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT][REGION]


def set_bedrock_job_status(job_name: str, status: str, failure: str | None = None) -> None:
    job = moto_backend("bedrock").model_customization_jobs[job_name]
    job.status = status
    job.failure_message = failure


def set_training_job_status(
    job_name: str, status: str, secondary: str | None = None, failure: str | None = None
) -> None:
    job = moto_backend("sagemaker").training_jobs[job_name]
    job.training_job_status = status
    job.secondary_status = secondary or status
    job.failure_reason = failure


def client_error(code: str, operation: str, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class Routed:
    """A client whose named operations go to a second client (a Stubber-checked one for
    APIs moto lacks, such as Bedrock provisioned throughput); everything else to moto."""

    def __init__(self, base: Any, other: Any, operations: set[str]) -> None:
        self._base, self._other, self._operations = base, other, operations
        self.exceptions = base.exceptions
        self.meta = base.meta

    def __getattr__(self, name: str) -> Any:
        if name in self._operations:
            return getattr(self._other, name)
        return getattr(self._base, name)


THROUGHPUT_OPERATIONS = {
    "create_provisioned_model_throughput",
    "get_provisioned_model_throughput",
    "delete_provisioned_model_throughput",
    "list_provisioned_model_throughputs",
    "list_tags_for_resource",
    "tag_resource",
    "get_paginator",
}


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A real client (its service model validates every request) answered by a Stubber."""
    stubbed_client = client(service)
    return stubbed_client, Stubber(stubbed_client)


def factory_with(overrides: dict[str, Any]) -> Callable[[str, str | None], Any]:
    """A Clients factory: these services from ``overrides``, the rest from moto."""

    def make(service: str, region: str | None) -> Any:
        if service in overrides:
            return overrides[service]
        return client(service)

    return make


class TaskAnswers:
    """Step Functions client that records SendTaskSuccess/SendTaskFailure and refuses tokens
    already answered or expired, as the service does; each first answer also goes to moto
    (which forgets it, or, running the workflow on its engine, answers the waiting task)."""

    def __init__(self, base: Any) -> None:
        self._base = base
        self.exceptions = base.exceptions
        self.answers: dict[str, dict[str, Any]] = {}
        self.expired: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def _answer(self, token: str, answer: dict[str, Any], operation: str) -> dict:
        if token in self.expired:
            raise client_error("TaskTimedOut", operation)
        if token in self.answers:
            raise client_error("InvalidToken", operation)
        self.answers[token] = answer
        return {}

    def send_task_success(self, *, taskToken: str, output: str) -> dict:
        self._answer(taskToken, {"output": json.loads(output)}, "SendTaskSuccess")
        return self._base.send_task_success(taskToken=taskToken, output=output)

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict:
        self._answer(taskToken, {"error": error, "cause": cause}, "SendTaskFailure")
        return self._base.send_task_failure(taskToken=taskToken, error=error, cause=cause)


EXECUTION_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE_NAME}"


def task_event(
    spec: dict[str, Any],
    *,
    source: str = "cli",
    task_token: str | None = None,
    **results: Any,
) -> dict[str, Any]:
    """What a task of the state machine sends its function (see workflow.TaskEvent)."""
    from finetuning.orchestration.manifest import parse_manifest
    from finetuning.orchestration.workflow import execution_input

    manifest = parse_manifest(spec)
    state = {**execution_input(manifest, source=source), **results}
    event: dict[str, Any] = {
        "input": state,
        "execution_arn": f"{EXECUTION_PREFIX}:{manifest.job_id}",
    }
    if task_token:
        event["task_token"] = task_token
    return event


def eventbridge_event(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An event as EventBridge delivers it. Where the AWS docs publish a sample of this kind
    (tests/fixtures/events), it is that sample with ``detail`` merged in (see
    ``with_detail``) and this account and Region; otherwise a minimal envelope."""
    name = sample_for(source, detail_type, detail.get("status"))
    if name is None:
        return {
            "version": "0",
            "id": f"event-{next(_counter)}",
            "source": source,
            "account": ACCOUNT,
            "time": "2026-01-01T00:00:00Z",
            "region": REGION,
            "resources": [],
            "detail-type": detail_type,
            "detail": detail,
        }
    event = with_detail(documented_event(name), detail)
    event.update(account=ACCOUNT, region=REGION, id=f"event-{next(_counter)}")
    return event

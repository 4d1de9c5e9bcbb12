"""Each function handler, invoked as Lambda would, against moto (S3, DynamoDB, SNS, Step
Functions, SageMaker, Bedrock customization jobs) and Stubber for provisioned throughput."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from finetuning.orchestration import tags
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.errors import (
    ConfigurationError,
    DatasetInvalidError,
    ManifestError,
    RetryableServiceError,
    ThroughputFailedError,
)
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobStatus, JobTable, timestamp, utc_now
from tests.support.platform_fakes import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    EVALUATION_BUCKET,
    JOB_TABLE,
    PREFIX,
    REGION,
    THROUGHPUT_OPERATIONS,
    Platform,
    Routed,
    TaskAnswers,
    bedrock_manifest,
    client,
    client_error,
    eventbridge_event,
    factory_with,
    load_handler,
    moto_backend,
    nova_records,
    sagemaker_manifest,
    set_bedrock_job_status,
    set_training_job_status,
    stubbed,
    task_event,
)

MODEL_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abcdefghijkl"
)
THROUGHPUT_ARN = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"


def table(platform: Platform) -> JobTable:
    return JobTable(platform.dynamodb, JOB_TABLE)


def registered(invoke: Any, spec: dict[str, Any]) -> dict[str, Any]:
    event = task_event(spec)
    invoke("register_job", event)
    return event


def with_clients(name: str, **services: Any) -> Any:
    module = load_handler(name)
    module.CLIENTS = Clients(REGION, factory_with(services))
    return module


# -- register -----------------------------------------------------------------------------


def test_register_job_once_per_id(platform: Platform, invoke: Any) -> None:
    event = task_event(bedrock_manifest(), source="s3")
    first = invoke("register_job", event)
    again = invoke("register_job", event)
    assert first["created"] is True and again["created"] is False
    stored = table(platform).require(event["input"]["job_id"])
    assert stored.source == "s3" and stored.execution_arn == event["execution_arn"]
    assert stored.spec == event["input"]["job"]

    other_execution = {**event, "execution_arn": event["execution_arn"] + "-again"}
    with pytest.raises(ManifestError, match=r"already ran in execution .* set revision: 2"):
        invoke("register_job", other_execution)
    forged = task_event(bedrock_manifest())
    forged["input"]["job_id"] = "someone-else-0000000000"
    with pytest.raises(ManifestError, match="does not match the job spec"):
        invoke("register_job", forged)


# -- validate -----------------------------------------------------------------------------


def test_validate_dataset_passes_and_keeps_the_report(platform: Platform, invoke: Any) -> None:
    spec = bedrock_manifest()
    platform.put(spec["training_data_uri"], nova_records(10))
    event = registered(invoke, spec)
    summary = invoke("validate_dataset", event)
    job_id = event["input"]["job_id"]
    assert summary["records"] == 10 and summary["errors"] == 0 and summary["tokens"] > 0
    key = f"evaluation/reports/{job_id}/data-validation-train.json"
    assert summary["reports"]["train"] == f"s3://{EVALUATION_BUCKET}/{key}"
    report = json.loads(platform.s3.get_object(Bucket=EVALUATION_BUCKET, Key=key)["Body"].read())
    assert report["ok"] is True and report["records"] == 10
    stored = table(platform).require(job_id)
    assert stored.status == JobStatus.PREPROCESSING and stored.validation["records"] == 10


def test_validate_dataset_fails_the_run_with_the_summary(platform: Platform, invoke: Any) -> None:
    spec = bedrock_manifest()
    platform.put(spec["training_data_uri"], '{"prompt": 1}\nnot json\n')
    event = registered(invoke, spec)
    with pytest.raises(DatasetInvalidError) as error:
        invoke("validate_dataset", event)
    message = str(error.value)
    job_id = event["input"]["job_id"]
    assert "errors" in message
    assert f"evaluation/reports/{job_id}/data-validation-train.json" in message
    report = json.loads(
        platform.s3.get_object(
            Bucket=EVALUATION_BUCKET, Key=f"evaluation/reports/{job_id}/data-validation-train.json"
        )["Body"].read()
    )
    assert report["errors"] >= 2
    assert any(p["line"] == 2 for p in report["problems"])


def test_validate_dataset_refuses_data_outside_the_platform(
    platform: Platform, invoke: Any
) -> None:
    spec = bedrock_manifest(training_data_uri="s3://someone-elses-bucket/train.jsonl")
    event = registered(invoke, spec)
    with pytest.raises(ManifestError, match="training_data_uri: expected a location under s3://"):
        invoke("validate_dataset", event)


# -- start --------------------------------------------------------------------------------


def test_start_bedrock_job_once(platform: Platform, invoke: Any) -> None:
    event = registered(invoke, bedrock_manifest())
    job_id = event["input"]["job_id"]
    module = load_handler("start_bedrock_job")
    first = invoke("start_bedrock_job", event, module=module)
    second = invoke("start_bedrock_job", event, module=module)  # a retried task: idempotency record
    assert first == second
    assert first["job_name"] == job_id and first["job_arn"].endswith(f"/{job_id}")
    # Even without the idempotency record (expired), the job name finds the first job.
    platform.dynamodb.delete_table(TableName=platform.environment["IDEMPOTENCY_TABLE_NAME"])
    platform.dynamodb.create_table(
        TableName=platform.environment["IDEMPOTENCY_TABLE_NAME"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    third = invoke("start_bedrock_job", event)
    assert third["job_arn"] == first["job_arn"]
    assert list(moto_backend("bedrock").model_customization_jobs) == [job_id]
    stored = table(platform).require(job_id)
    assert stored.backend_job_arn == first["job_arn"] and stored.stage == "training"
    job = client("bedrock").get_model_customization_job(jobIdentifier=job_id)
    assert job["roleArn"] == platform.environment["BEDROCK_CUSTOMIZATION_ROLE_ARN"]


def test_start_sagemaker_job(platform: Platform, invoke: Any) -> None:
    event = registered(invoke, sagemaker_manifest())
    job_id = event["input"]["job_id"]
    launched = invoke("start_sagemaker_job", event)
    assert launched["job_arn"].endswith(f"training-job/{job_id}")
    job = moto_backend("sagemaker").training_jobs[job_id]
    assert job.enable_network_isolation is True
    assert job.enable_managed_spot_training is True


def test_start_job_throttled_then_recovered(platform: Platform, invoke: Any) -> None:
    event = registered(invoke, bedrock_manifest())
    throttled, stubber = stubbed("bedrock")
    stubber.add_client_error(
        "create_model_customization_job", "ThrottlingException", http_status_code=429
    )
    with stubber:
        module = with_clients("start_bedrock_job", bedrock=throttled)
        with pytest.raises(RetryableServiceError, match="starting Bedrock customization job"):
            invoke("start_bedrock_job", event, module=module)
    # The state machine retries the task; the failed attempt left no idempotency record.
    launched = invoke("start_bedrock_job", event)
    assert launched["job_name"] == event["input"]["job_id"]


# -- wait and events ----------------------------------------------------------------------


def started(platform: Platform, invoke: Any, spec: dict[str, Any]) -> dict[str, Any]:
    event = registered(invoke, spec)
    backend = event["input"]["job"]["backend"]
    event["input"]["launch"] = invoke(f"start_{backend}_job", event)
    return event


def test_wait_stores_the_token_and_answers_a_finished_job(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, bedrock_manifest())
    job_id = event["input"]["job_id"]
    answers = TaskAnswers(client("stepfunctions"))
    module = with_clients("wait_for_job", stepfunctions=answers)
    waiting = invoke("wait_for_job", {**event, "task_token": "token-1"}, module=module)
    # moto's job has no statusDetails: InProgress without them counts as running.
    assert waiting == {"answered": False, "status": "running"}
    assert table(platform).require(job_id).task_token == "token-1"
    assert answers.answers == {}

    set_bedrock_job_status(job_id, "Completed")
    polled = invoke("wait_for_job", {**event, "task_token": "token-2"}, module=module)
    assert polled == {"answered": True, "status": "completed"}
    output = answers.answers["token-2"]["output"]
    assert output["status"] == "completed" and output["metrics"]["train_loss"] == 0.0


def test_job_events_answer_the_wait(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, bedrock_manifest())
    job_id = event["input"]["job_id"]
    table(platform).update(job_id, task_token="token-9")
    answers = TaskAnswers(client("stepfunctions"))
    module = with_clients("job_events", stepfunctions=answers)

    def bedrock_event(name: str, status: str) -> dict[str, Any]:
        return eventbridge_event(
            "aws.bedrock",
            "Model Customization Job State Change",
            {"jobName": name, "jobStatus": status, "jobArn": f"arn:x/{name}"},
        )

    assert (
        invoke("job_events", bedrock_event("not-ours", "Completed"), module=module)["action"]
        == "ignored"
    )
    # A stale event (the job is still running) does not end the wait.
    stale = invoke("job_events", bedrock_event(job_id, "Failed"), module=module)
    assert stale["action"] == "ignored" and "stale" in stale["reason"]
    set_bedrock_job_status(job_id, "Failed", "Insufficient data")
    result = invoke("job_events", bedrock_event(job_id, "Failed"), module=module)
    assert result["action"] == "answered"
    assert answers.answers["token-9"]["error"] == "JobFailedError"
    assert "Insufficient data" in answers.answers["token-9"]["cause"]
    assert table(platform).require(job_id).task_token is None
    # SageMaker may send an event twice: the second finds no token left.
    again = invoke("job_events", bedrock_event(job_id, "Failed"), module=module)
    assert again["action"] == "ignored"


def test_sagemaker_events_answer_the_wait(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, sagemaker_manifest())
    job_id = event["input"]["job_id"]
    table(platform).update(job_id, task_token="token-s")
    answers = TaskAnswers(client("stepfunctions"))
    answers.expired.add("token-s")  # the wait already timed out: the poll takes over
    module = with_clients("job_events", stepfunctions=answers)
    detail = {"TrainingJobName": job_id, "TrainingJobStatus": "Completed"}
    result = invoke(
        "job_events",
        eventbridge_event("aws.sagemaker", "SageMaker Training Job State Change", detail),
        module=module,
    )
    assert result["action"] == "already-answered"


# -- results, evaluation ------------------------------------------------------------------


def test_collect_results_and_evaluation_record(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, sagemaker_manifest())
    job_id = event["input"]["job_id"]
    set_training_job_status(job_id, "Completed")
    results = invoke("collect_results", event)
    assert results["artifacts"]["model_uri"].endswith(f"{job_id}/output/model.tar.gz")
    assert results["artifacts"]["checkpoint_uri"] == (
        f"s3://{ARTIFACTS_BUCKET}/models/checkpoints/{job_id}/"
    )
    assert results["cost"]["usage"]["instance_type"] == "ml.g5.2xlarge"
    assert results["cost"]["estimated_usd"] is None  # moto reports no billable time
    event["input"]["results"] = results
    plan = invoke("prepare_evaluation", event)
    assert plan["route"] == "none" and "no evaluation.test_set_uri" in plan["reason"]
    key = f"evaluation/reports/{job_id}/training-metrics.json"
    assert plan["training_metrics_uri"] == f"s3://{EVALUATION_BUCKET}/{key}"
    document = json.loads(platform.s3.get_object(Bucket=EVALUATION_BUCKET, Key=key)["Body"].read())
    assert document["metrics"] == results["metrics"]
    stored = table(platform).require(job_id)
    assert stored.metrics == results["metrics"] and stored.evaluation["route"] == "none"
    assert stored.stage == "evaluating"


def test_prepare_evaluation_plans_a_processing_job_for_open_models(
    platform: Platform, invoke: Any
) -> None:
    test_set = f"s3://{DATA_BUCKET}/training-data/processed/chat/test.jsonl"
    spec = sagemaker_manifest(
        job_name="Deeds Extractor",
        evaluation={
            "test_set_uri": test_set,
            "task": "json",
            "compare_with_base": True,
            "quality_gate": {"min": {"field_f1": 0.8}},
            "inference": {"max_tokens": 256, "temperature": 0},
            "max_runtime_seconds": 3600,
        },
    )
    event = started(platform, invoke, spec)
    job_id = event["input"]["job_id"]
    model_uri = f"s3://{ARTIFACTS_BUCKET}/models/final/{job_id}/output/model.tar.gz"
    event["input"]["results"] = {"artifacts": {"model_uri": model_uri}, "metrics": {}}
    plan = invoke("prepare_evaluation", event)
    assert plan["route"] == "processing"
    assert plan["request"] == {
        "job_name": job_id,
        "model_id": model_uri,
        "test_set_uri": test_set,
        "inference": {"max_tokens": 256, "temperature": 0.0},
        "max_samples": 200,
        "concurrency": 4,
        "quality_gate": {"min": {"field_f1": 0.8}, "max": {}, "min_improvement_over_base": {}},
        "task": "json",
        "base_model_id": spec["base_model"],
    }
    assert plan["processing"] == {
        "model_data_url": model_uri,
        "base_model_uri": spec["base_model"],
        "training_metrics_uri": model_uri.replace("model.tar.gz", "output.tar.gz"),
        "instance_type": "ml.g5.2xlarge",
        "volume_size_gb": 50,
        "max_runtime_seconds": 3600,
    }
    assert plan["registration"] == {
        "register": True,
        "model_name": "deeds-extractor",
        "job_name": job_id,
        "backend": "sagemaker",
        "base_model": spec["base_model"],
        "model_data_url": model_uri,
        "bedrock_custom_model_arn": None,
    }


def test_prepare_evaluation_passes_the_batch_size_to_the_processing_job(
    platform: Platform, invoke: Any
) -> None:
    from finetuning.evaluation.request import EvaluationStepRequest

    test_set = f"s3://{DATA_BUCKET}/training-data/processed/chat/test.jsonl"
    spec = sagemaker_manifest(
        evaluation={"test_set_uri": test_set, "register_model": False, "batch_size": 48}
    )
    event = started(platform, invoke, spec)
    job_id = event["input"]["job_id"]
    model_uri = f"s3://{ARTIFACTS_BUCKET}/models/final/{job_id}/output/model.tar.gz"
    event["input"]["results"] = {"artifacts": {"model_uri": model_uri}, "metrics": {}}
    plan = invoke("prepare_evaluation", event)
    assert plan["request"]["batch_size"] == 48
    # The Processing job's own parser takes the request as planned.
    assert EvaluationStepRequest.from_event(plan["request"]).batch_size == 48


def test_prepare_evaluation_evaluates_bedrock_models_through_their_throughput(
    platform: Platform, invoke: Any
) -> None:
    spec = bedrock_manifest(
        serving={"provisioned_throughput": {}},
        evaluation={
            "test_set_uri": f"s3://{DATA_BUCKET}/training-data/processed/support/test.jsonl",
            "compare_with_base": True,
            "quality_gate": {"min_improvement_over_base": {"accuracy": 0.05}},
            "register_model": False,
        },
    )
    event = started(platform, invoke, spec)
    output = f"s3://{ARTIFACTS_BUCKET}/models/final/{event['input']['job_id']}/"
    event["input"]["results"] = {"artifacts": {"custom_model_arn": MODEL_ARN, "output_uri": output}}
    event["input"]["serving"] = {"provisioned_model_arn": THROUGHPUT_ARN, "in_service": True}
    plan = invoke("prepare_evaluation", event)
    assert plan["route"] == "bedrock"
    assert plan["request"]["model_id"] == THROUGHPUT_ARN
    assert plan["request"]["base_model_id"] == spec["base_model"]
    assert plan["request"]["training_metrics_uri"] == output
    assert plan["registration"]["bedrock_custom_model_arn"] == MODEL_ARN
    assert plan["registration"]["register"] is False

    del event["input"]["serving"]  # no throughput: nothing to call the custom model through
    with pytest.raises(ManifestError, match="needs the provisioned throughput"):
        invoke("prepare_evaluation", event)


# -- serving ------------------------------------------------------------------------------


def throughput_client(platform: Platform) -> tuple[Any, Any]:
    stubbed_client, stubber = stubbed("bedrock")
    return Routed(client("bedrock"), stubbed_client, THROUGHPUT_OPERATIONS), stubber


def test_provision_then_check_throughput_until_in_service(platform: Platform, invoke: Any) -> None:
    spec = bedrock_manifest(serving={"provisioned_throughput": {"model_units": 2}})
    event = started(platform, invoke, spec)
    job_id = event["input"]["job_id"]
    event["input"]["results"] = {"artifacts": {"custom_model_arn": MODEL_ARN}}
    bedrock, stubber = throughput_client(platform)
    name = f"{job_id}-pt"
    stubber.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": THROUGHPUT_ARN},
        {
            "clientRequestToken": name,
            "modelUnits": 2,
            "provisionedModelName": name,
            "modelId": MODEL_ARN,
            "tags": [
                {"key": tags.JOB_ID, "value": job_id},
                {"key": tags.PLATFORM, "value": PREFIX},
                {"key": "team", "value": "support"},
            ],
        },
    )
    with stubber:
        serving = invoke(
            "provision_throughput",
            event,
            module=with_clients("provision_throughput", bedrock=bedrock),
        )
    assert serving["provisioned_model_arn"] == THROUGHPUT_ARN and serving["requested"] is True

    event["input"]["serving"] = serving
    now = utc_now()
    base = {
        "modelUnits": 2,
        "desiredModelUnits": 2,
        "provisionedModelName": name,
        "provisionedModelArn": THROUGHPUT_ARN,
        "modelArn": MODEL_ARN,
        "desiredModelArn": MODEL_ARN,
        "foundationModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
        "creationTime": now,
        "lastModifiedTime": now,
    }
    stubber.add_response("get_provisioned_model_throughput", {**base, "status": "Creating"})
    stubber.add_response("get_provisioned_model_throughput", {**base, "status": "InService"})
    stubber.add_response("tag_resource", {})
    module = with_clients("check_throughput", bedrock=bedrock)
    with stubber:
        creating = invoke("check_throughput", event, module=module)
        assert creating["in_service"] is False and creating["status"] == "Creating"
        ready = invoke("check_throughput", event, module=module)
    stubber.assert_no_pending_responses()
    assert ready["in_service"] is True
    expires = ready["expires_at"]
    hours = (
        utc_now() - now
    ).total_seconds() / 3600  # expiry counts from InService: 24 h by default
    assert timestamp(now + timedelta(hours=24 - 1)) < expires
    assert hours < 1
    serving_record = table(platform).require(job_id).serving
    assert serving_record["expires_at"] == expires and serving_record["model_units"] == 2


def test_check_throughput_fails_when_it_fails_or_takes_too_long(
    platform: Platform, invoke: Any
) -> None:
    spec = bedrock_manifest(serving={"provisioned_throughput": {}})
    event = started(platform, invoke, spec)
    bedrock, stubber = throughput_client(platform)
    module = with_clients("check_throughput", bedrock=bedrock)
    event["input"]["serving"] = {
        "provisioned_model_arn": THROUGHPUT_ARN,
        "requested_at": timestamp(utc_now() - timedelta(hours=2)),
    }
    response = {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "x",
        "provisionedModelArn": THROUGHPUT_ARN,
        "modelArn": MODEL_ARN,
        "desiredModelArn": MODEL_ARN,
        "foundationModelArn": MODEL_ARN,
        "creationTime": utc_now(),
        "lastModifiedTime": utc_now(),
    }
    stubber.add_response("get_provisioned_model_throughput", {**response, "status": "Creating"})
    stubber.add_response(
        "get_provisioned_model_throughput",
        {**response, "status": "Failed", "failureMessage": "capacity"},
    )
    with stubber:
        with pytest.raises(ThroughputFailedError, match="still Creating after 120 minutes"):
            invoke("check_throughput", event, module=module)
        with pytest.raises(ThroughputFailedError, match="failed: capacity"):
            invoke("check_throughput", event, module=module)


# -- completion and failure ---------------------------------------------------------------


def test_complete_job_notifies_once(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, bedrock_manifest())
    job_id = event["input"]["job_id"]
    table(platform).update(
        job_id, metrics={"train_loss": 0.25}, artifacts={"custom_model_arn": MODEL_ARN}
    )
    first = invoke("complete_job", event)
    second = invoke("complete_job", event)
    assert first["notified"] is True and second["notified"] is False
    (message,) = platform.notifications()
    assert message["kind"] == "succeeded"
    assert message["subject"] == f"[{PREFIX}] Fine-tuning job {job_id} completed"
    assert "train_loss: 0.25" in message["message"]
    assert "states/home?region=us-east-1#/v2/executions/details/" in message["message"]
    assert table(platform).require(job_id).status == JobStatus.COMPLETED


def test_handle_failure_stops_the_job_deletes_throughput_and_notifies(
    platform: Platform, invoke: Any
) -> None:
    event = started(platform, invoke, bedrock_manifest(serving={"provisioned_throughput": {}}))
    job_id = event["input"]["job_id"]
    table(platform).annotate(job_id, serving={"provisioned_model_arn": THROUGHPUT_ARN})
    bedrock, stubber = throughput_client(platform)
    stubber.add_response(
        "delete_provisioned_model_throughput", {}, {"provisionedModelId": THROUGHPUT_ARN}
    )
    failure = {
        "Error": "JobTimeoutError",
        "Cause": json.dumps({"errorMessage": "ran past 72 hours", "errorType": "JobTimeoutError"}),
    }
    event["input"]["error"] = failure
    module = with_clients("handle_failure", bedrock=bedrock)
    with stubber:
        result = invoke("handle_failure", event, module=module)
    assert result["status"] == "failed"
    assert result["cleanup"] == [
        f"stopped bedrock job {job_id}",
        f"deleted provisioned throughput {THROUGHPUT_ARN}",
    ]
    assert moto_backend("bedrock").model_customization_jobs[job_id].status == "Stopped"
    stored = table(platform).require(job_id)
    assert stored.status == JobStatus.FAILED
    assert stored.failure["error"] == "JobTimeoutError"
    assert stored.failure["cause"] == "ran past 72 hours"
    (message,) = platform.notifications()
    assert message["kind"] == "failed" and "ran past 72 hours" in message["message"]
    assert f"stopped bedrock job {job_id}" in message["message"]
    # The execution-ended event of the same run finds the job already ended.
    ended = invoke(
        "execution_ended",
        eventbridge_event(
            "aws.states",
            "Step Functions Execution Status Change",
            {"name": job_id, "status": "FAILED", "executionArn": event["execution_arn"]},
        ),
    )
    assert ended["recorded"] is False and platform.notifications() == []


def test_stopping_an_execution_stops_its_sagemaker_job(platform: Platform, invoke: Any) -> None:
    event = started(platform, invoke, sagemaker_manifest())
    job_id = event["input"]["job_id"]
    set_training_job_status(job_id, "InProgress", "Training")
    sagemaker, stubber = stubbed("sagemaker")
    moto_sagemaker = client("sagemaker")
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": job_id})
    routed = Routed(moto_sagemaker, sagemaker, {"stop_training_job"})
    module = with_clients("execution_ended", sagemaker=routed)
    detail = {
        "name": job_id,
        "status": "ABORTED",
        "executionArn": event["execution_arn"],
        "stateMachineArn": platform.state_machine_arn,
    }
    with stubber:
        result = invoke(
            "execution_ended",
            eventbridge_event("aws.states", "Step Functions Execution Status Change", detail),
            module=module,
        )
    stubber.assert_no_pending_responses()
    assert result["status"] == "cancelled"
    assert result["cleanup"] == [f"stopped sagemaker job {job_id}"]
    assert table(platform).require(job_id).status == JobStatus.CANCELLED
    (message,) = platform.notifications()
    assert message["kind"] == "cancelled"
    assert f"Fine-tuning job {job_id} was cancelled" in message["subject"]


# -- submission ---------------------------------------------------------------------------


def executions(platform: Platform) -> list[dict[str, Any]]:
    return platform.sfn.list_executions(stateMachineArn=platform.state_machine_arn)["executions"]


def s3_event(bucket: str, key: str, etag: str = "abc") -> dict[str, Any]:
    """The documented Object Created event for an object the test put (its version: the
    buckets are versioned, so S3 names the version in the event)."""
    version = client("s3").head_object(Bucket=bucket, Key=key)["VersionId"]
    return eventbridge_event(
        "aws.s3",
        "Object Created",
        {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 10, "etag": etag, "version-id": version},
        },
    )


def test_manifest_upload_starts_one_execution(platform: Platform, invoke: Any) -> None:
    spec = bedrock_manifest()
    bucket = spec["training_data_uri"].split("/")[2]
    import yaml

    platform.put(f"s3://{bucket}/jobs/support.yaml", yaml.safe_dump(spec))
    module = load_handler("submit_manifest")
    first = invoke("submit_manifest", s3_event(bucket, "jobs/support.yaml"), module=module)
    duplicate = invoke("submit_manifest", s3_event(bucket, "jobs/support.yaml"), module=module)
    assert first == duplicate and first["started"] is True and first["rejected"] is False
    job_id = parse_manifest(spec).job_id
    assert [e["name"] for e in executions(platform)] == [job_id]
    described = platform.sfn.describe_execution(executionArn=first["execution_arn"])
    execution_input = json.loads(described["input"])
    assert execution_input["source"] == "s3"
    assert execution_input["manifest_uri"] == f"s3://{bucket}/jobs/support.yaml"
    # The same spec under another name (or as JSON) is still the same job.
    platform.put(f"s3://{bucket}/jobs/copy.json", json.dumps(spec))
    copy = invoke("submit_manifest", s3_event(bucket, "jobs/copy.json", etag="def"))
    assert copy["job_id"] == job_id and copy["execution_arn"] == first["execution_arn"]
    assert len(executions(platform)) == 1


def test_bad_manifest_is_rejected_with_a_notification(platform: Platform, invoke: Any) -> None:
    bucket = bedrock_manifest()["training_data_uri"].split("/")[2]
    platform.put(f"s3://{bucket}/jobs/bad.yaml", "job_name: x\nbackend: gpu\n")
    result = invoke("submit_manifest", s3_event(bucket, "jobs/bad.yaml"))
    assert result["rejected"] is True
    (message,) = platform.notifications()
    assert message["kind"] == "rejected" and "bad.yaml" in message["subject"]
    assert "jobs/bad.yaml:2: backend:" in message["message"]
    assert executions(platform) == []


def test_throttling_error_codes_are_retryable() -> None:
    from finetuning.orchestration.aws import is_retryable

    assert is_retryable(client_error("ThrottlingException", "X", 429))
    assert is_retryable(client_error("InternalServerException", "X", 500))
    assert is_retryable(client_error("Whatever", "X", 503))
    assert not is_retryable(client_error("AccessDeniedException", "X", 403))
    assert not is_retryable(client_error("ValidationException", "X", 400))
    assert not is_retryable(ValueError("x"))


def test_a_start_function_refuses_the_other_backend(platform: Platform, invoke: Any) -> None:
    event = registered(invoke, sagemaker_manifest())
    with pytest.raises(ConfigurationError, match="this function starts bedrock jobs"):
        invoke("start_bedrock_job", event)
    assert moto_backend("sagemaker").training_jobs == {}

"""Simulated runs: the synthesized state machine definition, run by moto's Amazon States
Language engine (tests.support.workflow_engine), calling the real handlers against moto, through
the happy paths and every failure branch."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import ANY

from finetuning.orchestration import tags, workflow_serving
from finetuning.orchestration.cleanup import WARNED_AT
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobStatus, JobTable, utc_now
from finetuning.orchestration.workflow import States, execution_input
from finetuning.platform_client import PlatformClient
from stacks.settings.orchestration import OrchestrationSettings
from tests.support.platform_fakes import (
    DATA_BUCKET,
    EVALUATION_BUCKET,
    EXECUTION_PREFIX,
    JOB_TABLE,
    MODEL_PACKAGE_GROUP,
    REGION,
    THROUGHPUT_OPERATIONS,
    LambdaContext,
    Platform,
    Routed,
    TaskAnswers,
    bedrock_manifest,
    chat_records,
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
)
from tests.support.serving import GATE, GOOD, WEAK, results_document
from tests.support.workflow_engine import (
    TASK_FUNCTIONS,
    Interpreter,
    LambdaServiceFault,
    workflow_definition,
)

# The serving stack's functions the workflow invokes (plain events, boto3 clients).
SERVING_FUNCTIONS = ("evaluate_candidate", "register_model")

# Two polls fit in the job deadline, so the timeout branch is reachable in a test.
SETTINGS = OrchestrationSettings(poll_interval_minutes=60, max_job_hours=2)
MODEL_SUFFIX = "abcdefghijkl"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return workflow_definition(SETTINGS)


class Run:
    """One simulated execution: handlers with injectable clients, and the event pump."""

    def __init__(self, platform: Platform, definition: dict[str, Any], spec: dict[str, Any]):
        self.platform = platform
        self.definition = definition
        self.manifest = parse_manifest(spec)
        self.job_id = self.manifest.job_id
        self.answers = TaskAnswers(client("stepfunctions"))
        self.services: dict[str, Any] = {"stepfunctions": self.answers}
        self.table = JobTable(platform.dynamodb, JOB_TABLE)
        self.overrides: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.on_wait: Callable[[str], None] = lambda token: None

    def handler(self, folder: str) -> Callable[[dict[str, Any]], Any]:
        if folder in SERVING_FUNCTIONS:
            module = load_handler(folder)
            # Their clients: the services given to this run, else moto.
            module.boto3 = SimpleNamespace(
                client=lambda name, **kw: self.services.get(name) or client(name)
            )
            return lambda event: module.handler(event, LambdaContext())
        module = load_handler(folder)
        module.CLIENTS = Clients(REGION, factory_with(self.services))
        return lambda event: module.handler(event, LambdaContext())

    def job_event(self, status: str) -> dict[str, Any]:
        """Deliver a job state-change event as EventBridge would: the documented sample of
        the backend's event, about this job (tests/fixtures/events)."""
        if self.manifest.backend.value == "bedrock":
            event = eventbridge_event(
                "aws.bedrock",
                "Model Customization Job State Change",
                {"jobName": self.job_id, "jobStatus": status},
            )
        else:
            event = eventbridge_event(
                "aws.sagemaker",
                "SageMaker Training Job State Change",
                {
                    "TrainingJobName": self.job_id,
                    "TrainingJobStatus": status,
                    "SecondaryStatus": status,
                },
            )
        return self.interpreter.router.invoke("job_events", event)

    def end_job(self, status: str, failure: str | None = None) -> None:
        if self.manifest.backend.value == "bedrock":
            set_bedrock_job_status(self.job_id, status, failure)
        else:
            set_training_job_status(self.job_id, status, failure=failure)

    def execute(self) -> Any:
        functions = {*TASK_FUNCTIONS.values(), "job_events"}
        handlers = {folder: self.handler(folder) for folder in functions}
        handlers.update(self.overrides)
        self.interpreter = Interpreter(
            self.definition, handlers=handlers, answers=self.answers, on_wait=self.on_wait
        )
        return self.interpreter.run(
            execution_input(self.manifest, source="cli"), f"{EXECUTION_PREFIX}:{self.job_id}"
        )

    @property
    def record(self) -> Any:
        return self.table.require(self.job_id)


def prepared(platform: Platform, definition: dict[str, Any], spec: dict[str, Any]) -> Run:
    run = Run(platform, definition, spec)
    records = nova_records() if run.manifest.backend.value == "bedrock" else chat_records()
    platform.put(spec["training_data_uri"], records)
    return run


def with_throughput(run: Run, statuses: list[str]) -> Any:
    """Bedrock client: moto for jobs, a Stubber (service-model checked) for throughput."""
    stubbed_client, stubber = stubbed("bedrock")
    run.services["bedrock"] = Routed(client("bedrock"), stubbed_client, THROUGHPUT_OPERATIONS)
    arn = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/{MODEL_SUFFIX}"
    stubber.add_response("create_provisioned_model_throughput", {"provisionedModelArn": arn})
    model = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/x"
    for status in statuses:
        stubber.add_response(
            "get_provisioned_model_throughput",
            {
                "modelUnits": 1,
                "desiredModelUnits": 1,
                "provisionedModelName": f"{run.job_id}-pt",
                "provisionedModelArn": arn,
                "modelArn": model,
                "desiredModelArn": model,
                "foundationModelArn": model,
                "status": status,
                "creationTime": utc_now(),
                "lastModifiedTime": utc_now(),
                **({"failureMessage": "no capacity"} if status == "Failed" else {}),
            },
        )
    return stubber


def test_bedrock_happy_path_with_provisioned_throughput(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = prepared(platform, definition, bedrock_manifest(serving={"provisioned_throughput": {}}))
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    stubber = with_throughput(run, ["Creating", "InService"])
    stubber.add_response("tag_resource", {})
    with stubber:
        outcome = run.execute()
    stubber.assert_no_pending_responses()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path == [
        States.REGISTER,
        States.VALIDATE,
        States.BACKEND,
        States.START_BEDROCK,
        "InitPolls",
        States.WAIT,
        States.COLLECT,
        States.SERVING_REQUESTED,
        States.PROVISION,
        States.WAIT_THROUGHPUT,
        States.CHECK_THROUGHPUT,
        States.THROUGHPUT_READY,
        States.WAIT_THROUGHPUT,
        States.CHECK_THROUGHPUT,
        States.THROUGHPUT_READY,
        States.PREPARE_EVALUATION,
        States.EVALUATION_ROUTE,
        States.COMPLETE,
        States.SUCCEEDED,
    ]
    assert outcome.waits == [SETTINGS.throughput_check_seconds] * 2
    record = run.record
    assert record.status == JobStatus.COMPLETED and record.stage == "done"
    assert record.serving["status"] == "InService" and record.serving["expires_at"]
    assert record.metrics == {"train_loss": 0.0, "validation_loss": 0.0}
    assert outcome.output["validation"]["records"] == 10
    (message,) = platform.notifications()
    assert message["kind"] == "succeeded" and "Provisioned throughput" in message["message"]


def test_sagemaker_happy_path(platform: Platform, definition: dict[str, Any]) -> None:
    run = prepared(platform, definition, sagemaker_manifest())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert States.PROVISION not in outcome.path
    # Every invocation went through the router, which names each function's construct (the
    # logical id prefix of the function and its role in the template).
    invoked = [(i.function, i.construct) for i in run.interpreter.router.invocations]
    assert invoked == [
        ("register_job", States.REGISTER),
        ("validate_dataset", States.VALIDATE),
        ("start_sagemaker_job", States.START_SAGEMAKER),
        ("wait_for_job", States.WAIT),
        ("job_events", "JobEvents"),
        ("collect_results", States.COLLECT),
        ("prepare_evaluation", States.PREPARE_EVALUATION),
        ("complete_job", States.COMPLETE),
    ]
    assert all(i.error is None for i in run.interpreter.router.invocations)
    assert run.record.status == JobStatus.COMPLETED
    assert run.record.artifacts["model_uri"].endswith("output/model.tar.gz")


def test_invalid_data_fails_the_run_before_any_job(
    platform: Platform, definition: dict[str, Any]
) -> None:
    spec = bedrock_manifest()
    run = Run(platform, definition, spec)
    platform.put(spec["training_data_uri"], '{"messages": []}\n')
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "DatasetInvalidError"
    assert outcome.path[-3:] == [States.VALIDATE, States.HANDLE_FAILURE, States.FAILED]
    assert States.START_BEDROCK not in outcome.path
    assert moto_backend("bedrock").model_customization_jobs == {}
    record = run.record
    assert record.status == JobStatus.FAILED and record.failure["stage"] == "validating"
    (message,) = platform.notifications()
    assert "DatasetInvalidError" in message["subject"]
    assert "data-validation-train.json" in message["message"]


@pytest.mark.parametrize(
    ("status", "error", "final"),
    [
        ("Failed", "JobFailedError", JobStatus.FAILED),
        ("Stopped", "JobStoppedError", JobStatus.CANCELLED),
    ],
)
def test_job_that_fails_or_is_stopped_fails_the_run(
    platform: Platform, definition: dict[str, Any], status: str, error: str, final: JobStatus
) -> None:
    run = prepared(platform, definition, bedrock_manifest())
    run.on_wait = lambda token: (run.end_job(status, "out of memory"), run.job_event(status))
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == error
    assert "out of memory" in outcome.cause
    assert outcome.path[-3:] == [States.WAIT, States.HANDLE_FAILURE, States.FAILED]
    assert run.record.status == final
    # The job had already ended: nothing was stopped.
    assert outcome.output["failure"]["cleanup"] == []
    (message,) = platform.notifications()
    assert message["kind"] == final.value


def test_a_job_that_ended_before_the_wait_is_answered_by_the_wait_itself(
    platform: Platform, definition: dict[str, Any]
) -> None:
    # The job fails before WaitForJob runs: the function answers its own task token with
    # SendTaskFailure while the engine is still invoking it (no event, no timeout).
    run = prepared(platform, definition, sagemaker_manifest())
    wait = run.handler("wait_for_job")

    def wait_for_a_job_that_already_failed(event: dict[str, Any]) -> Any:
        run.end_job("Failed", "AlgorithmError: loss is NaN")
        return wait(event)

    run.overrides["wait_for_job"] = wait_for_a_job_that_already_failed
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "JobFailedError"
    assert "loss is NaN" in outcome.cause
    assert outcome.visits(States.WAIT) == 1 and States.COUNT_POLL not in outcome.path
    assert run.record.status == JobStatus.FAILED


def test_a_failing_failure_handler_still_fails_the_run_with_the_first_error(
    platform: Platform, definition: dict[str, Any]
) -> None:
    spec = bedrock_manifest()
    run = Run(platform, definition, spec)
    platform.put(spec["training_data_uri"], '{"messages": []}\n')

    def broken_failure_handler(event: dict[str, Any]) -> Any:
        raise RuntimeError("the job table is unreachable")

    run.overrides["handle_failure"] = broken_failure_handler
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "DatasetInvalidError"
    assert outcome.path[-3:] == [States.VALIDATE, States.HANDLE_FAILURE, States.FAILED]
    assert outcome.output["failure"]["Error"] == "RuntimeError"
    assert "the job table is unreachable" in outcome.output["failure"]["Cause"]


def test_throttling_is_retried_with_backoff(platform: Platform, definition: dict[str, Any]) -> None:
    run = prepared(platform, definition, bedrock_manifest())
    moto_bedrock = client("bedrock")

    class ThrottledOnce:
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(moto_bedrock, name)

        def create_model_customization_job(self, **request: Any) -> Any:
            ThrottledOnce.calls += 1
            if ThrottledOnce.calls == 1:
                raise client_error("ThrottlingException", "CreateModelCustomizationJob", 429)
            return moto_bedrock.create_model_customization_job(**request)

    wrapper = ThrottledOnce()
    wrapper.exceptions = moto_bedrock.exceptions  # type: ignore[attr-defined]
    run.services["bedrock"] = wrapper
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED"
    assert outcome.retries == [(States.START_BEDROCK, "RetryableServiceError")]
    assert list(moto_backend("bedrock").model_customization_jobs) == [run.job_id]


def test_lost_event_is_recovered_by_polling(platform: Platform, definition: dict[str, Any]) -> None:
    run = prepared(platform, definition, bedrock_manifest())
    # The job completes while the execution waits, but its event never arrives.
    run.on_wait = lambda token: run.end_job("Completed")
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.visits(States.WAIT) == 2 and outcome.visits(States.COUNT_POLL) == 1
    assert outcome.output["polls"] == {"count": 1}
    assert outcome.output["wait"]["status"] == "completed"
    assert run.record.status == JobStatus.COMPLETED


def test_job_past_its_deadline_is_stopped(platform: Platform, definition: dict[str, Any]) -> None:
    run = prepared(platform, definition, bedrock_manifest())
    outcome = run.execute()  # no event ever arrives and the job never ends
    assert outcome.status == "FAILED" and outcome.error == "JobTimeoutError"
    assert outcome.visits(States.WAIT) == SETTINGS.max_polls
    assert outcome.path[-3:] == [States.JOB_TIMED_OUT, States.HANDLE_FAILURE, States.FAILED]
    assert moto_backend("bedrock").model_customization_jobs[run.job_id].status == "Stopped"
    assert run.record.failure["cleanup"] == [f"stopped bedrock job {run.job_id}"]


def test_failed_throughput_is_deleted(platform: Platform, definition: dict[str, Any]) -> None:
    run = prepared(platform, definition, bedrock_manifest(serving={"provisioned_throughput": {}}))
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    stubber = with_throughput(run, ["Failed"])
    stubber.add_response("delete_provisioned_model_throughput", {})
    with stubber:
        outcome = run.execute()
    stubber.assert_no_pending_responses()
    assert outcome.status == "FAILED" and outcome.error == "ThroughputFailedError"
    assert any("deleted provisioned throughput" in line for line in run.record.failure["cleanup"])


def test_throughput_still_creating_past_the_wait_limit_is_handed_to_the_expiry_cleanup(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DeleteProvisionedModelThroughput refused (ConflictException) while it is still
    Creating: the failure handler tags it expired for the expiry cleanup and does not fail."""
    later = utc_now() + timedelta(days=1)
    monkeypatch.setattr(workflow_serving, "utc_now", lambda: later)
    run = prepared(platform, definition, bedrock_manifest(serving={"provisioned_throughput": {}}))
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    stubber = with_throughput(run, ["Creating"])
    stubber.add_client_error(
        "delete_provisioned_model_throughput", service_error_code="ConflictException"
    )
    stubber.add_response(
        "tag_resource",
        {},
        {
            "resourceARN": ANY,
            "tags": [{"key": tags.EXPIRES_AT, "value": ANY}, {"key": WARNED_AT, "value": ANY}],
        },
    )
    with stubber:
        outcome = run.execute()
    stubber.assert_no_pending_responses()
    assert outcome.status == "FAILED" and outcome.error == "ThroughputFailedError"
    assert "is still Creating after" in outcome.cause
    assert outcome.path[-2:] == [States.HANDLE_FAILURE, States.FAILED]
    (line,) = run.record.failure["cleanup"]
    assert line.startswith("left provisioned throughput arn:aws:bedrock:")
    assert "to the expiry cleanup" in line


def test_duplicate_starts_make_one_execution_and_one_job(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = bedrock_manifest()
    run = prepared(platform, definition, spec)
    monkeypatch.setenv("FINETUNE_PROJECT", "llm-finetuning")
    platform_client = PlatformClient(
        project="llm-finetuning", environment="test", clients=lambda service: client(service)
    )
    platform_client.__dict__["state_machine_arn"] = platform.state_machine_arn
    first = platform_client.submit(spec)
    second = platform_client.submit(json.loads(json.dumps(spec)))
    assert first.execution_arn == second.execution_arn and first.job_id == run.job_id
    executions = platform.sfn.list_executions(stateMachineArn=platform.state_machine_arn)
    assert len(executions["executions"]) == 1

    # StartJob's response is lost once (the Lambda service fails after the job was made):
    # Step Functions retries the task, and idempotency returns the first job.
    start = run.handler("start_bedrock_job")
    calls = {"count": 0}

    def start_with_lost_response(event: dict[str, Any]) -> Any:
        result = start(event)
        calls["count"] += 1
        if calls["count"] == 1:
            raise LambdaServiceFault("response lost")
        return result

    run.overrides["start_bedrock_job"] = start_with_lost_response
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED"
    assert outcome.retries == [(States.START_BEDROCK, "Lambda.ServiceException")]
    assert list(moto_backend("bedrock").model_customization_jobs) == [run.job_id]
    assert [n["kind"] for n in platform.notifications()] == ["succeeded"]


# -- evaluation, quality gate and registration ------------------------------------------------

TEST_SET = f"s3://{DATA_BUCKET}/training-data/processed/support/test.jsonl"
TRUTH = ["invoice", "letter", "memo", "invoice"]


def classification_test_set() -> str:
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Classify document {i}"},
                {"role": "assistant", "content": json.dumps({"type": label})},
            ]
        }
        for i, label in enumerate(TRUTH)
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def converse_answers(stubber: Any, model_id: str, answers: list[str]) -> None:
    for answer in answers:
        stubber.add_response(
            "converse",
            {
                "output": {
                    "message": {
                        "role": "assistant",
                        "content": [{"text": json.dumps({"type": answer})}],
                    }
                },
                "stopReason": "end_turn",
                "usage": {"inputTokens": 50, "outputTokens": 6, "totalTokens": 56},
                "metrics": {"latencyMs": 200},
            },
            {"modelId": model_id, "messages": ANY, "inferenceConfig": {"maxTokens": 64}},
        )


def evaluated_bedrock_run(
    platform: Platform, definition: dict[str, Any], tuned_answers: list[str]
) -> tuple[Run, Any, Any]:
    """A Bedrock job with provisioned throughput, evaluated against its base model on a
    four-document classification test set by the real evaluate-candidate function."""
    spec = bedrock_manifest(
        serving={"provisioned_throughput": {}},
        evaluation={
            "test_set_uri": TEST_SET,
            "task": "classification",
            "compare_with_base": True,
            "base_model_id": "us.amazon.nova-lite-v1:0",
            "quality_gate": {
                "min": {"accuracy": 0.7},
                "min_improvement_over_base": {"accuracy": 0.1},
            },
            "inference": {"max_tokens": 64},
            "concurrency": 1,
        },
    )
    run = prepared(platform, definition, spec)
    platform.put(TEST_SET, classification_test_set())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    throughput = with_throughput(run, ["InService"])
    throughput.add_response("tag_resource", {})
    runtime, converse = stubbed("bedrock-runtime")
    run.services["bedrock-runtime"] = runtime
    arn = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/{MODEL_SUFFIX}"
    converse_answers(converse, arn, tuned_answers)
    converse_answers(converse, "us.amazon.nova-lite-v1:0", ["invoice", "memo", "memo", "letter"])
    return run, throughput, converse


def test_bedrock_model_is_evaluated_through_its_throughput_and_registered(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run, throughput, converse = evaluated_bedrock_run(platform, definition, TRUTH)
    with throughput, converse:
        outcome = run.execute()
    converse.assert_no_pending_responses()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path[outcome.path.index(States.THROUGHPUT_READY) + 1 :] == [
        States.PREPARE_EVALUATION,
        States.EVALUATION_ROUTE,
        States.EVALUATE_BEDROCK,
        States.GATE,
        States.REGISTRATION_REQUESTED,
        States.REGISTER_MODEL,
        States.COMPLETE,
        States.SUCCEEDED,
    ]
    result = outcome.output["evaluation_result"]
    assert result["quality_gate_passed"] is True
    assert result["metrics"]["accuracy"] == 1.0 and result["improvement"]["accuracy"] == 0.5
    prefix = f"evaluation/reports/{run.job_id}/"
    assert result["report_uri"] == f"s3://{EVALUATION_BUCKET}/{prefix}report.html"
    keys = {
        o["Key"]
        for o in platform.s3.list_objects_v2(Bucket=EVALUATION_BUCKET, Prefix=prefix)["Contents"]
    }
    assert {
        f"{prefix}results.json",
        f"{prefix}report.html",
        f"{prefix}training-metrics.json",
    } <= keys

    registration = outcome.output["model_registration"]
    assert registration["approval_status"] == "PendingManualApproval"
    package = client("sagemaker").describe_model_package(
        ModelPackageName=registration["model_package_arn"]
    )
    assert package["ModelPackageGroupName"] == MODEL_PACKAGE_GROUP
    assert package["ModelApprovalStatus"] == "PendingManualApproval"

    record = run.record
    assert record.status == JobStatus.COMPLETED
    assert record.evaluation["model_package_arn"] == registration["model_package_arn"]
    assert record.evaluation["report_uri"] == result["report_uri"]
    (message,) = platform.notifications()
    assert "Model package:" in message["message"] and "report.html" in message["message"]


def test_failed_quality_gate_fails_the_run_with_the_report_and_deletes_the_throughput(
    platform: Platform, definition: dict[str, Any]
) -> None:
    # 2 of 4 right: below the 0.7 gate and no better than the base model.
    run, throughput, converse = evaluated_bedrock_run(
        platform, definition, ["invoice", "memo", "memo", "letter"]
    )
    throughput.add_response("delete_provisioned_model_throughput", {})
    with throughput, converse:
        outcome = run.execute()
    throughput.assert_no_pending_responses()
    assert outcome.status == "FAILED" and outcome.error == "QualityGateFailedError"
    assert outcome.path[-5:] == [
        States.EVALUATE_BEDROCK,
        States.GATE,
        States.GATE_FAILED,
        States.HANDLE_FAILURE,
        States.FAILED,
    ]
    assert outcome.cause.startswith("quality gate failed: accuracy")
    assert outcome.cause.endswith(
        f"report: s3://{EVALUATION_BUCKET}/evaluation/reports/{run.job_id}/report.html"
    )
    assert States.REGISTER_MODEL not in outcome.path
    packages = client("sagemaker").list_model_packages(ModelPackageGroupName=MODEL_PACKAGE_GROUP)
    assert packages["ModelPackageSummaryList"] == []
    record = run.record
    assert record.status == JobStatus.FAILED and record.failure["stage"] == "evaluating"
    assert any("deleted provisioned throughput" in line for line in record.failure["cleanup"])
    (message,) = platform.notifications()
    assert "report.html" in message["message"]


class ProcessingJobsInProgress:
    """moto's SageMaker, except that a processing job reports InProgress ``polls`` times
    before moto's Completed (or ``final``), as a real job runs for a while."""

    def __init__(self, polls: int, final: str | None = None, reason: str = "") -> None:
        self._moto = client("sagemaker")
        self._polls, self._final, self._reason = polls, final, reason
        self.exceptions, self.meta = self._moto.exceptions, self._moto.meta
        self.created: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._moto, name)

    def create_processing_job(self, **request: Any) -> Any:
        self.created.append(request)
        return self._moto.create_processing_job(**request)

    def describe_processing_job(self, **request: Any) -> Any:
        job = self._moto.describe_processing_job(**request)
        if self._polls > 0:
            self._polls -= 1
            return {**job, "ProcessingJobStatus": "InProgress"}
        if self._final:
            return {**job, "ProcessingJobStatus": self._final, "FailureReason": self._reason}
        return job


def container_output(platform: Platform, job_id: str, tuned: list[str], base: list[str]) -> None:
    """What the evaluation container leaves under the job's report prefix."""
    prefix = f"s3://{EVALUATION_BUCKET}/evaluation/reports/{job_id}/"
    document = results_document(tuned, base, GATE)
    platform.put(f"{prefix}results.json", json.dumps(document))
    passed = document["quality_gate"]["passed"]
    outcome = {
        "job_name": job_id,
        "evaluation_results_uri": f"{prefix}results.json",
        "report_uri": f"{prefix}report.html",
        "report_markdown_uri": f"{prefix}report.md",
        "quality_gate_passed": passed,
        "quality_gate": document["quality_gate"],
        "metrics": {"accuracy": document["metrics"]["accuracy"]},
        "improvement": None,
        "reason": f"quality gate {'passed' if passed else 'failed'}; report: {prefix}report.html",
    }
    platform.put(f"{prefix}outcome.json", json.dumps(outcome))


def evaluated_sagemaker_spec() -> dict[str, Any]:
    return sagemaker_manifest(
        evaluation={
            "test_set_uri": f"s3://{DATA_BUCKET}/training-data/processed/chat/test.jsonl",
            "task": "classification",
            "compare_with_base": True,
            "quality_gate": GATE,
            "instance_type": "ml.g5.xlarge",
        }
    )


def test_open_model_is_evaluated_by_a_processing_job_and_registered(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = prepared(platform, definition, evaluated_sagemaker_spec())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    sagemaker = ProcessingJobsInProgress(polls=2)
    run.services["sagemaker"] = sagemaker
    container_output(platform, run.job_id, GOOD, WEAK)
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    evaluation = outcome.path[outcome.path.index(States.PREPARE_EVALUATION) :]
    assert evaluation == [
        States.PREPARE_EVALUATION,
        States.EVALUATION_ROUTE,
        # Started (reported InProgress), then InProgress twice, then Completed.
        *[States.EVALUATE_OPEN, States.EVALUATION_DONE, States.WAIT_EVALUATION] * 3,
        States.EVALUATE_OPEN,
        States.EVALUATION_DONE,
        States.GATE,
        States.REGISTRATION_REQUESTED,
        States.REGISTER_MODEL,
        States.COMPLETE,
        States.SUCCEEDED,
    ]
    assert outcome.waits == [SETTINGS.evaluation_check_seconds] * 3
    # Four calls, one job: the start is idempotent.
    (request,) = sagemaker.created
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["NetworkConfig"]["EnableNetworkIsolation"] is True
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs["model"] == run.record.artifacts["model_uri"]
    assert inputs["base"] == evaluated_sagemaker_spec()["base_model"]

    registration = outcome.output["model_registration"]
    package = client("sagemaker").describe_model_package(
        ModelPackageName=registration["model_package_arn"]
    )
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == run.record.artifacts["model_uri"]
    record = run.record
    assert record.status == JobStatus.COMPLETED
    assert record.evaluation["processing_job_name"] == request["ProcessingJobName"]
    assert record.evaluation["quality_gate_passed"] is True


def test_open_model_below_the_gate_fails_the_run(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = prepared(platform, definition, evaluated_sagemaker_spec())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    run.services["sagemaker"] = ProcessingJobsInProgress(polls=0)
    container_output(platform, run.job_id, WEAK, GOOD)
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "QualityGateFailedError"
    assert "report.html" in outcome.cause
    assert States.REGISTER_MODEL not in outcome.path
    assert run.record.failure["stage"] == "evaluating"


def test_failed_evaluation_job_fails_the_run_with_its_reason(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = prepared(platform, definition, evaluated_sagemaker_spec())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    run.services["sagemaker"] = ProcessingJobsInProgress(
        polls=1, final="Failed", reason="ClientError: CUDA out of memory"
    )
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "EvaluationJobFailedError"
    assert "CUDA out of memory" in outcome.cause
    assert outcome.path[-3:] == [States.EVALUATE_OPEN, States.HANDLE_FAILURE, States.FAILED]
    assert run.record.status == JobStatus.FAILED


def test_evaluation_without_registration_completes_after_the_gate(
    platform: Platform, definition: dict[str, Any]
) -> None:
    spec = evaluated_sagemaker_spec()
    spec["evaluation"]["register_model"] = False
    run = prepared(platform, definition, spec)
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    run.services["sagemaker"] = ProcessingJobsInProgress(polls=0)
    container_output(platform, run.job_id, GOOD, WEAK)
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path[-4:] == [
        States.GATE,
        States.REGISTRATION_REQUESTED,
        States.COMPLETE,
        States.SUCCEEDED,
    ]
    assert "model_registration" not in outcome.output

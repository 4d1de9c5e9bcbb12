"""Simulated runs: the synthesized state machine definition, interpreted, calling the real
handlers against moto, through the happy paths and every failure branch."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from finetuning.orchestration.clients import Clients
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobStatus, JobTable, utc_now
from finetuning.orchestration.workflow import States, execution_input
from finetuning.platform_client import PlatformClient
from stacks.orchestration_settings import OrchestrationSettings
from tests.orchestration.asl import TASK_FUNCTIONS, Interpreter, workflow_definition
from tests.orchestration.fakes import (
    EXECUTION_PREFIX,
    JOB_TABLE,
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
        module = load_handler(folder)
        module.CLIENTS = Clients(REGION, factory_with(self.services))
        return lambda event: module.handler(event, LambdaContext())

    def job_event(self, status: str) -> dict[str, Any]:
        """Deliver a job state-change event as EventBridge would."""
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
                {"TrainingJobName": self.job_id, "TrainingJobStatus": status},
            )
        return self.handler("job_events")(event)

    def end_job(self, status: str, failure: str | None = None) -> None:
        if self.manifest.backend.value == "bedrock":
            set_bedrock_job_status(self.job_id, status, failure)
        else:
            set_training_job_status(self.job_id, status, failure=failure)

    def execute(self) -> Any:
        handlers = {folder: self.handler(folder) for folder in TASK_FUNCTIONS.values()}
        handlers.update(self.overrides)
        interpreter = Interpreter(
            self.definition, handlers=handlers, answers=self.answers, on_wait=self.on_wait
        )
        return interpreter.run(
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
        States.EVALUATE,
        States.GATE,
        States.SERVING_REQUESTED,
        States.PROVISION,
        States.WAIT_THROUGHPUT,
        States.CHECK_THROUGHPUT,
        States.THROUGHPUT_READY,
        States.WAIT_THROUGHPUT,
        States.CHECK_THROUGHPUT,
        States.THROUGHPUT_READY,
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


def test_quality_gate_rejection_fails_the_run(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = prepared(platform, definition, bedrock_manifest())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    run.overrides["evaluate_model"] = lambda event: {
        "passed": False,
        "reason": "accuracy 0.61 is below the gate 0.85",
        "report_uri": "s3://x/report.html",
        "metrics": {"accuracy": 0.61},
    }
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "QualityGateFailedError"
    assert outcome.cause == "accuracy 0.61 is below the gate 0.85"
    assert run.record.status == JobStatus.FAILED and run.record.failure["stage"] == "evaluating"


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

    class LambdaServiceException(Exception):
        pass

    LambdaServiceException.__name__ = "Lambda.ServiceException"

    def start_with_lost_response(event: dict[str, Any]) -> Any:
        result = start(event)
        calls["count"] += 1
        if calls["count"] == 1:
            raise LambdaServiceException("response lost")
        return result

    run.overrides["start_bedrock_job"] = start_with_lost_response
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED"
    assert outcome.retries == [(States.START_BEDROCK, "Lambda.ServiceException")]
    assert list(moto_backend("bedrock").model_customization_jobs) == [run.job_id]
    assert [n["kind"] for n in platform.notifications()] == ["succeeded"]

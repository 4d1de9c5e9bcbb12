"""Simulated runs of the new Bedrock customization types through the synthesized workflow:
reinforcement fine-tuning (success with the platform's grader, and a job whose grader fails)
and distillation. The state machine runs on moto's engine and the real handlers run against moto;
the CreateModelCustomizationJob request is recorded on its way to moto, which does not keep
customizationConfig, and checked against botocore's service model."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from finetuning.orchestration.environment import Var
from finetuning.orchestration.records import JobStatus
from finetuning.orchestration.workflow import States
from tests.stacks.orchestration_workflow.test_simulation import SETTINGS, Run
from tests.support.platform_fakes import DATA_BUCKET, Platform, bedrock_manifest, client
from tests.support.workflow_engine import workflow_definition

PLATFORM_GRADER = "arn:aws:lambda:us-east-1:123456789012:function:ft-dev-rft-grader"
USER_GRADER = "arn:aws:lambda:us-east-1:123456789012:function:my-grader"
NOVA_2 = "amazon.nova-2-lite-v1:0:256k"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return workflow_definition(SETTINGS)


class Recorder:
    """The moto Bedrock client, recording each CreateModelCustomizationJob request."""

    def __init__(self) -> None:
        self.inner = client("bedrock")
        self.requests: list[dict[str, Any]] = []

    def create_model_customization_job(self, **request: Any) -> Any:
        self.requests.append(request)
        return self.inner.create_model_customization_job(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def rft_records(count: int = 5) -> str:
    rows = [
        {
            "id": f"q{i}",
            "messages": [
                {"role": "system", "content": "Answer with the number only."},
                {"role": "user", "content": f"What is {i} + 1?"},
            ],
            "reference_answer": str(i + 1),
        }
        for i in range(count)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows)


def distillation_prompts(count: int = 5) -> str:
    rows = [
        {
            "schemaVersion": "bedrock-conversation-2024",
            "messages": [{"role": "user", "content": [{"text": f"Summarise ticket {i}."}]}],
        }
        for i in range(count)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows)


def assert_valid(request: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("bedrock")
    shape = model.operation_model("CreateModelCustomizationJob").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def rft_spec(**rft: Any) -> dict[str, Any]:
    spec = bedrock_manifest(
        job_name="rft-math",
        base_model=NOVA_2,
        customization_type="REINFORCEMENT_FINE_TUNING",
        training_data_uri=f"s3://{DATA_BUCKET}/training-data/processed/math/rft.jsonl",
        rft=rft or {"hyperparameters": {"epochCount": 2, "reasoningEffort": "low"}},
    )
    spec.pop("hyperparameters")
    return spec


def start(platform: Platform, definition: dict[str, Any], spec: dict[str, Any], data: str):
    run = Run(platform, definition, spec)
    platform.put(spec["training_data_uri"], data)
    recorder = Recorder()
    run.services["bedrock"] = recorder
    return run, recorder


def test_rft_with_the_platform_grader_succeeds(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Var.GRADER_FUNCTION_ARN, PLATFORM_GRADER)
    run, recorder = start(platform, definition, rft_spec(), rft_records())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path[:4] == [
        States.REGISTER,
        States.VALIDATE,
        States.BACKEND,
        States.START_BEDROCK,
    ]
    (request,) = recorder.requests
    assert_valid(request)
    assert request["customizationType"] == "REINFORCEMENT_FINE_TUNING"
    assert request["customizationConfig"] == {
        "rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": PLATFORM_GRADER}},
            "hyperParameters": {"epochCount": 2, "reasoningEffort": "low"},
        }
    }
    assert "hyperParameters" not in request
    # The RFT records were validated by their own rules (no assistant turn needed).
    assert outcome.output["validation"]["records"] == 5
    assert run.record.status == JobStatus.COMPLETED


def test_rft_whose_grader_fails_fails_the_run_and_says_why(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run, recorder = start(
        platform, definition, rft_spec(grader_lambda_arn=USER_GRADER), rft_records()
    )
    failure = "Reward function returned an invalid response for 12 samples"
    run.on_wait = lambda token: (run.end_job("Failed", failure), run.job_event("Failed"))
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "JobFailedError"
    assert failure in outcome.cause
    (request,) = recorder.requests
    grader = request["customizationConfig"]["rftConfig"]["graderConfig"]["lambdaGrader"]
    assert grader == {"lambdaArn": USER_GRADER}
    assert run.record.status == JobStatus.FAILED
    (message,) = platform.notifications()
    assert message["kind"] == "failed" and failure in message["message"]


def test_rft_records_without_reference_answers_fail_validation_before_any_job(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Var.GRADER_FUNCTION_ARN, PLATFORM_GRADER)
    bad = json.dumps({"messages": [{"role": "user", "content": "2+2?"}]}) + "\n"
    run, recorder = start(platform, definition, rft_spec(), bad)
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "DatasetInvalidError"
    assert recorder.requests == []


def test_distillation_succeeds_with_the_teacher_in_the_request(
    platform: Platform, definition: dict[str, Any]
) -> None:
    spec = bedrock_manifest(
        job_name="distil-support",
        base_model="amazon.nova-lite-v1:0:300k",
        customization_type="DISTILLATION",
        training_data_uri=f"s3://{DATA_BUCKET}/training-data/processed/support/prompts.jsonl",
        distillation={"teacher_model": "us.amazon.nova-pro-v1:0", "max_response_length": 1000},
    )
    spec.pop("hyperparameters")
    run, recorder = start(platform, definition, spec, distillation_prompts())
    run.on_wait = lambda token: (run.end_job("Completed"), run.job_event("Completed"))
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    (request,) = recorder.requests
    assert_valid(request)
    assert request["customizationType"] == "DISTILLATION"
    assert request["customizationConfig"] == {
        "distillationConfig": {
            "teacherModelConfig": {
                "teacherModelIdentifier": "us.amazon.nova-pro-v1:0",
                "maxResponseLengthForInference": 1000,
            }
        }
    }
    assert request["trainingDataConfig"] == {"s3Uri": spec["training_data_uri"]}
    assert run.record.status == JobStatus.COMPLETED

"""Simulated runs of an open-weight reinforcement fine-tuning job (gpt-oss-20b) through the
synthesized workflow: the real handlers start, watch and cancel it on Bedrock's
OpenAI-compatible API, here the local fake endpoint of tests/support/mantle.py.

Each call a function makes to the endpoint is recorded as the bedrock-mantle action it is
authorized as (tests.support.mantle.iam_operation) and checked, with the API-key use it
implies, against that function's role in the synthesized app, like the functions' botocore
calls (conftest.py). The app is synthesized for the settings' Region (us-east-1) while the
run's functions act in us-west-2, where Bedrock trains these models: the policies are scoped
to the stack's own Region, so the check compares like with like in the stack's Region.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from finetuning.orchestration import open_weight
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Var
from finetuning.orchestration.records import JobStatus
from finetuning.orchestration.workflow import States
from tests.stacks.orchestration_workflow.test_simulation import SERVING_FUNCTIONS, SETTINGS, Run
from tests.support.iam_recorder import AwsCall, AwsCallRecorder
from tests.support.mantle import API_KEY, GRADER, FakeMantle, iam_operation, rft_jsonl
from tests.support.mantle import mantle as mantle
from tests.support.platform_fakes import (
    DATA_BUCKET,
    REGION,
    Platform,
    bedrock_manifest,
    factory_with,
    load_handler,
)
from tests.support.platform_fakes import LambdaContext as Context
from tests.support.workflow_engine import workflow_definition

MODEL = "openai.gpt-oss-20b"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return workflow_definition(SETTINGS)


def open_weight_spec() -> dict[str, Any]:
    spec = bedrock_manifest(
        job_name="rft-oss",
        base_model=MODEL,
        customization_type="REINFORCEMENT_FINE_TUNING",
        training_data_uri=f"s3://{DATA_BUCKET}/training-data/processed/math/rft-open.jsonl",
        rft={"grader_lambda_arn": GRADER, "hyperparameters": {"n_epochs": 1, "batch_size": 4}},
    )
    for name in ("hyperparameters", "tags", "validation_data_uri", "output_uri", "model_name"):
        spec.pop(name, None)
    return spec


class OpenWeightRun(Run):
    """A run whose functions reach the fake endpoint with its key, recording each call."""

    def __init__(self, *args: Any, mantle: FakeMantle, recorder: AwsCallRecorder) -> None:
        super().__init__(*args)
        self.mantle = mantle
        self.recorder = recorder

    def _opener(self) -> Callable[..., Any]:
        from finetuning.backends.bedrock_openai_rft import _OPENER

        def open_(request: Any, timeout: float) -> Any:
            operation = iam_operation(request.get_method(), request.full_url)
            actor = self.recorder.actor_of()
            # The request's model: CreateFineTuningJob's condition key bedrock-mantle:Model.
            creates = operation == "CreateFineTuningJob"
            params = {"model": json.loads(request.data)["model"]} if creates else {}
            self.recorder.calls.append(AwsCall(actor, "bedrock-mantle", operation, params))
            return _OPENER.open(request, timeout=timeout)

        return open_

    def handler(self, folder: str) -> Callable[[dict[str, Any]], Any]:
        if folder in SERVING_FUNCTIONS:  # never reached: the job is neither served nor evaluated
            return super().handler(folder)
        module = load_handler(folder)

        def open_weight_rft(region: str, s3: Any) -> Any:
            return open_weight.backend(
                region,
                s3,
                key=lambda _: API_KEY,
                base_url=self.mantle.url,
                opener=self._opener(),
            )

        module.CLIENTS = Clients(REGION, factory_with(self.services), open_weight_rft)
        return lambda event: module.handler(event, Context())


def prepared(
    platform: Platform,
    definition: dict[str, Any],
    mantle: FakeMantle,
    recorder: AwsCallRecorder,
    monkeypatch: pytest.MonkeyPatch,
    *,
    region: str = "us-west-2",
) -> OpenWeightRun:
    monkeypatch.setenv(Var.REGION, region)
    spec = open_weight_spec()
    platform.put(spec["training_data_uri"], rft_jsonl(100))
    return OpenWeightRun(platform, definition, spec, mantle=mantle, recorder=recorder)


def test_open_weight_rft_succeeds_through_the_openai_compatible_api(
    platform: Platform,
    definition: dict[str, Any],
    mantle: FakeMantle,
    aws_calls: AwsCallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mantle.statuses = ["running", "succeeded"]
    run = prepared(platform, definition, mantle, aws_calls, monkeypatch)
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path[:4] == [
        States.REGISTER,
        States.VALIDATE,
        States.BACKEND,
        States.START_BEDROCK,
    ]
    # Uploaded once under the job id and a digest, started once with the docs' body.
    assert mantle.calls()[:4] == [
        "GET /v1/files",
        "POST /v1/files",
        "GET /v1/fine_tuning/jobs",
        "POST /v1/fine_tuning/jobs",
    ]
    (file,) = mantle.files
    assert file["filename"].startswith(f"{run.job_id}-") and file["purpose"] == "fine-tune"
    (job,) = mantle.jobs
    assert job["model"] == MODEL and job["training_file"] == file["id"]
    assert job["method"] == {
        "type": "reinforcement",
        "reinforcement": {
            "grader": {"type": "lambda", "lambda": {"function": GRADER}},
            "hyperparameters": {"n_epochs": 1, "batch_size": 4},
        },
    }
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in mantle.requests)
    record = run.record
    assert record.backend_job_arn == f"{mantle.url}/fine_tuning/jobs/{job['id']}"
    assert record.status == JobStatus.COMPLETED
    assert record.artifacts == {"fine_tuned_model": f"{MODEL}:ft:{job['id']}"}
    assert outcome.output["validation"]["records"] == 100
    # The functions that reached the endpoint, by the action each call needs.
    actions = {(c.actor, c.operation) for c in aws_calls.calls if c.service == "bedrock-mantle"}
    assert actions == {
        ("StartBedrockJob", "ListFiles"),
        ("StartBedrockJob", "CreateFile"),
        ("StartBedrockJob", "ListFineTuningJobs"),
        ("StartBedrockJob", "CreateFineTuningJob"),
        ("StartBedrockJob", "GetFineTuningJob"),
        ("WaitForJob", "GetFineTuningJob"),
        ("CollectResults", "GetFineTuningJob"),
    }


def test_open_weight_rft_whose_grader_fails_fails_the_run_and_says_why(
    platform: Platform,
    definition: dict[str, Any],
    mantle: FakeMantle,
    aws_calls: AwsCallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failure = "Reward function returned an invalid response for 12 samples"
    mantle.statuses = ["running", "failed"]
    mantle.job_error = {"code": "invalid_reward", "message": failure}
    run = prepared(platform, definition, mantle, aws_calls, monkeypatch)
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "JobFailedError"
    assert failure in outcome.cause
    assert run.record.status == JobStatus.FAILED
    (message,) = platform.notifications()
    assert message["kind"] == "failed" and failure in message["message"]
    assert not any(r.path.endswith("/cancel") for r in mantle.requests)  # it had ended


def test_an_open_weight_rft_job_past_its_deadline_is_cancelled(
    platform: Platform,
    definition: dict[str, Any],
    mantle: FakeMantle,
    aws_calls: AwsCallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mantle.statuses = ["running"]  # it never ends
    run = prepared(platform, definition, mantle, aws_calls, monkeypatch)
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "JobTimeoutError"
    (job,) = mantle.jobs
    assert job["status"] == "cancelled"
    assert mantle.calls()[-1] == f"POST /v1/fine_tuning/jobs/{job['id']}/cancel"
    assert ("HandleFailure", "CancelFineTuningJob") in {
        (c.actor, c.operation) for c in aws_calls.calls
    }
    assert run.record.failure["cleanup"] == [f"stopped bedrock job {run.job_id}"]


def test_an_open_weight_rft_job_outside_its_region_fails_before_any_call(
    platform: Platform,
    definition: dict[str, Any],
    mantle: FakeMantle,
    aws_calls: AwsCallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = prepared(platform, definition, mantle, aws_calls, monkeypatch, region="us-east-1")
    outcome = run.execute()
    assert outcome.status == "FAILED"
    # The validation step refuses the model's Region before the start step is reached.
    assert outcome.error == "ManifestError"
    assert "a model Bedrock customizes in us-east-1" in outcome.cause
    assert "gpt-oss-20b / Qwen3 32B" in outcome.cause and "in us-west-2 only" in outcome.cause
    assert mantle.requests == []

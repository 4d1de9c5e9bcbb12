"""Simulated runs through the on-demand serving branch: the synthesized state machine, run
by moto's Amazon States Language engine (tests.support.workflow_engine), calling the real
handlers against moto, with the custom model deployment calls answered by a Stubber that
checks each request against botocore's Bedrock service model (moto has no custom model
deployments)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import ANY

from finetuning.orchestration import tags, workflow_serving
from finetuning.orchestration.cleanup import WARNED_AT, clean_up_expired
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment, Var
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobStatus, JobTable, timestamp, utc_now
from finetuning.orchestration.workflow import States, execution_input
from stacks.settings.orchestration import OrchestrationSettings
from tests.support.platform_fakes import (
    ACCOUNT,
    DATA_BUCKET,
    EXECUTION_PREFIX,
    JOB_TABLE,
    MODEL_PACKAGE_GROUP,
    PREFIX,
    REGION,
    LambdaContext,
    Platform,
    Routed,
    TaskAnswers,
    bedrock_manifest,
    client,
    eventbridge_event,
    factory_with,
    load_handler,
    moto_backend,
    nova_records,
    set_bedrock_job_status,
    stubbed,
)
from tests.support.workflow_engine import TASK_FUNCTIONS, Interpreter, workflow_definition

# Starts the jsii runtime (the definition is synthesized): on the CDK worker under xdist.
pytestmark = pytest.mark.xdist_group("orchestration-cdk")

SETTINGS = OrchestrationSettings(poll_interval_minutes=60, max_job_hours=2)
SERVING_FUNCTIONS = ("evaluate_candidate", "register_model")
DEPLOYMENT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdef123456"
# The Bedrock operations the Stubber answers; the customization job stays in moto.
DEPLOYMENT_OPERATIONS = {
    "create_custom_model_deployment",
    "get_custom_model_deployment",
    "delete_custom_model_deployment",
    "tag_resource",
}
TEST_SET = f"s3://{DATA_BUCKET}/training-data/processed/support/test.jsonl"
TRUTH = ["invoice", "letter", "memo", "invoice"]
EVALUATION = {
    "test_set_uri": TEST_SET,
    "task": "classification",
    "quality_gate": {"min": {"accuracy": 0.7}},
    "inference": {"max_tokens": 64},
    "concurrency": 1,
}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return workflow_definition(SETTINGS)


class Run:
    """One simulated execution of a Bedrock job whose Bedrock client routes the deployment
    calls to a Stubber and everything else to moto."""

    def __init__(self, platform: Platform, definition: dict[str, Any], spec: dict[str, Any]):
        self.platform, self.definition = platform, definition
        self.manifest = parse_manifest(spec)
        self.job_id = self.manifest.job_id
        self.answers = TaskAnswers(client("stepfunctions"))
        stubbed_bedrock, self.bedrock = stubbed("bedrock")
        runtime, self.runtime = stubbed("bedrock-runtime")
        self.services: dict[str, Any] = {
            "stepfunctions": self.answers,
            "bedrock": Routed(client("bedrock"), stubbed_bedrock, DEPLOYMENT_OPERATIONS),
            "bedrock-runtime": runtime,
        }
        self.table = JobTable(platform.dynamodb, JOB_TABLE)
        platform.put(spec["training_data_uri"], nova_records())

    def handler(self, folder: str) -> Callable[[dict[str, Any]], Any]:
        if folder in SERVING_FUNCTIONS:
            module = load_handler(folder)
            module.boto3 = SimpleNamespace(
                client=lambda name, **kw: self.services.get(name) or client(name)
            )
        else:
            module = load_handler(folder)
            module.CLIENTS = Clients(REGION, factory_with(self.services))
        return lambda event: module.handler(event, LambdaContext())

    def complete_job(self, token: str) -> None:
        set_bedrock_job_status(self.job_id, "Completed")
        event = eventbridge_event(
            "aws.bedrock",
            "Model Customization Job State Change",
            {"jobName": self.job_id, "jobStatus": "Completed"},
        )
        self.handler("job_events")(event)

    def execute(self) -> Any:
        handlers = {folder: self.handler(folder) for folder in TASK_FUNCTIONS.values()}
        interpreter = Interpreter(
            self.definition, handlers=handlers, answers=self.answers, on_wait=self.complete_job
        )
        with self.bedrock, self.runtime:
            outcome = interpreter.run(
                execution_input(self.manifest, source="cli"), f"{EXECUTION_PREFIX}:{self.job_id}"
            )
        self.bedrock.assert_no_pending_responses()
        self.runtime.assert_no_pending_responses()
        return outcome

    @property
    def deployment_name(self) -> str:
        return f"{self.job_id}-od"

    def expect_deployment(self, statuses: list[str]) -> None:
        """CreateCustomModelDeployment with the platform's tags, then one read per check."""
        self.bedrock.add_response(
            "create_custom_model_deployment",
            {"customModelDeploymentArn": DEPLOYMENT_ARN},
            {
                "modelDeploymentName": self.deployment_name,
                "modelArn": ANY,
                "description": f"On-demand deployment of fine-tuning job {self.job_id}",
                "tags": tags.as_key_value_list(
                    {"team": "support", tags.PLATFORM: PREFIX, tags.JOB_ID: self.job_id}
                ),
                "clientRequestToken": self.deployment_name,
            },
        )
        for status in statuses:
            self.bedrock.add_response(
                "get_custom_model_deployment",
                {
                    "customModelDeploymentArn": DEPLOYMENT_ARN,
                    "modelDeploymentName": self.deployment_name,
                    "modelArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/x",
                    "createdAt": utc_now(),
                    "status": status,
                    **({"failureMessage": "model not compatible"} if status == "Failed" else {}),
                },
                {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
            )

    def expect_expiry_tag(self) -> None:
        self.bedrock.add_response(
            "tag_resource",
            {},
            {"resourceARN": DEPLOYMENT_ARN, "tags": [{"key": tags.EXPIRES_AT, "value": ANY}]},
        )

    def expect_deletion(self) -> None:
        self.bedrock.add_response(
            "delete_custom_model_deployment",
            {},
            {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
        )

    def expect_busy_deletion(self) -> None:
        """DeleteCustomModelDeployment refused while the deployment is still Creating; the
        failure handler tags it expired and warned for the expiry cleanup instead."""
        self.bedrock.add_client_error(
            "delete_custom_model_deployment",
            service_error_code="ConflictException",
            service_message="Custom model deployment is in Creating state",
            expected_params={"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
        )
        self.bedrock.add_response(
            "tag_resource",
            {},
            {
                "resourceARN": DEPLOYMENT_ARN,
                "tags": [{"key": tags.EXPIRES_AT, "value": ANY}, {"key": WARNED_AT, "value": ANY}],
            },
        )

    def expect_answers(self, answers: list[str]) -> None:
        """The evaluate-candidate function calls the deployment ARN, nothing else."""
        for answer in answers:
            self.runtime.add_response(
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
                {"modelId": DEPLOYMENT_ARN, "messages": ANY, "inferenceConfig": {"maxTokens": 64}},
            )

    @property
    def record(self) -> Any:
        return self.table.require(self.job_id)


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


def evaluated_run(platform: Platform, definition: dict[str, Any], **spec: Any) -> Run:
    """Nova Lite with a test set and no serving section: on-demand by default."""
    run = Run(platform, definition, bedrock_manifest(evaluation=EVALUATION, **spec))
    platform.put(TEST_SET, classification_test_set())
    return run


def test_deployment_states_call_the_serving_functions(definition: dict[str, Any]) -> None:
    """They dispatch on the serving mode, so no further functions are needed."""
    states = definition["States"]
    for state, folder in (
        (States.DEPLOY, "provision_throughput"),
        (States.CHECK_DEPLOYMENT, "check_throughput"),
    ):
        assert states[state]["Resource"].endswith(f":function:{folder}"), states[state]
        assert states[state]["ResultPath"] == "$.serving"


def test_on_demand_is_the_default_for_an_eligible_evaluated_model_and_passes_the_gate(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = evaluated_run(platform, definition)
    run.expect_deployment(["Creating", "Active"])
    run.expect_expiry_tag()
    run.expect_answers(TRUTH)
    outcome = run.execute()
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert outcome.path[outcome.path.index(States.COLLECT) :] == [
        States.COLLECT,
        States.SERVING_REQUESTED,
        States.DEPLOY,
        States.WAIT_DEPLOYMENT,
        States.CHECK_DEPLOYMENT,
        States.DEPLOYMENT_READY,
        States.WAIT_DEPLOYMENT,
        States.CHECK_DEPLOYMENT,
        States.DEPLOYMENT_READY,
        States.PREPARE_EVALUATION,
        States.EVALUATION_ROUTE,
        States.EVALUATE_BEDROCK,
        States.GATE,
        States.REGISTRATION_REQUESTED,
        States.REGISTER_MODEL,
        States.COMPLETE,
        States.SUCCEEDED,
    ]
    assert States.PROVISION not in outcome.path
    assert outcome.output["validation"]["serving_mode"] == "on_demand"
    assert outcome.output["evaluation"]["request"]["model_id"] == DEPLOYMENT_ARN
    assert outcome.waits == [SETTINGS.throughput_check_seconds] * 2
    result = outcome.output["evaluation_result"]
    assert result["quality_gate_passed"] is True and result["metrics"]["accuracy"] == 1.0
    package = client("sagemaker").describe_model_package(
        ModelPackageName=outcome.output["model_registration"]["model_package_arn"]
    )
    assert package["ModelPackageGroupName"] == MODEL_PACKAGE_GROUP

    record = run.record
    assert record.status == JobStatus.COMPLETED
    assert record.serving["mode"] == "on_demand"
    assert record.serving["deployment_arn"] == DEPLOYMENT_ARN
    assert record.serving["deployment_name"] == run.deployment_name
    assert record.serving["status"] == "Active" and record.serving["expires_at"]
    (message,) = platform.notifications()
    assert message["kind"] == "succeeded"
    assert f"On-demand deployment: {DEPLOYMENT_ARN} (no hourly charge)" in message["message"]


def test_failed_gate_deletes_the_deployment(platform: Platform, definition: dict[str, Any]) -> None:
    run = evaluated_run(platform, definition)
    run.expect_deployment(["Active"])
    run.expect_expiry_tag()
    run.expect_answers(["invoice", "memo", "memo", "letter"])  # 2 of 4: below 0.7
    run.expect_deletion()
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "QualityGateFailedError"
    assert outcome.path[-5:] == [
        States.EVALUATE_BEDROCK,
        States.GATE,
        States.GATE_FAILED,
        States.HANDLE_FAILURE,
        States.FAILED,
    ]
    assert States.REGISTER_MODEL not in outcome.path
    record = run.record
    assert record.status == JobStatus.FAILED and record.failure["stage"] == "evaluating"
    assert record.failure["cleanup"] == [f"deleted custom model deployment {DEPLOYMENT_ARN}"]
    (message,) = platform.notifications()
    assert "QualityGateFailedError" in message["subject"]
    assert f"deleted custom model deployment {DEPLOYMENT_ARN}" in message["message"]


def test_failed_deployment_is_cleaned_up_by_the_failure_handler(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = Run(platform, definition, bedrock_manifest(serving={"mode": "on_demand"}))
    run.expect_deployment(["Failed"])
    run.expect_deletion()
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "DeploymentFailedError"
    assert "model not compatible" in outcome.cause
    assert outcome.path[-3:] == [States.CHECK_DEPLOYMENT, States.HANDLE_FAILURE, States.FAILED]
    assert States.PREPARE_EVALUATION not in outcome.path
    record = run.record
    assert record.status == JobStatus.FAILED
    assert record.failure["cleanup"] == [f"deleted custom model deployment {DEPLOYMENT_ARN}"]


def test_kept_deployment_survives_the_failure_handler(
    platform: Platform, definition: dict[str, Any]
) -> None:
    run = evaluated_run(platform, definition, serving={"on_demand": {"keep": True}})
    # Kept: tagged finetuning:keep=true at creation, no expiry tag once Active.
    run.bedrock.add_response(
        "create_custom_model_deployment",
        {"customModelDeploymentArn": DEPLOYMENT_ARN},
        {
            "modelDeploymentName": run.deployment_name,
            "modelArn": ANY,
            "description": ANY,
            "tags": tags.as_key_value_list(
                {
                    "team": "support",
                    tags.PLATFORM: PREFIX,
                    tags.JOB_ID: run.job_id,
                    tags.KEEP: tags.KEEP_VALUE,
                }
            ),
            "clientRequestToken": run.deployment_name,
        },
    )
    run.bedrock.add_response(
        "get_custom_model_deployment",
        {
            "customModelDeploymentArn": DEPLOYMENT_ARN,
            "modelDeploymentName": run.deployment_name,
            "modelArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/x",
            "createdAt": utc_now(),
            "status": "Active",
        },
    )
    run.expect_answers(["memo", "memo", "memo", "memo"])
    outcome = run.execute()
    assert outcome.error == "QualityGateFailedError"
    assert run.record.failure["cleanup"] == [
        f"kept custom model deployment {DEPLOYMENT_ARN} (tagged {tags.KEEP}=true)"
    ]
    assert "expires_at" not in run.record.serving


def test_a_platform_in_a_region_that_does_not_customize_the_model_refuses_it_first(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """eu-central-1 neither customizes Nova Lite nor has on-demand deployments; the Region
    the model is customized in is checked first (the serving mode's Region check:
    tests/finetuning/orchestration/test_on_demand_serving.py)."""
    monkeypatch.setenv(Var.REGION, "eu-central-1")
    run = evaluated_run(platform, definition)
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "ManifestError"
    assert outcome.path[-3:] == [States.VALIDATE, States.HANDLE_FAILURE, States.FAILED]
    assert moto_backend("bedrock").model_customization_jobs == {}
    assert "a model Bedrock customizes in eu-central-1" in outcome.cause
    assert "Amazon Nova Lite in us-east-1 only" in outcome.cause
    assert run.record.status == JobStatus.FAILED


HANDED_OVER = (
    f"left custom model deployment {DEPLOYMENT_ARN} to the expiry cleanup: Bedrock cannot "
    f"delete it yet (still being created); tagged {tags.EXPIRES_AT}, it is deleted on the "
    "cleanup's next run"
)


def expiry_cleanup_pass(
    platform: Platform, run: Run, status: str, *, conflict: bool, handed_over: dict[str, str]
) -> dict[str, Any]:
    """One pass of the scheduled cleanup over the one deployment, carrying the tags the
    failure handler gave it; the deletion is refused (``conflict``) or done."""
    bedrock, stubber = stubbed("bedrock")
    stubber.add_response("list_provisioned_model_throughputs", {"provisionedModelSummaries": []})
    stubber.add_response(
        "list_custom_model_deployments",
        {
            "modelDeploymentSummaries": [
                {
                    "customModelDeploymentArn": DEPLOYMENT_ARN,
                    "customModelDeploymentName": run.deployment_name,
                    "modelArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/x",
                    "createdAt": utc_now(),
                    "status": status,
                }
            ]
        },
    )
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": tags.as_key_value_list(handed_over)},
        {"resourceARN": DEPLOYMENT_ARN},
    )
    deletion = {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
    if conflict:
        stubber.add_client_error(
            "delete_custom_model_deployment",
            service_error_code="ConflictException",
            expected_params=deletion,
        )
    else:
        stubber.add_response("delete_custom_model_deployment", {}, deletion)
    operations = {
        "get_paginator",
        "list_provisioned_model_throughputs",
        "list_custom_model_deployments",
        "list_tags_for_resource",
        "delete_custom_model_deployment",
    }
    clients = Clients(
        REGION, factory_with({"bedrock": Routed(client("bedrock"), bedrock, operations)})
    )
    with stubber:
        report = clean_up_expired(
            env=Environment(platform.environment), table=run.table, clients=clients
        )
    stubber.assert_no_pending_responses()
    return report


def test_failed_gate_with_the_deployment_still_creating_hands_it_to_the_expiry_cleanup(
    platform: Platform, definition: dict[str, Any]
) -> None:
    """Bedrock refuses DeleteCustomModelDeployment (ConflictException) after the gate fails:
    the failure handler does not fail, the run ends with the gate's error, the deployment is
    tagged expired; the expiry cleanup defers while Bedrock still refuses, then deletes it."""
    run = evaluated_run(platform, definition)
    run.expect_deployment(["Active"])
    run.expect_expiry_tag()
    run.expect_answers(["memo", "memo", "memo", "memo"])
    run.expect_busy_deletion()
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "QualityGateFailedError"
    assert outcome.path[-3:] == [States.GATE_FAILED, States.HANDLE_FAILURE, States.FAILED]
    assert outcome.output["failure"]["cleanup"] == [HANDED_OVER]
    record = run.record
    assert record.status == JobStatus.FAILED and record.failure["cleanup"] == [HANDED_OVER]
    (failed,) = platform.notifications()
    assert HANDED_OVER in failed["message"]

    handed_over = {
        tags.PLATFORM: PREFIX,
        tags.JOB_ID: run.job_id,
        tags.EXPIRES_AT: timestamp(utc_now()),
        WARNED_AT: timestamp(utc_now()),
    }
    first = expiry_cleanup_pass(platform, run, "Creating", conflict=True, handed_over=handed_over)
    assert [entry["arn"] for entry in first["deferred"]] == [DEPLOYMENT_ARN]
    assert "delete" not in first and platform.notifications() == []
    second = expiry_cleanup_pass(platform, run, "Active", conflict=False, handed_over=handed_over)
    assert [entry["arn"] for entry in second["delete"]] == [DEPLOYMENT_ARN]
    (expired,) = platform.notifications()
    assert expired["kind"] == "expired"
    assert run.table.require(run.job_id).serving["deleted_at"]


def test_deployment_still_creating_past_the_wait_limit_is_handed_to_the_expiry_cleanup(
    platform: Platform, definition: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check gives up on a deployment still Creating (DeploymentFailedError); Bedrock
    cannot delete it yet, so the failure handler tags it for the expiry cleanup."""
    later = utc_now() + timedelta(days=1)
    monkeypatch.setattr(workflow_serving, "utc_now", lambda: later)
    run = Run(platform, definition, bedrock_manifest(serving={"mode": "on_demand"}))
    run.expect_deployment(["Creating"])
    run.expect_busy_deletion()
    outcome = run.execute()
    assert outcome.status == "FAILED" and outcome.error == "DeploymentFailedError"
    assert "is still Creating after" in outcome.cause
    assert outcome.path[-3:] == [States.CHECK_DEPLOYMENT, States.HANDLE_FAILURE, States.FAILED]
    assert run.record.failure["cleanup"] == [HANDED_OVER]

"""On-demand serving outside the state machine: the eligibility table, the manifest's serving
mode, request shapes (Stubber with botocore's Bedrock model) and the expiry cleanup and
failure cleanup of custom model deployments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY

from finetuning.aws_jobs import on_demand
from finetuning.backends.bedrock_inference import BedrockInference
from finetuning.jobs import CustomModelDeploymentConfig
from finetuning.orchestration import bedrock, tags
from finetuning.orchestration.cleanup import DEPLOYMENT, WARNED_AT, clean_up_expired
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import ManifestError, ServingResourceBusyError
from finetuning.orchestration.failures import remove_partial_resources
from finetuning.orchestration.manifest import ServingMode, parse_manifest
from finetuning.orchestration.records import JobRecord, JobStatus, JobTable, timestamp
from finetuning.orchestration.workflow_serving import serving_mode
from tests.support.platform_fakes import (
    ACCOUNT,
    DATA_BUCKET,
    JOB_TABLE,
    PREFIX,
    REGION,
    Platform,
    Routed,
    bedrock_manifest,
    client,
    factory_with,
    stubbed,
)

TEST_SET = f"s3://{DATA_BUCKET}/training-data/processed/support/test.jsonl"
EVALUATION = {"test_set_uri": TEST_SET, "quality_gate": {"min": {"accuracy": 0.8}}}
MODEL_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abc123"
DEPLOYMENT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdef123456"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"


# -- the docs' conditions -------------------------------------------------------------------


def test_eligibility_table_is_the_documented_one() -> None:
    assert on_demand.ON_DEMAND_BASE_MODELS == {
        "amazon.nova-micro": "Amazon Nova Micro",
        "amazon.nova-lite": "Amazon Nova Lite",
        "amazon.nova-pro": "Amazon Nova Pro",
    }
    assert on_demand.ON_DEMAND_REGIONS == ("us-east-1", "us-west-2")
    assert on_demand.ON_DEMAND_CUSTOMIZATION_TYPES == (
        "FINE_TUNING",
        "DISTILLATION",
        "CONTINUED_PRE_TRAINING",
    )
    assert date(2025, 7, 16) == on_demand.CUSTOMIZED_ON_OR_AFTER


@pytest.mark.parametrize(
    ("base_model", "customization", "extra", "reason"),
    [
        ("amazon.nova-lite-v1:0:300k", "FINE_TUNING", {}, None),
        ("amazon.nova-micro-v1:0:128k", "DISTILLATION", {"region": "us-west-2"}, None),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0:300k",
            "CONTINUED_PRE_TRAINING",
            {"region": "us-east-1", "customized_at": datetime(2025, 7, 16, tzinfo=UTC)},
            None,
        ),
        ("amazon.nova-2-lite-v1:0:256k", "FINE_TUNING", {}, "not one Bedrock deploys"),
        (LLAMA, "FINE_TUNING", {}, "not one Bedrock deploys"),
        ("amazon.nova-lite-v1:0:300k", "REINFORCEMENT_FINE_TUNING", {}, "customization type"),
        ("amazon.nova-lite-v1:0:300k", "FINE_TUNING", {"region": "eu-west-1"}, "Region"),
        (
            "amazon.nova-lite-v1:0:300k",
            "FINE_TUNING",
            {"customized_at": datetime(2025, 7, 15, 23, 0, tzinfo=UTC)},
            "customized on 2025-07-15",
        ),
    ],
)
def test_ineligibility(
    base_model: str, customization: str, extra: dict[str, Any], reason: str | None
) -> None:
    found = on_demand.ineligibility(base_model, customization, **extra)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


# -- the manifest's serving mode ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        ({}, ServingMode.NONE),  # nothing evaluated, nothing asked: nothing served
        ({"evaluation": EVALUATION}, ServingMode.ON_DEMAND),  # the default when eligible
        ({"serving": {"on_demand": {}}}, ServingMode.ON_DEMAND),
        ({"serving": {"provisioned_throughput": {}}, "evaluation": EVALUATION}, "pt"),
        ({"serving": {"mode": "provisioned_throughput", "provisioned_throughput": {}}}, "pt"),
        ({"serving": {"mode": "none"}}, ServingMode.NONE),
    ],
)
def test_serving_mode_default_and_choices(overrides: dict[str, Any], mode: Any) -> None:
    expected = ServingMode.PROVISIONED_THROUGHPUT if mode == "pt" else mode
    assert parse_manifest(bedrock_manifest(**overrides)).serving_mode == expected


def test_existing_manifests_keep_their_job_ids() -> None:
    """The new fields are left out of the spec when unset (the job id's input)."""
    spec = parse_manifest(bedrock_manifest(serving={"provisioned_throughput": {}})).to_spec()
    assert spec["serving"] == {
        "provisioned_throughput": {"model_units": 1, "commitment": "none", "keep": False}
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"base_model": LLAMA, "serving": {"mode": "on_demand"}},
            f"serving on_demand is not possible: base model {LLAMA} is not one Bedrock "
            "deploys on demand after customization (supported: Amazon Nova Micro, Amazon "
            "Nova Lite, Amazon Nova Pro); use serving.mode provisioned_throughput (billed per "
            "hour) instead",
        ),
        (
            {"base_model": LLAMA, "hyperparameters": {}, "evaluation": EVALUATION},
            f"evaluation.test_set_uri needs the tuned model served: a custom model answers "
            "only through an on-demand deployment or provisioned throughput, which the "
            "workflow creates before evaluating (and deletes when the gate fails); base model "
            f"{LLAMA} is not one Bedrock deploys on demand after customization (supported: "
            "Amazon Nova Micro, Amazon Nova Lite, Amazon Nova Pro), so add "
            "serving.provisioned_throughput",
        ),
        (
            {"serving": {"mode": "none"}, "evaluation": EVALUATION},
            "serving.mode is none: use on_demand or provisioned_throughput",
        ),
        (
            {"serving": {"on_demand": {}, "provisioned_throughput": {}}},
            "give either serving.provisioned_throughput or serving.on_demand, not both",
        ),
        (
            {"serving": {"mode": "none", "on_demand": {}}},
            "serving.on_demand does not apply to serving.mode none",
        ),
        (
            {"serving": {"mode": "provisioned_throughput"}},
            "serving.mode provisioned_throughput needs serving.provisioned_throughput",
        ),
        ({"serving": {"mode": "always"}}, "serving.mode"),
        ({"serving": {"on_demand": {"expires_after_hours": 0}}}, "expires_after_hours"),
    ],
)
def test_ineligible_or_contradictory_serving_is_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(bedrock_manifest(**overrides))
    assert message in str(raised.value)


def test_sagemaker_jobs_take_no_serving_section() -> None:
    from tests.support.platform_fakes import sagemaker_manifest

    with pytest.raises(ManifestError, match=r"serving\.mode applies only to the bedrock backend"):
        parse_manifest(sagemaker_manifest(serving={"mode": "on_demand"}))


def test_the_region_is_checked_where_it_is_known() -> None:
    manifest = parse_manifest(bedrock_manifest(evaluation=EVALUATION))
    assert serving_mode(manifest, "us-west-2") == ServingMode.ON_DEMAND
    with pytest.raises(ManifestError, match="Region ap-southeast-2 has no on-demand"):
        serving_mode(manifest, "ap-southeast-2")
    throughput = parse_manifest(bedrock_manifest(serving={"provisioned_throughput": {}}))
    assert serving_mode(throughput, "ap-southeast-2") == ServingMode.PROVISIONED_THROUGHPUT


# -- request shapes -------------------------------------------------------------------------


def test_one_request_builder_for_the_library_and_the_workflow() -> None:
    """The workflow's request and the library's BedrockInference request come from the same
    builder; both pass botocore's validation of CreateCustomModelDeployment."""
    serving_tags = {tags.PLATFORM: PREFIX, tags.JOB_ID: "support-bot-1234"}
    request = bedrock.deployment_request(
        job_id="support-bot-1234", model_arn=MODEL_ARN, serving_tags=serving_tags
    )
    assert request == {
        "modelDeploymentName": "support-bot-1234-od",
        "modelArn": MODEL_ARN,
        "description": "On-demand deployment of fine-tuning job support-bot-1234",
        "tags": tags.as_key_value_list(serving_tags),
        "clientRequestToken": "support-bot-1234-od",
    }
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_response(
        "create_custom_model_deployment", {"customModelDeploymentArn": DEPLOYMENT_ARN}, request
    )
    library = {**request, "description": "mine"}
    stubber.add_response(
        "create_custom_model_deployment", {"customModelDeploymentArn": DEPLOYMENT_ARN}, library
    )
    with stubber:
        assert bedrock.create_deployment(bedrock_client, request) == DEPLOYMENT_ARN
        result = BedrockInference(bedrock_client).create_deployment(
            CustomModelDeploymentConfig(
                model_arn=MODEL_ARN,
                deployment_name="support-bot-1234-od",
                description="mine",
                tags=serving_tags,
                client_request_token="support-bot-1234-od",
            )
        )
    stubber.assert_no_pending_responses()
    assert result.deployment_arn == DEPLOYMENT_ARN


def test_status_and_deletion_requests() -> None:
    bedrock_client, stubber = stubbed("bedrock")
    identifier = {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
    stubber.add_response(
        "get_custom_model_deployment",
        {
            "customModelDeploymentArn": DEPLOYMENT_ARN,
            "modelDeploymentName": "d",
            "modelArn": MODEL_ARN,
            "createdAt": datetime.now(UTC),
            "status": "Failed",
            "failureMessage": "quota",
        },
        identifier,
    )
    stubber.add_response("delete_custom_model_deployment", {}, identifier)
    stubber.add_client_error(
        "delete_custom_model_deployment",
        service_error_code="ResourceNotFoundException",
        expected_params=identifier,
    )
    with stubber:
        assert bedrock.deployment_status(bedrock_client, DEPLOYMENT_ARN) == ("Failed", "quota")
        assert bedrock.delete_deployment(bedrock_client, DEPLOYMENT_ARN) is True
        assert bedrock.delete_deployment(bedrock_client, DEPLOYMENT_ARN) is False
    stubber.assert_no_pending_responses()


# -- cleanup ----------------------------------------------------------------------------------


def _clients(bedrock_client: Any, operations: set[str]) -> Clients:
    return Clients(
        REGION, factory_with({"bedrock": Routed(client("bedrock"), bedrock_client, operations)})
    )


def test_expiry_cleanup_warns_then_deletes_deployments(platform: Platform) -> None:
    now = datetime.now(UTC)
    table = JobTable(platform.dynamodb, JOB_TABLE)
    table.register(
        JobRecord(job_id="job-1", job_name="j", backend="bedrock", base_model="m", spec={})
    )
    platform_tags = {tags.PLATFORM: PREFIX, tags.JOB_ID: "job-1"}
    deployments = {
        "old": {
            **platform_tags,
            tags.EXPIRES_AT: timestamp(now - timedelta(hours=1)),
            WARNED_AT: timestamp(now - timedelta(hours=7)),
        },
        "soon": {**platform_tags, tags.EXPIRES_AT: timestamp(now + timedelta(hours=2))},
        "kept": {
            **platform_tags,
            tags.EXPIRES_AT: timestamp(now - timedelta(hours=1)),
            tags.KEEP: tags.KEEP_VALUE,
        },
        "others": {tags.EXPIRES_AT: timestamp(now - timedelta(hours=1))},
    }

    def arn(name: str) -> str:
        return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/{name}"

    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_response("list_provisioned_model_throughputs", {"provisionedModelSummaries": []})
    stubber.add_response(
        "list_custom_model_deployments",
        {
            "modelDeploymentSummaries": [
                {
                    "customModelDeploymentArn": arn(name),
                    "customModelDeploymentName": name,
                    "modelArn": MODEL_ARN,
                    "createdAt": now,
                    "status": "Active",
                }
                for name in deployments
            ]
        },
        {},
    )
    for name, resource_tags in deployments.items():
        stubber.add_response(
            "list_tags_for_resource",
            {"tags": tags.as_key_value_list(resource_tags)},
            {"resourceARN": arn(name)},
        )
    # In list order: "old" (expired, warned) is deleted, "soon" warned and marked.
    stubber.add_response(
        "delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": arn("old")}
    )
    stubber.add_response(
        "tag_resource",
        {},
        {"resourceARN": arn("soon"), "tags": [{"key": WARNED_AT, "value": ANY}]},
    )
    operations = {
        "get_paginator",
        "list_provisioned_model_throughputs",
        "list_custom_model_deployments",
        "list_tags_for_resource",
        "delete_custom_model_deployment",
        "tag_resource",
    }
    env = Environment(platform.environment)
    with stubber:
        report = clean_up_expired(
            env=env, table=table, clients=_clients(bedrock_client, operations)
        )
    stubber.assert_no_pending_responses()

    def names(action: str) -> set[str]:
        return {entry["arn"].rsplit("/", 1)[1] for entry in report.get(action, [])}

    assert names("delete") == {"old"} and names("warn") == {"soon"}
    assert names("keep") == {"kept"}
    assert {entry["kind"] for entry in report["delete"]} == {DEPLOYMENT}
    notes = platform.notifications()
    assert sorted(n["kind"] for n in notes) == ["expired", "expiry-warning"]
    assert any("The custom model deployment old expired at" in n["message"] for n in notes)
    assert any("The custom model deployment soon expires at" in n["message"] for n in notes)
    assert table.require("job-1").serving["deleted_at"]


def test_failure_cleanup_deletes_the_runs_deployment_once(platform: Platform) -> None:
    record = JobRecord(
        job_id="job-2",
        job_name="j",
        backend="bedrock",
        base_model="m",
        spec={},
        serving={"mode": "on_demand", "deployment_arn": DEPLOYMENT_ARN, "keep": False},
    )
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_response(
        "delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
    )
    clients = _clients(bedrock_client, {"delete_custom_model_deployment"})
    with stubber:
        assert remove_partial_resources(record, clients) == [
            f"deleted custom model deployment {DEPLOYMENT_ARN}"
        ]
    stubber.assert_no_pending_responses()
    # Already deleted by the expiry cleanup: nothing is called.
    record.serving = {**record.serving, "deleted_at": timestamp(datetime.now(UTC))}
    assert remove_partial_resources(record, clients) == []


def test_deployment_error_outside_not_found_is_raised() -> None:
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_client_error(
        "delete_custom_model_deployment", service_error_code="ValidationException"
    )
    with stubber, pytest.raises(bedrock_client.exceptions.ClientError):
        bedrock.delete_deployment(bedrock_client, DEPLOYMENT_ARN)


# -- deletion refused while the resource is still being created -------------------------------

THROUGHPUT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefghijkl"


def test_conflict_on_deletion_is_a_busy_resource_not_a_failure() -> None:
    """DeleteCustomModelDeployment and DeleteProvisionedModelThroughput both list
    ConflictException (API reference, Errors); it becomes ServingResourceBusyError."""
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_client_error(
        "delete_custom_model_deployment",
        service_error_code="ConflictException",
        service_message="Deployment is in Creating state",
        expected_params={"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
    )
    stubber.add_client_error(
        "delete_provisioned_model_throughput",
        service_error_code="ConflictException",
        expected_params={"provisionedModelId": THROUGHPUT_ARN},
    )
    with stubber:
        with pytest.raises(ServingResourceBusyError, match="Creating state") as busy:
            bedrock.delete_deployment(bedrock_client, DEPLOYMENT_ARN)
        assert f"custom model deployment {DEPLOYMENT_ARN}" in str(busy.value)
        with pytest.raises(ServingResourceBusyError, match="provisioned throughput"):
            bedrock.delete_throughput(bedrock_client, THROUGHPUT_ARN)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("serving", "operation", "arn", "kind"),
    [
        (
            {"deployment_arn": DEPLOYMENT_ARN},
            "delete_custom_model_deployment",
            DEPLOYMENT_ARN,
            "custom model deployment",
        ),
        (
            {"provisioned_model_arn": THROUGHPUT_ARN},
            "delete_provisioned_model_throughput",
            THROUGHPUT_ARN,
            "provisioned throughput",
        ),
    ],
)
def test_failure_cleanup_hands_a_busy_resource_to_the_expiry_cleanup(
    serving: dict[str, Any], operation: str, arn: str, kind: str
) -> None:
    """Tagged expired and warned (the failure notification is the warning): the next
    cleanup pass deletes it; the failure handler itself does not fail."""
    record = JobRecord(
        job_id="job-3",
        job_name="j",
        backend="bedrock",
        base_model="m",
        spec={},
        serving={**serving, "keep": False},
    )
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_client_error(operation, service_error_code="ConflictException")
    stubber.add_response(
        "tag_resource",
        {},
        {
            "resourceARN": arn,
            "tags": [{"key": tags.EXPIRES_AT, "value": ANY}, {"key": WARNED_AT, "value": ANY}],
        },
    )
    with stubber:
        removed = remove_partial_resources(
            record, _clients(bedrock_client, {operation, "tag_resource"})
        )
    stubber.assert_no_pending_responses()
    assert removed == [
        f"left {kind} {arn} to the expiry cleanup: Bedrock cannot delete it yet (still being "
        f"created); tagged {tags.EXPIRES_AT}, it is deleted on the cleanup's next run"
    ]


def test_expiry_cleanup_defers_a_busy_deletion_and_deletes_it_on_the_next_pass(
    platform: Platform,
) -> None:
    now = datetime.now(UTC)
    table = JobTable(platform.dynamodb, JOB_TABLE)
    table.register(
        JobRecord(job_id="job-1", job_name="j", backend="bedrock", base_model="m", spec={})
    )
    handed_over = {
        tags.PLATFORM: PREFIX,
        tags.JOB_ID: "job-1",
        tags.EXPIRES_AT: timestamp(now - timedelta(minutes=5)),
        WARNED_AT: timestamp(now - timedelta(minutes=5)),
    }
    operations = {
        "get_paginator",
        "list_provisioned_model_throughputs",
        "list_custom_model_deployments",
        "list_tags_for_resource",
        "delete_custom_model_deployment",
    }
    env = Environment(platform.environment)

    def cleanup_pass(status: str, *, deletion_conflicts: bool) -> dict[str, Any]:
        bedrock_client, stubber = stubbed("bedrock")
        stubber.add_response(
            "list_provisioned_model_throughputs", {"provisionedModelSummaries": []}
        )
        summary = {
            "customModelDeploymentArn": DEPLOYMENT_ARN,
            "customModelDeploymentName": "job-1-od",
            "modelArn": MODEL_ARN,
            "createdAt": now,
            "status": status,
        }
        stubber.add_response(
            "list_custom_model_deployments", {"modelDeploymentSummaries": [summary]}, {}
        )
        stubber.add_response(
            "list_tags_for_resource",
            {"tags": tags.as_key_value_list(handed_over)},
            {"resourceARN": DEPLOYMENT_ARN},
        )
        expected = {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
        if deletion_conflicts:
            stubber.add_client_error(
                "delete_custom_model_deployment",
                service_error_code="ConflictException",
                expected_params=expected,
            )
        else:
            stubber.add_response("delete_custom_model_deployment", {}, expected)
        with stubber:
            report = clean_up_expired(
                env=env, table=table, clients=_clients(bedrock_client, operations)
            )
        stubber.assert_no_pending_responses()
        return report

    first = cleanup_pass("Creating", deletion_conflicts=True)
    assert "delete" not in first
    (deferred,) = first["deferred"]
    assert deferred["arn"] == DEPLOYMENT_ARN and "cannot delete" in deferred["reason"]
    assert platform.notifications() == []
    assert "deleted_at" not in (table.require("job-1").serving or {})

    second = cleanup_pass("Active", deletion_conflicts=False)
    assert [entry["arn"] for entry in second["delete"]] == [DEPLOYMENT_ARN]
    assert "deferred" not in second
    (note,) = platform.notifications()
    assert note["kind"] == "expired"
    assert table.require("job-1").serving["deleted_at"]


def test_expiry_cleanup_adopts_a_failed_runs_deployment_it_was_never_told_about(
    platform: Platform,
) -> None:
    """The job failed and its record names no deployment (the function that created it
    failed before recording it): the deployment, tagged with the job, gets an expiry one
    warning window ahead and a warning now; the normal policy deletes it after that."""
    now = datetime.now(UTC)
    table = JobTable(platform.dynamodb, JOB_TABLE)
    table.register(
        JobRecord(job_id="job-9", job_name="j", backend="bedrock", base_model="m", spec={})
    )
    table.finish("job-9", JobStatus.FAILED, failure={"error": "RetryableServiceError"})
    bedrock_client, stubber = stubbed("bedrock")
    stubber.add_response("list_provisioned_model_throughputs", {"provisionedModelSummaries": []})
    summary = {
        "customModelDeploymentArn": DEPLOYMENT_ARN,
        "customModelDeploymentName": "job-9-od",
        "modelArn": MODEL_ARN,
        "createdAt": now,
        "status": "Active",
    }
    stubber.add_response("list_custom_model_deployments", {"modelDeploymentSummaries": [summary]})
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": tags.as_key_value_list({tags.PLATFORM: PREFIX, tags.JOB_ID: "job-9"})},
        {"resourceARN": DEPLOYMENT_ARN},
    )
    stubber.add_response(
        "tag_resource",
        {},
        {
            "resourceARN": DEPLOYMENT_ARN,
            "tags": [{"key": tags.EXPIRES_AT, "value": ANY}, {"key": WARNED_AT, "value": ANY}],
        },
    )
    operations = {
        "get_paginator",
        "list_provisioned_model_throughputs",
        "list_custom_model_deployments",
        "list_tags_for_resource",
        "tag_resource",
    }
    env = Environment(platform.environment)
    with stubber:
        report = clean_up_expired(
            env=env, table=table, clients=_clients(bedrock_client, operations), now=now
        )
    stubber.assert_no_pending_responses()
    (adopted,) = report["adopt"]
    assert adopted["arn"] == DEPLOYMENT_ARN and "its job failed" in adopted["reason"]
    (warning,) = platform.notifications()
    assert warning["kind"] == "expiry-warning"
    deadline = timestamp(now + timedelta(hours=env.expiry_warning_hours))
    assert f"expires at {deadline} and will then be deleted" in warning["message"]

"""The expiry policy (a pure function) and one cleanup pass over throughput and endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY

from finetuning.orchestration import tags
from finetuning.orchestration.cleanup import (
    THROUGHPUT,
    WARNED_AT,
    Action,
    ServingResource,
    clean_up_expired,
    decide,
)
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.records import JobRecord, JobTable, timestamp
from tests.support.platform_fakes import (
    JOB_TABLE,
    PREFIX,
    REGION,
    THROUGHPUT_OPERATIONS,
    Platform,
    Routed,
    client,
    factory_with,
    stubbed,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WARNING = timedelta(hours=6)


def resource(expires_in: timedelta | None, *, warned: bool = False, **extra: Any):
    resource_tags = {tags.PLATFORM: PREFIX, tags.JOB_ID: "job-1"}
    if expires_in is not None:
        resource_tags[tags.EXPIRES_AT] = timestamp(NOW + expires_in)
    if warned:
        resource_tags[WARNED_AT] = timestamp(NOW - timedelta(hours=1))
    resource_tags.update(extra.pop("tags", {}))
    return ServingResource(kind=THROUGHPUT, name="pt", arn="arn:pt", tags=resource_tags, **extra)


@pytest.mark.parametrize(
    ("candidate", "action"),
    [
        (resource(timedelta(days=2)), Action.NONE),
        (resource(timedelta(hours=5)), Action.WARN),
        (resource(timedelta(hours=5), warned=True), Action.NONE),
        (resource(-timedelta(hours=1)), Action.WARN),  # never warned: warn first
        (resource(-timedelta(hours=1), warned=True), Action.DELETE),
        (resource(None), Action.NONE),
        (resource(-timedelta(hours=1), warned=True, tags={tags.KEEP: "true"}), Action.KEEP),
        (resource(-timedelta(hours=1), warned=True, tags={tags.KEEP: "TRUE "}), Action.KEEP),
        (
            resource(-timedelta(hours=1), warned=True, tags={tags.PLATFORM: "other-env"}),
            Action.IGNORE,
        ),
        (
            resource(-timedelta(hours=1), commitment_ends_at=NOW + timedelta(days=20)),
            Action.BLOCKED,
        ),
        (
            resource(-timedelta(hours=1), warned=True, commitment_ends_at=NOW + timedelta(days=20)),
            Action.NONE,
        ),
        (
            resource(-timedelta(hours=1), warned=True, commitment_ends_at=NOW - timedelta(days=1)),
            Action.DELETE,
        ),
    ],
)
def test_decide(candidate: ServingResource, action: Action) -> None:
    decision = decide(candidate, resource_prefix=PREFIX, now=NOW, warning=WARNING)
    assert decision.action is action, decision.reason


@pytest.mark.parametrize(
    ("candidate", "job_status", "action"),
    [
        (resource(None), "failed", Action.ADOPT),
        (resource(None), "cancelled", Action.ADOPT),
        (resource(None), "completed", Action.NONE),
        (resource(None), "running", Action.NONE),
        (resource(None), None, Action.NONE),
        (resource(None, tags={tags.KEEP: "true"}), "failed", Action.KEEP),
        (resource(None, tags={tags.PLATFORM: "other-env"}), "failed", Action.IGNORE),
        (resource(-timedelta(hours=1), warned=True), "failed", Action.DELETE),
    ],
)
def test_a_failed_runs_resource_without_expiry_is_adopted(
    candidate: ServingResource, job_status: str | None, action: Action
) -> None:
    """What a failed run's own cleanup missed (its ARN never reached the job record) gets an
    expiry instead of living on untagged."""
    decision = decide(
        candidate, resource_prefix=PREFIX, now=NOW, warning=WARNING, job_status=job_status
    )
    assert decision.action is action, decision.reason


def test_cleanup_pass_warns_deletes_and_keeps(platform: Platform) -> None:
    now = datetime.now(UTC)
    sagemaker = client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
        PrimaryContainer={"Image": "img"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "m",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    platform_tags = {tags.PLATFORM: PREFIX, tags.JOB_ID: "job-1"}
    endpoints = {
        "expired": {
            **platform_tags,
            tags.EXPIRES_AT: timestamp(now - timedelta(hours=1)),
            WARNED_AT: timestamp(now - timedelta(hours=7)),
        },
        "soon": {**platform_tags, tags.EXPIRES_AT: timestamp(now + timedelta(hours=2))},
        "kept": {
            **platform_tags,
            tags.EXPIRES_AT: timestamp(now - timedelta(hours=1)),
            tags.KEEP: "true",
        },
        "someone-elses": {tags.EXPIRES_AT: timestamp(now - timedelta(hours=1))},
    }
    for name, endpoint_tags in endpoints.items():
        sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName="c",
            Tags=[{"Key": k, "Value": v} for k, v in endpoint_tags.items()],
        )
    table = JobTable(platform.dynamodb, JOB_TABLE)
    table.register(
        JobRecord(job_id="job-1", job_name="j", backend="sagemaker", base_model="m", spec={})
    )

    bedrock, stubber = stubbed("bedrock")
    arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"
    stubber.add_response(
        "list_provisioned_model_throughputs",
        {
            "provisionedModelSummaries": [
                {
                    "provisionedModelName": "job-1-pt",
                    "provisionedModelArn": arn,
                    "modelArn": arn,
                    "desiredModelArn": arn,
                    "foundationModelArn": arn,
                    "modelUnits": 1,
                    "desiredModelUnits": 1,
                    "status": "InService",
                    "creationTime": now,
                    "lastModifiedTime": now,
                }
            ]
        },
    )
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": tags.as_key_value_list({**platform_tags, tags.EXPIRES_AT: timestamp(now)})},
        {"resourceARN": arn},
    )
    # No on-demand deployments here (test_on_demand_serving.py has them).
    stubber.add_response("list_custom_model_deployments", {"modelDeploymentSummaries": []})
    stubber.add_response(
        "tag_resource", {}, {"resourceARN": arn, "tags": [{"key": WARNED_AT, "value": ANY}]}
    )
    routed = Routed(client("bedrock"), bedrock, THROUGHPUT_OPERATIONS)
    clients = Clients(REGION, factory_with({"bedrock": routed}))
    env = Environment(platform.environment)
    with stubber:
        report = clean_up_expired(env=env, table=table, clients=clients)
    stubber.assert_no_pending_responses()

    def names(action: str) -> set[str]:
        return {entry["arn"].rsplit("/", 1)[1] for entry in report.get(action, [])}

    assert names("delete") == {"expired"}
    assert names("warn") == {"soon", "abcdefghijkl"}  # the throughput expired unwarned
    assert names("keep") == {"kept"}
    assert "ignore" not in report
    remaining = {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}
    assert remaining == {"soon", "kept", "someone-elses"}
    soon_arn = next(
        e["EndpointArn"]
        for e in sagemaker.list_endpoints()["Endpoints"]
        if e["EndpointName"] == "soon"
    )
    assert WARNED_AT in tags.from_key_value_list(sagemaker.list_tags(ResourceArn=soon_arn)["Tags"])
    kinds = sorted(n["kind"] for n in platform.notifications())
    assert kinds == ["expired", "expiry-warning", "expiry-warning"]
    assert table.require("job-1").serving["deleted_at"]

"""The event samples the AWS docs publish (tests/fixtures/events) against the platform's
EventBridge rules, as synthesized, and against the handlers that read them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto.events.models import EventPattern

from finetuning.approved_model_deployment import PackageStateChange
from finetuning.orchestration.waiting import parse_job_event
from finetuning.platform import JOB_MANIFESTS_PREFIX
from stacks.settings import load_settings
from stacks.storage_stack import bucket_name
from tests.fixtures.events import (
    documentation,
    documented_event,
    names,
    sample_for,
    with_detail,
)
from tests.support.platform_fakes import LambdaContext, Platform, load_handler
from tests.support.synth import SynthResult, dev, synth  # noqa: F401  (session fixtures)

# Starts the jsii runtime: kept on the worker of the workflow simulations (`--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("orchestration-cdk")

ACCOUNT, REGION = "123456789012", "us-east-1"  # of the platform under test (dev)

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources"}


def test_every_sample_is_a_documented_eventbridge_event() -> None:
    assert len(names()) == 9
    for name in names():
        assert documentation(name).startswith("https://docs.aws.amazon.com/"), name
        event = documented_event(name)
        assert ENVELOPE | {"detail"} == set(event), name
        assert isinstance(event["source"], str) and isinstance(event["detail"], dict), name


# -- rules ------------------------------------------------------------------------------------


def _resolve(value: Any, refs: dict[str, str]) -> Any:
    """A rule's EventPattern with its {"Ref": ...} tokens replaced by what they name."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(_resolve(part, refs) for part in parts)
        return {key: _resolve(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, refs) for item in value]
    return value


def _rules(result: SynthResult) -> dict[str, dict[str, Any]]:
    """Every rule with an event pattern, by logical id, its pattern resolved."""
    refs = {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "AWS::Partition": "aws",
    }
    refs |= {
        logical_id: (
            f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:"
            f"{resource['Properties']['StateMachineName']}"
        )
        for _, logical_id, resource in result.resources("AWS::StepFunctions::StateMachine")
    }
    return {
        logical_id: _resolve(resource["Properties"]["EventPattern"], refs)
        for _, logical_id, resource in result.resources("AWS::Events::Rule")
        if "EventPattern" in resource["Properties"]
    }


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """moto's event-pattern matcher, the one its PutEvents routes events to rule targets
    with (prefix, anything-but, numeric, exists; moto has no TestEventPattern)."""
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _platform_names() -> dict[str, str]:
    settings = load_settings("dev")
    prefix = settings.resource_prefix
    data_bucket = bucket_name(settings, "data")
    return {
        # bucket_name() names the account with a token; the deployed name has the account.
        "data_bucket": re.sub(r"\$\{Token\[AWS\.AccountId\.\d+\]\}", ACCOUNT, data_bucket),
        "group": f"{prefix}-models",
        "endpoint": f"{prefix}-support-bot",
        "state_machine": f"arn:aws:states:us-east-1:123456789012:stateMachine:{prefix}-finetuning",
    }


def _about_platform(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The documented sample about this platform's resources: only the values that name
    a resource change, every documented field stays."""
    detail_type = event["detail-type"]
    changes: dict[str, Any] = {}
    if detail_type == "Object Created":
        key = f"{JOB_MANIFESTS_PREFIX}support.yaml"
        changes = {"bucket": {"name": names["data_bucket"]}, "object": {"key": key}}
    elif detail_type == "Step Functions Execution Status Change":
        changes = {"stateMachineArn": names["state_machine"]}
    elif detail_type == "SageMaker Model Package State Change":
        changes = {"ModelPackageGroupName": names["group"], "ModelApprovalStatus": "Approved"}
    elif detail_type == "SageMaker Endpoint State Change":
        changes = {"EndpointName": names["endpoint"]}
    return with_detail(event, changes)


def test_each_rule_matches_the_documented_sample_of_its_event(dev: SynthResult) -> None:  # noqa: F811
    rules = _rules(dev)
    names = _platform_names()
    assert len(rules) == 6, sorted(rules)
    for logical_id, pattern in rules.items():
        (source,) = pattern["source"]
        (detail_type,) = pattern["detail-type"]
        statuses = pattern.get("detail", {}).get("status") or [None]
        for status in statuses:
            sample = sample_for(source, detail_type, status)
            assert sample, f"{logical_id}: the docs publish no sample of {detail_type!r}"
            event = _about_platform(documented_event(sample), names)
            assert _matches(pattern, event), (logical_id, sample, pattern)


@pytest.mark.parametrize(
    ("detail_type", "other"),
    [
        ("Object Created", {"object": {"key": "training-data/raw/x.jsonl"}}),
        ("Step Functions Execution Status Change", {"status": "SUCCEEDED"}),
        ("SageMaker Model Package State Change", {"ModelApprovalStatus": "Rejected"}),
        ("SageMaker Endpoint State Change", {"EndpointName": "someone-elses-endpoint"}),
        ("SageMaker Training Job State Change", {"TrainingJobStatus": "InProgress"}),
    ],
)
def test_rules_leave_out_events_of_other_resources_or_states(
    dev: SynthResult,  # noqa: F811
    detail_type: str,
    other: dict[str, Any],
) -> None:
    (pattern,) = [p for p in _rules(dev).values() if p["detail-type"] == [detail_type]]
    event = _about_platform(
        documented_event(sample_for(pattern["source"][0], detail_type)), _platform_names()
    )
    assert _matches(pattern, event)
    assert not _matches(pattern, with_detail(event, other))


# -- handlers ---------------------------------------------------------------------------------


def test_job_event_parser_reads_the_documented_samples() -> None:
    bedrock = documented_event("bedrock-model-customization-job-state-change")
    job = parse_job_event(bedrock["source"], bedrock["detail-type"], bedrock["detail"])
    assert (job.backend.value, job.job_name, job.backend_status) == (
        "bedrock",
        "abcd-wxyz",
        "Failed",
    )
    training = documented_event("sagemaker-training-job-state-change")
    job = parse_job_event(training["source"], training["detail-type"], training["detail"])
    assert (job.backend.value, job.job_name, job.backend_status) == (
        "sagemaker",
        "89c96cc8-dded-4739-afcc-6f1dc936701d",
        "Completed",
    )
    # Processing jobs are polled (EvaluateOpenModel), not awaited through events.
    processing = documented_event("sagemaker-processing-job-state-change")
    assert (
        parse_job_event(processing["source"], processing["detail-type"], processing["detail"])
        is None
    )


@pytest.mark.parametrize(
    "sample",
    ["bedrock-model-customization-job-state-change", "sagemaker-training-job-state-change"],
)
def test_job_events_function_ignores_jobs_of_others(platform: Platform, sample: str) -> None:
    event = documented_event(sample)
    result = load_handler("job_events").handler(event, LambdaContext())
    assert result == {"action": "ignored", "reason": "not a job of this platform"}


def test_execution_ended_function_ignores_executions_it_does_not_know(platform: Platform) -> None:
    event = documented_event("stepfunctions-execution-timed-out")
    result = load_handler("execution_ended").handler(event, LambdaContext())
    assert result["recorded"] is False


def test_deploy_function_reads_the_documented_approval_event() -> None:
    approval = _about_platform(
        documented_event("sagemaker-model-package-state-change"), _platform_names()
    )
    change = PackageStateChange.from_event(approval)
    assert change.group_name == _platform_names()["group"]
    assert change.approval_status == "Approved"
    assert change.model_package_arn == approval["detail"]["ModelPackageArn"]

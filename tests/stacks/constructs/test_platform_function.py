"""The one function construct (stacks/constructs/platform_function.py): its defaults, its
environment contract, its role with one managed policy, kept logical ids, and the grants
written into that policy."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from stacks.constructs.job_permissions import JobPermissions, JobPermissionsProps
from stacks.constructs.logical_ids import keep_stack_logical_ids
from stacks.constructs.platform_function import (
    BASE_LIBRARY,
    POWERTOOLS_NAMESPACE,
    PlatformFunction,
    PlatformFunctionProps,
)
from tests.support.synth import cdk_context

REGION = "eu-west-1"


def props(**overrides) -> PlatformFunctionProps:
    stack = Stack(App(), "Props")
    values = {
        "folder": "register_job",
        "description": "Puts a job in the job table",
        "key": kms.Key(stack, "Key"),
        "dead_letter_queue": sqs.Queue(stack, "Queue"),
        "log_retention_days": 30,
        "memory_mb": 256,
        "timeout": Duration.seconds(30),
    }
    return PlatformFunctionProps(**{**values, **overrides})


def test_defaults_are_the_orchestration_functions() -> None:
    p = props(environment={"JOB_TABLE_NAME": "jobs"})
    assert POWERTOOLS_NAMESPACE == "FineTuningPlatform"
    assert BASE_LIBRARY == ("platform.py", "settings.py", "aws_jobs", "orchestration", "evaluation")
    assert (p.family, p.library_paths, p.reserved_concurrency, p.layer) == (
        "orchestration",
        BASE_LIBRARY,
        None,
        None,
    )
    assert p.function_environment() == {
        "POWERTOOLS_SERVICE_NAME": "orchestration-register-job",
        "POWERTOOLS_METRICS_NAMESPACE": "FineTuningPlatform",
        "JOB_TABLE_NAME": "jobs",
    }


def test_environment_names_its_service_and_leaves_out_powertools_where_unused() -> None:
    named = props(service_name="p-dev-deploy-endpoint", metrics_namespace="p-dev")
    assert named.function_environment() == {
        "POWERTOOLS_SERVICE_NAME": "p-dev-deploy-endpoint",
        "POWERTOOLS_METRICS_NAMESPACE": "p-dev",
    }
    assert props(powertools=False, environment={"A": "1"}).function_environment() == {"A": "1"}


def test_inconsistent_props_are_refused_naming_the_function() -> None:
    stack = Stack(App(), "Layer")
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "L", "arn:aws:lambda:eu-west-1:017000801446:layer:x:1"
    )
    with pytest.raises(ValueError, match=r"'register_job'.*powertools=False"):
        props(powertools=False, layer=layer)
    with pytest.raises(ValueError, match=r"expected children among Function, LogGroup.*Queue"):
        props(keep_logical_ids={"Queue": "Q"})


@pytest.fixture(scope="module")
def template() -> dict:
    app = App(context=cdk_context())
    stack = Stack(app, "Functions", env={"account": "123456789012", "region": REGION})
    key = kms.Key(stack, "Key")
    queue = sqs.Queue(stack, "DeadLetters")
    common = {
        "key": key,
        "dead_letter_queue": queue,
        "log_retention_days": 30,
        "memory_mb": 256,
        "timeout": Duration.seconds(30),
        "powertools": False,
        "library_paths": (),
    }
    PlatformFunction(
        stack,
        "Named",
        props=PlatformFunctionProps(
            folder="operations_gauges",
            description="named, its log group after it",
            function_name="p-dev-named",
            **common,
        ),
    )
    wrapper = PlatformFunction(
        stack,
        "Kept",
        props=PlatformFunctionProps(
            folder="operations_gauges",
            description="named, keeps its former ids and log group",
            function_name="p-dev-kept",
            name_log_group=False,
            key_only_for_dead_letters=True,
            keep_logical_ids={"Function": "OldFunction", "LogGroup": "OldLogs"},
            **common,
        ),
    )
    # An enclosing keep_stack_logical_ids leaves the kept ids alone when told to.
    keep_stack_logical_ids(wrapper, except_under=[wrapper])
    return app.synth().get_stack_by_name("Functions").template


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_function_runtime_handler_logs_and_order(template: dict) -> None:
    functions = of_type(template, "AWS::Lambda::Function")
    assert "OldFunction" in functions
    for function in functions.values():
        p = function["Properties"]
        assert (p["Runtime"], p["Architectures"], p["Handler"]) == (
            "python3.14",
            ["arm64"],
            "index.handler",
        )
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert p["LoggingConfig"]["LogFormat"] == "JSON"
        assert "TargetArn" in p["DeadLetterConfig"]
        # Only after its own managed policy; the role is implied by the GetAtt.
        (policy,) = function["DependsOn"]
        assert template["Resources"][policy]["Type"] == "AWS::IAM::ManagedPolicy"


def test_log_groups_are_encrypted_kept_and_named_as_asked(template: dict) -> None:
    groups = of_type(template, "AWS::Logs::LogGroup")
    assert set(groups) >= {"OldLogs"}
    names = {k: g["Properties"].get("LogGroupName") for k, g in groups.items()}
    assert names.pop("OldLogs") is None
    assert list(names.values()) == ["/aws/lambda/p-dev-named"]
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]
        assert group["DeletionPolicy"] == "Retain"


def test_role_has_one_managed_policy_with_the_base_statements(template: dict) -> None:
    assert not of_type(template, "AWS::IAM::Policy")
    for role in of_type(template, "AWS::IAM::Role").values():
        assert "Policies" not in role["Properties"]
        assert "ManagedPolicyArns" not in role["Properties"]
    policies = of_type(template, "AWS::IAM::ManagedPolicy")
    assert len(policies) == 2
    key_conditions = {}
    for policy in policies.values():
        by_sid = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
        key_sid = next(sid for sid in by_sid if sid not in {
            "WriteOwnLogs", "WriteTraces", "SendToDeadLetterQueue"
        })  # fmt: skip
        assert len(by_sid) == 4
        key_conditions[key_sid] = by_sid[key_sid].get("Condition")
    assert key_conditions == {
        "UseOrchestrationKey": None,
        "EncryptDeadLetters": {"StringEquals": {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}},
    }


def test_allow_returns_a_grant_of_one_named_statement_in_the_managed_policy() -> None:
    stack = Stack(App(context=cdk_context()), "Grants")
    f = PlatformFunction(stack, "Fn", props=props(folder="operations_gauges", library_paths=()))
    grant = f.allow("ReadReports", ["s3:GetObject"], ["arn:aws:s3:::reports/*"])
    assert isinstance(grant, iam.Grant)
    (statement,) = grant.principal_statements
    assert statement.sid == "ReadReports"
    assert "ReadReports" in json.dumps(stack.resolve(f.policy.document.to_json()))
    with pytest.raises(ValueError, match="'Both' names one statement; the grant carries 2"):
        f.adopt(grant.combine(grant), sid="Both")


def test_job_permissions_return_their_named_statements_as_one_grant() -> None:
    stack = Stack(App(context=cdk_context()), "JobGrants")
    f = PlatformFunction(stack, "Fn", props=props(folder="operations_gauges", library_paths=()))
    permissions = JobPermissions(
        stack,
        props=JobPermissionsProps(
            resource_prefix="p-dev",
            platform_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
            subnet_ids=["subnet-1"],
            security_group_id="sg-1",
            allowed_instance_families=["g5"],
        ),
    )
    grant = permissions.grant_bedrock_jobs(f, create=True, stop=True)
    assert [s.sid for s in grant.principal_statements] == [
        "DescribeBedrockJobs",
        "CreateTaggedBedrockJobs",
        "StopOwnBedrockJobs",
    ]

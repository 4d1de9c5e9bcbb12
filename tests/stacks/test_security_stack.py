"""Security stack: trust conditions, least privilege, no wildcard actions, scoped PassRole."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from tests.support.synth import SynthResult, cdk_context


def policy_statements(result: SynthResult) -> Iterator[tuple[str, dict]]:
    """Every statement of every identity policy (inline or managed) in the platform."""
    for stack, logical_id, resource in result.resources():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield f"{stack}/{logical_id}", statement


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def role(result: SynthResult, prefix: str) -> dict:
    (found,) = [r for _, lid, r in result.resources("AWS::IAM::Role") if lid.startswith(prefix)]
    return found


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_no_wildcard_action_anywhere(synth, environment: str) -> None:
    for where, statement in policy_statements(synth(environment)):
        for action in as_list(statement.get("Action", [])):
            assert action != "*" and not action.endswith(":*"), f"{where}: {action}"


# CDK's own provider that strips the rules from the VPC's default security group runs as
# a Lambda function with AWS's logs-only basic execution policy; no other role may use an
# AWS managed policy (see docs/compliance.md).
CDK_PROVIDER_ROLE = "CustomVpcRestrictDefaultSGCustomResourceProviderRole"
BASIC_EXECUTION = "iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_no_aws_managed_policies(synth, environment: str) -> None:
    for _, logical_id, role_resource in synth(environment).resources("AWS::IAM::Role"):
        arns = json.dumps(role_resource["Properties"].get("ManagedPolicyArns", []))
        assert "FullAccess" not in arns, logical_id
        if logical_id.startswith(CDK_PROVIDER_ROLE):
            assert arns.count(":aws:policy/") == 1 and BASIC_EXECUTION in arns
        else:
            assert ":aws:policy/" not in arns, logical_id


def test_no_pass_role_on_everything(dev: SynthResult) -> None:
    for where, statement in policy_statements(dev):
        if "iam:PassRole" in as_list(statement.get("Action", [])):
            assert "*" not in as_list(statement["Resource"]), where


def test_bedrock_role_trusts_only_this_accounts_customization_jobs(dev: SynthResult) -> None:
    trust = role(dev, "BedrockCustomizationRole")["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
    }
    source_arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]
    assert source_arn == {
        "Fn::Join": [
            "",
            ["arn:aws:bedrock:us-east-1:", {"Ref": "AWS::AccountId"}, ":model-customization-job/*"],
        ]
    }


def test_sagemaker_role_trust_has_source_account(dev: SynthResult) -> None:
    trust = role(dev, "SageMakerExecutionRole")["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_s3_access_is_limited_to_platform_buckets_and_prefixes(dev: SynthResult) -> None:
    allowed_prefixes = (
        "training-data/raw/*",
        "training-data/processed/*",
        "models/*",
        "evaluation/reports/*",
        "jobs/*",
    )
    seen = 0
    for where, statement in policy_statements(dev):
        actions = as_list(statement["Action"])
        if not any(a.startswith("s3:") for a in actions) or statement["Effect"] == "Deny":
            continue
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            assert "llm-finetuning-dev-" in text, f"{where}: {text}"
            if actions != ["s3:ListBucket"]:
                assert text.rstrip('"]}').endswith(allowed_prefixes), f"{where}: {text}"
            seen += 1
    assert seen >= 10


def test_kms_use_is_limited_to_the_platforms_own_keys(dev: SynthResult) -> None:
    key_ids = [lid for _, lid, _ in dev.resources("AWS::KMS::Key")]
    assert len(key_ids) >= 1
    for where, statement in policy_statements(dev):
        if any(a.startswith("kms:") for a in as_list(statement["Action"])):
            resources = json.dumps(statement["Resource"])
            assert statement["Resource"] != "*", where
            assert any(key_id in resources for key_id in key_ids), f"{where}: {resources}"


def test_bedrock_vpc_permissions_are_tag_and_subnet_scoped(dev: SynthResult) -> None:
    statements = {s.get("Sid"): s for w, s in policy_statements(dev) if "BedrockCustomization" in w}
    create = statements["CreateTaggedNetworkInterfaces"]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/BedrockManaged": "true"}}
    manage = statements["ManageOwnNetworkInterfaces"]
    assert manage["Condition"]["StringEquals"] == {"ec2:ResourceTag/BedrockManaged": "true"}
    assert len(manage["Condition"]["ArnEquals"]["ec2:Subnet"]) == 2  # the training subnets


def test_roles_are_discoverable_through_ssm(dev: SynthResult) -> None:
    names = {r["Properties"]["Name"] for _, _, r in dev.resources("AWS::SSM::Parameter")}
    assert all(name.startswith("/llm-finetuning/dev/") for name in names)
    assert names >= {
        "/llm-finetuning/dev/kms/key-arn",
        "/llm-finetuning/dev/buckets/data",
        "/llm-finetuning/dev/buckets/artifacts",
        "/llm-finetuning/dev/buckets/evaluation",
        "/llm-finetuning/dev/buckets/access-logs",
        "/llm-finetuning/dev/roles/sagemaker-execution-arn",
        "/llm-finetuning/dev/roles/bedrock-customization-arn",
        "/llm-finetuning/dev/network/vpc-id",
        "/llm-finetuning/dev/network/training-subnet-ids",
        "/llm-finetuning/dev/network/training-security-group-id",
    }


def test_permissions_boundary_from_settings(synth) -> None:
    boundary = "arn:aws:iam::123456789012:policy/PlatformBoundary"
    result = synth("dev", **{"security.permissions_boundary_arn": boundary})
    roles = list(result.resources("AWS::IAM::Role"))
    assert len(roles) >= 3
    for _, logical_id, role_resource in roles:
        assert role_resource["Properties"]["PermissionsBoundary"] == boundary, logical_id


def test_no_permissions_boundary_by_default(dev: SynthResult) -> None:
    for _, logical_id, role_resource in dev.resources("AWS::IAM::Role"):
        assert "PermissionsBoundary" not in role_resource["Properties"], logical_id


def test_grant_pass_role_is_scoped_to_the_role_and_service() -> None:
    from stacks.platform_stacks import PlatformStacks, platform_environment
    from stacks.settings import load_settings

    settings = load_settings("dev")
    app = App(context=cdk_context())
    platform = PlatformStacks(app, settings=settings, env=platform_environment(settings))
    consumer = Stack(app, "Consumer", env=platform_environment(settings))
    function_role = iam.Role(
        consumer, "StartJobRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
    )
    platform.security.grant_pass_sagemaker_role(function_role)
    platform.security.grant_pass_bedrock_role(function_role)

    (policy,) = Template.from_stack(consumer).find_resources("AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert len(statements) == 2
    services = set()
    for statement in statements:
        assert statement["Action"] == "iam:PassRole"
        assert "Fn::ImportValue" in statement["Resource"]  # one named role, never "*"
        services.add(statement["Condition"]["StringEquals"]["iam:PassedToService"])
    assert services == {"sagemaker.amazonaws.com", "bedrock.amazonaws.com"}

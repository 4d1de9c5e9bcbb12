"""The Bedrock customization role's grants on the distillation teachers, per Region.

The role invokes each teacher the way the docs' table allows it (on demand and/or through its
US cross-Region inference profile,
https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html):
the profile in this account and Region, and the model in each destination Region of the
profile only through that profile
(https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html).
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from stacks.distillation_teachers import DistillationTeacherAccess

ACCOUNT = "123456789012"
US = ("us-east-1", "us-east-2", "us-west-2")


def synthesized(region: str | None) -> tuple[Template, DistillationTeacherAccess]:
    app = App()
    env = Environment(account=ACCOUNT, region=region) if region else None
    stack = Stack(app, "Teachers", env=env)
    role = iam.Role(stack, "BedrockRole", assumed_by=iam.ServicePrincipal("bedrock.amazonaws.com"))
    access = DistillationTeacherAccess(stack, "DistillationTeachers", bedrock_role=role)
    return Template.from_stack(stack), access


def statements(template: Template) -> dict[str, dict[str, Any]]:
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    found = policy["Properties"]["PolicyDocument"]["Statement"]
    return {statement["Sid"]: statement for statement in found}


def arn(resource: str, region: str, account: str = "") -> str:
    return f"arn:aws:bedrock:{region}:{account}:{resource}"


def resolved(value: Any) -> list[str]:
    """Fn::Join of the partition with literal parts, as the literal string(s)."""
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, dict) and "Fn::Join" in item:
            parts = item["Fn::Join"][1]
            item = "".join("aws" if p == {"Ref": "AWS::Partition"} else p for p in parts)
        out.append(item)
    return out


def test_us_east_1_grants_nova_pro_on_demand_and_through_its_us_profile() -> None:
    template, access = synthesized("us-east-1")
    assert [t.model_id for t in access.teachers] == ["amazon.nova-pro-v1:0"]
    found = statements(template)
    assert set(found) == {
        "InvokeDistillationTeachers",
        "InvokeAmazonNovaProProfile",
        "InvokeAmazonNovaProThroughItsProfile",
    }
    profile = arn("inference-profile/us.amazon.nova-pro-v1:0", "us-east-1", ACCOUNT)
    assert resolved(found["InvokeDistillationTeachers"]["Resource"]) == [
        arn("foundation-model/amazon.nova-pro-v1:0", "us-east-1")
    ]
    assert resolved(found["InvokeAmazonNovaProProfile"]["Resource"]) == [profile]
    through = found["InvokeAmazonNovaProThroughItsProfile"]
    assert resolved(through["Resource"]) == [
        arn("foundation-model/amazon.nova-pro-v1:0", region) for region in US
    ]
    condition = through["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"]
    assert resolved(condition) == [profile]
    for statement in found.values():
        assert statement["Action"] == "bedrock:InvokeModel"
        assert statement["Effect"] == "Allow"


def test_us_west_2_grants_the_llama_teachers_in_the_form_the_table_allows() -> None:
    template, _ = synthesized("us-west-2")
    found = statements(template)
    # 405B on demand only, 3.1 70B both, 3.3 70B only through its profile.
    assert resolved(found["InvokeDistillationTeachers"]["Resource"]) == [
        arn("foundation-model/meta.llama3-1-405b-instruct-v1:0", "us-west-2"),
        arn("foundation-model/meta.llama3-1-70b-instruct-v1:0", "us-west-2"),
    ]
    assert set(found) == {
        "InvokeDistillationTeachers",
        "InvokeMetaLlama3170bInstructProfile",
        "InvokeMetaLlama3170bInstructThroughItsProfile",
        "InvokeMetaLlama3370bInstructProfile",
        "InvokeMetaLlama3370bInstructThroughItsProfile",
    }
    assert resolved(found["InvokeMetaLlama3370bInstructProfile"]["Resource"]) == [
        arn("inference-profile/us.meta.llama3-3-70b-instruct-v1:0", "us-west-2", ACCOUNT)
    ]
    assert "anthropic" not in str(found) and "nova" not in str(found)


def test_a_region_without_teachers_gets_no_policy() -> None:
    template, access = synthesized("eu-west-1")
    assert access.policy is None and access.teachers == ()
    assert template.find_resources("AWS::IAM::ManagedPolicy") == {}


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", None])
def test_no_grant_names_a_wildcard_or_a_teacher_bedrock_does_not_take(region) -> None:
    template, _ = synthesized(region)
    text = str(statements(template))
    assert "*" not in text
    assert "nova-premier" not in text and "anthropic" not in text

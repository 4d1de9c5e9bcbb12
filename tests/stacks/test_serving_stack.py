"""The serving stack built beside the foundation stacks in a test App, with the nag gate on.

One synthesis is shared by the module (bundling skipped: assets are not built, so no wheel is
downloaded). Settings use non-default serving values so that the assertions prove they flow
from settings into the template.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template

from finetuning.approved_model_deployment import (
    DEFAULT_INFERENCE_IMAGE_TAG,
    BedrockServingSettings,
    EndpointSettings,
    ServingSettings,
)
from stacks.compliance import add_compliance_gate, suppressions
from stacks.container_images import INFERENCE_DOCKERFILE
from stacks.platform_stacks import PlatformStacks, platform_environment
from stacks.settings import load_settings

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# One worker synthesizes once for the whole module (`--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("serving-synth")

ROOT = Path(__file__).resolve().parents[2]
SERVING = ServingSettings(
    approval_status="PendingManualApproval",
    endpoint=EndpointSettings(
        instance_type="ml.g5.4xlarge",
        initial_instance_count=2,
        min_capacity=2,
        max_capacity=6,
        data_capture_sampling_percentage=35,
        expire_after_hours=72,
    ),
    bedrock=BedrockServingSettings(mode="on_demand"),
)


@pytest.fixture(scope="module")
def synthesized():
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = App(context={**context, "aws:cdk:bundling-stacks": []})
    settings = load_settings("dev").model_copy(update={"serving": SERVING})
    platform = PlatformStacks(app, settings=settings, env=platform_environment(settings))
    serving = platform.serving
    add_compliance_gate(app)
    # Raises if any nag rule of the four packs has an unsuppressed finding.
    assembly = app.synth()
    return serving, platform, Template.from_stack(serving), assembly


def functions(template: Template) -> dict[str, dict]:
    return template.find_resources("AWS::Lambda::Function")


def function_named(template: Template, suffix: str) -> dict:
    (function,) = [
        f
        for f in functions(template).values()
        if f["Properties"]["FunctionName"] == f"llm-finetuning-dev-{suffix}"
    ]
    return function["Properties"]


def test_model_package_group(synthesized):
    _, _, template, _ = synthesized
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup",
        {"ModelPackageGroupName": "llm-finetuning-dev-models"},
    )


def test_functions_are_arm64_traced_with_dead_letters_and_encrypted_logs(synthesized):
    _, _, template, _ = synthesized
    assert len(functions(template)) == 3
    for function in functions(template).values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert "TargetArn" in props["DeadLetterConfig"]
        # Opt-in (serving.reserved_concurrency): a reservation fails low-quota accounts.
        assert "ReservedConcurrentExecutions" not in props
        assert props["LoggingConfig"]["LogGroup"]
        assert props["Handler"] == "index.handler"
        # The platform's one function construct: a customer managed policy, no inline one.
        assert "Layers" not in props  # Powertools is pinned in each requirements.txt
    template.resource_count_is("AWS::Logs::LogGroup", 3)
    template.all_resources_properties(
        "AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 90}
    )
    queues = template.find_resources("AWS::SQS::Queue").values()
    encryption = sorted(
        "kms" if "KmsMasterKeyId" in q["Properties"] else "sqs-managed"
        for q in queues
        if q["Properties"].get("KmsMasterKeyId") or q["Properties"].get("SqsManagedSseEnabled")
    )
    # three function dead-letter queues on the platform key, one for undelivered events
    assert encryption == ["kms", "kms", "kms", "sqs-managed"]
    assert function_named(template, "evaluate-candidate")["Timeout"] == 900


def test_named_functions_and_log_groups_keep_their_logical_ids(synthesized):
    """Moving into PlatformFunction must not replace the named functions or log groups
    (CloudFormation cannot create a second resource with the same name)."""
    _, _, template, _ = synthesized
    assert set(functions(template)) == {
        "EvaluateModelF246DC72",
        "RegisterModel49B8E918",
        "DeployEndpointC3C53ED3",
    }
    assert set(template.find_resources("AWS::Logs::LogGroup")) == {
        "EvaluateModelLogs2EA802E3",
        "RegisterModelLogsD447A66B",
        "DeployEndpointLogs164EE909",
    }
    assert template.find_resources("AWS::IAM::Policy") == {}  # no inline policies
    assert len(template.find_resources("AWS::IAM::ManagedPolicy")) == 4  # 3 + image pull


def settings_of(variables: dict) -> dict:
    """SERVING_SETTINGS as a function reads it; the inference image's URI (an Fn::Sub of the
    account and Region that CDK joins into the JSON) reads as IMAGE."""
    value = variables["SERVING_SETTINGS"]
    if isinstance(value, dict):
        value = "".join(p if isinstance(p, str) else "IMAGE" for p in value["Fn::Join"][1])
    return json.loads(value)


def test_approved_models_are_served_from_the_platform_inference_image(synthesized):
    serving, _, template, assembly = synthesized
    # The asset: containers/inference/Dockerfile on the DLC tag that
    # finetuning.approved_model_deployment names.
    artifact = assembly.get_stack_by_name(serving.stack_name)
    manifest = json.loads((Path(assembly.directory) / f"{artifact.id}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == INFERENCE_DOCKERFILE
    assert image["source"]["dockerBuildArgs"] == {"DLC_TAG": DEFAULT_INFERENCE_IMAGE_TAG}
    uri = serving.resolve(serving.inference_image.image_uri)
    for name in ("register-model", "deploy-endpoint"):
        variables = function_named(template, name)["Environment"]["Variables"]
        parts = variables["SERVING_SETTINGS"]["Fn::Join"][1]
        # The URI is the endpoint's huggingface_image, not the bare DLC (transformers 4.51.3).
        assert uri in parts, name
        before = "".join(p for p in parts[: parts.index(uri)] if isinstance(p, str))
        assert before.endswith('"huggingface_image":"'), name
        assert "huggingface-pytorch-inference" not in json.dumps(variables)
    # CreateModel names the SageMaker execution role, which pulls the image.
    (policy,) = template.find_resources(
        "AWS::IAM::ManagedPolicy",
        {"Properties": {"Description": Match.string_like_regexp("inference image")}},
    ).values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert statement["Resource"] == serving.resolve(
        serving.inference_image.repository.repository_arn
    )
    assert "SageMakerExecutionRole" in json.dumps(policy["Properties"]["Roles"])


def test_data_capture_autoscaling_and_approval_settings_reach_the_functions(synthesized):
    _, _, template, _ = synthesized
    deploy = function_named(template, "deploy-endpoint")["Environment"]["Variables"]
    endpoint = settings_of(deploy)["endpoint"]
    assert endpoint["data_capture_sampling_percentage"] == 35
    assert (endpoint["min_capacity"], endpoint["max_capacity"]) == (2, 6)
    assert endpoint["instance_type"] == "ml.g5.4xlarge"
    assert endpoint["expire_after_hours"] == 72
    assert deploy["PLATFORM_RESOURCE_PREFIX"] == "llm-finetuning-dev"
    assert deploy["PLATFORM_KEY_ARN"]  # the platform key, imported from the storage stack
    assert deploy["SAGEMAKER_EXECUTION_ROLE_ARN"]
    assert deploy["ENDPOINT_SUBNET_IDS"] and deploy["ENDPOINT_SECURITY_GROUP_IDS"]
    register = function_named(template, "register-model")["Environment"]["Variables"]
    assert settings_of(register)["approval_status"] == "PendingManualApproval"
    assert register["MODEL_PACKAGE_GROUP"] == "llm-finetuning-dev-models"


def _statements(template: Template, role_fragment: str) -> list[dict]:
    statements = []
    for policy in template.find_resources("AWS::IAM::ManagedPolicy").values():
        roles = json.dumps(policy["Properties"]["Roles"])
        if role_fragment in roles:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_deploy_role_may_autoscale_and_use_the_key_only_through_sagemaker(synthesized):
    _, _, template, _ = synthesized
    statements = _statements(template, "DeployEndpointRole")
    by_action = {a: s for s in statements for a in _actions(s)}
    for action in (
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeregisterScalableTarget",
    ):
        assert action in by_action
    by_sid = {s.get("Sid"): s for s in statements}
    grant = by_sid["LetSageMakerUsePlatformKey"]
    assert grant["Condition"] == {
        "StringEquals": {"kms:ViaService": "sagemaker.us-east-1.amazonaws.com"}
    }
    # Bedrock serving uses the key only through Bedrock; dead letters only through SQS.
    assert by_sid["ServeModelsEncryptedWithPlatformKey"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "bedrock.us-east-1.amazonaws.com"}
    }
    assert by_sid["EncryptDeadLetters"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}
    }
    assert "Fn::ImportValue" in json.dumps(grant["Resource"])  # the storage stack's key
    pass_role = by_action["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    linked = by_action["iam:CreateServiceLinkedRole"]
    assert linked["Condition"]["StringEquals"]["iam:AWSServiceName"] == (
        "sagemaker.application-autoscaling.amazonaws.com"
    )
    alarms = json.dumps(
        [s["Resource"] for s in statements if "cloudwatch:PutMetricAlarm" in _actions(s)]
    )
    assert "alarm:llm-finetuning-dev-*" in alarms
    assert "alarm:TargetTracking*" in alarms  # Application Auto Scaling's own alarms
    endpoints = json.dumps(by_action["sagemaker:UpdateEndpoint"]["Resource"])
    assert "endpoint/llm-finetuning-dev-*" in endpoints
    # no * action anywhere in the stack
    for policy in template.find_resources("AWS::IAM::ManagedPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert all(not a.endswith(":*") and a != "*" for a in _actions(statement))


def test_approval_and_endpoint_rules(synthesized):
    _, _, template, _ = synthesized
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {
                    "ModelPackageGroupName": ["llm-finetuning-dev-models"],
                    "ModelApprovalStatus": ["Approved"],
                },
            },
            "Targets": [
                Match.object_like(
                    {
                        "DeadLetterConfig": Match.any_value(),
                        "RetryPolicy": {
                            "MaximumRetryAttempts": 4,
                            "MaximumEventAgeInSeconds": 7200,
                        },
                    }
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Endpoint State Change"],
                "detail": {"EndpointName": [{"prefix": "llm-finetuning-dev-"}]},
            }
        },
    )


def test_endpoint_security_group_has_no_ingress(synthesized):
    _, _, template, _ = synthesized
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("SageMaker endpoints"),
            "SecurityGroupEgress": [
                Match.object_like({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443})
            ],
            "SecurityGroupIngress": Match.absent(),
        },
    )


def test_discovery_parameters(synthesized):
    _, _, template, _ = synthesized
    names = {
        p["Properties"]["Name"] for p in template.find_resources("AWS::SSM::Parameter").values()
    }
    assert names == {
        "/llm-finetuning/dev/serving/model-package-group",
        "/llm-finetuning/dev/serving/evaluate-function-arn",
        "/llm-finetuning/dev/serving/register-function-arn",
        "/llm-finetuning/dev/serving/deploy-function-arn",
        "/llm-finetuning/dev/serving/endpoint-security-group-id",
    }


def test_every_suppression_is_documented(synthesized):
    serving, _, _, _ = synthesized
    documented = (ROOT / "docs" / "compliance.md").read_text()
    prefix = "llm-finetuning-dev-"
    found = list(suppressions(serving))
    assert len(found) >= 20
    for suppression in found:
        path = suppression.path.replace(prefix, "<env>-", 1)
        rule = suppression.rule.replace(prefix, "<env>-")
        assert f"| `{path}` |" in documented, path
        assert f"`{rule}`" in documented, rule
        assert suppression.reason in documented, suppression.reason


def test_template_passes_cfn_lint(synthesized):
    from cfnlint.api import lint

    serving, _, _, assembly = synthesized
    template = assembly.get_stack_by_name(serving.stack_name).template
    problems = [
        f"{m.rule.id} {m.message}" for m in lint(json.dumps(template), regions=["us-east-1"])
    ]
    assert problems == []

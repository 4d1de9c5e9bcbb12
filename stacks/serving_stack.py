"""Serving: the model registry, the evaluation and register steps, and deployment on approval.

- a SageMaker Model Registry package group for the environment's fine-tuned models;
- ``evaluate-candidate`` (a function the workflow calls for Bedrock targets): evaluates the tuned
  and base models, writes the report under ``evaluation/reports/`` and returns the quality
  gate's verdict;
- ``register-model``: registers a model that passed its gate, with its metrics as model
  quality statistics, as PendingManualApproval or Approved per settings;
- ``deploy-endpoint``: on "SageMaker Model Package State Change" (approved) creates or
  blue/green-updates a real-time endpoint (data capture and volume encrypted with the platform
  key, rollback alarms), or provisions Bedrock serving; on "SageMaker Endpoint State Change"
  puts target-tracking autoscaling on the endpoint.

The deployment logic lives in ``finetuning/approved_model_deployment.py`` and
``finetuning/model_package_registry.py``; the functions are thin handlers bundled with those
modules and their pinned requirements.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from finetuning.approved_model_deployment import DEFAULT_INFERENCE_IMAGE_TAG, ServingSettings
from finetuning.orchestration.environment import Var
from finetuning.platform import (
    EVALUATION_REPORTS_PREFIX,
    TRAINING_DATA_PROCESSED_PREFIX,
    TRAINING_DATA_RAW_PREFIX,
    ServingParameter,
)
from stacks.compliance import suppress, suppress_wildcards
from stacks.constructs.logical_ids import unique_id
from stacks.constructs.platform_function import RUNTIME, PlatformFunction, PlatformFunctionProps
from stacks.container_images import inference_image
from stacks.discovery import publish_parameter
from stacks.security_stack import KMS_DATA_ACTIONS, MODELS_PREFIX, SecurityStack
from stacks.settings import PlatformSettings
from stacks.storage_stack import bucket_name

__all__ = ["RUNTIME", "SERVING_LIBRARIES", "ServingStack"]
# What each function ships from finetuning/ (not the whole library);
# tests/stacks/test_serving_bundles.py imports each handler from its bundle alone.
_EVALUATION = ("platform.py", "settings.py", "aws_jobs", "evaluation", "orchestration")
SERVING_LIBRARIES = {
    "evaluate_candidate": _EVALUATION,
    "register_model": (*_EVALUATION, "model_package_registry.py", "approved_model_deployment.py"),
    "deploy_endpoint": ("settings.py", "aws_jobs", "orchestration", "approved_model_deployment.py"),
}


class ServingStack(Stack):
    """Model package group, evaluate/register/deploy functions and their event rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        key: kms.IKey,
        vpc: ec2.IVpc,
        endpoint_subnets: ec2.SubnetSelection,
        security: SecurityStack,
        serving: ServingSettings | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings
        self._serving = serving or ServingSettings()
        self._key = key
        prefix = settings.resource_prefix

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=f"{prefix}-models",
            model_package_group_description=f"Fine-tuned models of {prefix}, with their "
            "evaluation metrics; approving a version deploys it",
        )
        group = self.model_package_group.model_package_group_name

        # Endpoints answer through SageMaker's runtime plane, so nothing needs to reach them;
        # they only call out over HTTPS (S3 gateway endpoint, interface endpoints).
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=vpc,
            description="SageMaker endpoints: no inbound, HTTPS out to S3 and AWS APIs",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3 and AWS API endpoints"
        )
        subnet_ids = vpc.select_subnets(subnet_group_name=endpoint_subnets.subnet_group_name)

        self.inference_image = None
        endpoint = self._serving.endpoint
        if endpoint.container == "huggingface" and endpoint.huggingface_image is None:
            # Isolated endpoints cannot install anything: approved models are registered with
            # the platform inference image (transformers 5.23, docs/training.md "Images").
            self.inference_image = inference_image(
                self, "InferenceImage", dlc_tag=DEFAULT_INFERENCE_IMAGE_TAG
            )
            self._serving = self._serving.with_huggingface_image(self.inference_image.image_uri)
            self._allow_inference_image_pull(security)
        serving_json = self._serving.function_settings_json()
        evaluation_bucket = bucket_name(settings, "evaluation")
        self.evaluate = self._function(
            "EvaluateModel",
            "evaluate_candidate",
            memory_mb=2048,
            timeout=Duration.minutes(15),
            environment={
                Var.EVALUATION_BUCKET: evaluation_bucket,
                Var.PLATFORM_KEY_ARN: key.key_arn,
            },
            calls="Bedrock, Bedrock Runtime, S3",
            library_paths=SERVING_LIBRARIES["evaluate_candidate"],
        )
        self.register = self._function(
            "RegisterModel",
            "register_model",
            memory_mb=512,
            timeout=Duration.minutes(2),
            environment={
                Var.MODEL_PACKAGE_GROUP: group,
                Var.EVALUATION_BUCKET: evaluation_bucket,
                Var.PLATFORM_KEY_ARN: key.key_arn,
                Var.SERVING_SETTINGS: serving_json,
            },
            calls="SageMaker, S3",
            library_paths=SERVING_LIBRARIES["register_model"],
        )
        self.register.function.node.add_dependency(self.model_package_group)
        self.deploy = self._function(
            "DeployEndpoint",
            "deploy_endpoint",
            memory_mb=512,
            timeout=Duration.minutes(5),
            environment={
                Var.RESOURCE_PREFIX: prefix,
                Var.SAGEMAKER_ROLE_ARN: security.sagemaker_execution_role.role_arn,
                Var.PLATFORM_KEY_ARN: key.key_arn,
                Var.ARTIFACTS_BUCKET: bucket_name(settings, "artifacts"),
                Var.ENDPOINT_SUBNET_IDS: ",".join(subnet_ids.subnet_ids),
                Var.ENDPOINT_SECURITY_GROUP_IDS: self.endpoint_security_group.security_group_id,
                Var.SERVING_SETTINGS: serving_json,
            },
            calls="SageMaker, Bedrock, CloudWatch, Application Auto Scaling",
            library_paths=SERVING_LIBRARIES["deploy_endpoint"],
        )
        # The functions as other stacks see them (workflow tasks, alarms, SSM parameters).
        self.evaluate_function = self.evaluate.function
        self.register_function = self.register.function
        self.deploy_function = self.deploy.function

        self._grant_evaluate()
        self._grant_register(group)
        self._grant_deploy(group, security)
        self._rules(group)
        self._publish(group)

    def _allow_inference_image_pull(self, security: SecurityStack) -> None:
        """CreateModel names the SageMaker execution role, which pulls the model's image
        (ecr:GetAuthorizationToken is the security stack's), see "CreateModel API: Execution
        Role Permissions" in https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html
        """
        iam.ManagedPolicy(
            self,
            "InferenceImagePull",
            description="The SageMaker execution role pulls the platform's inference image",
            roles=[security.sagemaker_execution_role],
            statements=[
                iam.PolicyStatement(
                    sid="PullInferenceImage",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=[self.inference_image.repository.repository_arn],
                )
            ],
        )

    # -- functions -----------------------------------------------------------------------

    def _function(
        self,
        construct_id: str,
        folder: str,
        *,
        memory_mb: int,
        timeout: Duration,
        environment: dict[str, str],
        calls: str,
        library_paths: tuple[str, ...],
    ) -> PlatformFunction:
        """One serving function as a :class:`PlatformFunction`: its pinned
        ``requirements.txt`` (Powertools, compiled wheels) instead of the Powertools layer,
        its physical name, and the logical ids it had before it moved into the construct
        (the function and its log group are named: a new id would replace them)."""
        prefix = self._settings.resource_prefix
        short = folder.replace("_", "-")
        name = f"{prefix}-{short}"
        dead_letters = sqs.Queue(
            self,
            f"{construct_id}DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self._key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            suppress(
                dead_letters,
                rule,
                f"This queue is the dead-letter queue of the {short} function; a dead-letter "
                "queue of a dead-letter queue would only move the same messages again.",
            )
        function = PlatformFunction(
            self,
            construct_id,
            props=PlatformFunctionProps(
                folder=folder,
                family="serving",
                description=f"{name}: {self._DESCRIPTIONS[folder]}",
                function_name=name,
                key=self._key,
                key_only_for_dead_letters=True,
                dead_letter_queue=dead_letters,
                # Powertools comes pinned with the function's requirements.txt (matplotlib
                # for the evaluation report needs bundled wheels anyway).
                layer=None,
                service_name=name,
                metrics_namespace=prefix,
                library_paths=library_paths,
                log_retention_days=self._settings.logs.retention_days,
                memory_mb=memory_mb,
                timeout=timeout,
                reserved_concurrency=self._serving.reserved_concurrency,
                environment={"LOG_LEVEL": "INFO", **environment},
                vpc_reason=f"The {short} function only calls AWS APIs ({calls}) over TLS with "
                "IAM; the platform VPC has no NAT gateway by default and its optional interface "
                "endpoints do not cover all of them, so inside it the calls would fail.",
                concurrency_reason=f"The {short} function runs a few times per approved model; "
                "reserving concurrency fails deployment in accounts with a low concurrency "
                "quota (Lambda keeps 100 unreserved). Set serving.reserved_concurrency to "
                "reserve it.",
                keep_logical_ids={
                    "Function": unique_id([construct_id, "Resource"]),
                    "LogGroup": unique_id([f"{construct_id}Logs", "Resource"]),
                    "Role": unique_id([f"{construct_id}Role", "Resource"]),
                },
            ),
        )
        return function

    _DESCRIPTIONS = {
        "evaluate_candidate": "evaluates a Bedrock model and returns the quality gate's verdict",
        "register_model": "registers an evaluated model in the SageMaker Model Registry",
        "deploy_endpoint": "deploys approved model versions and autoscales their endpoints",
    }

    def _objects(self, purpose: str, prefix: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_name(self._settings, purpose)}/{prefix}*"

    def _key_statement(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(actions=list(KMS_DATA_ACTIONS), resources=[self._key.key_arn])

    def _bedrock_arn(self, kind: str, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:bedrock:{self.region}:{self.account if account else ''}:{kind}/*"
        )

    def _grant_evaluate(self) -> None:
        function = self.evaluate
        reports = self._objects("evaluation", EVALUATION_REPORTS_PREFIX)
        test_sets = [
            self._objects("data", TRAINING_DATA_RAW_PREFIX),
            self._objects("data", TRAINING_DATA_PROCESSED_PREFIX),
        ]
        job_outputs = self._objects("artifacts", MODELS_PREFIX)
        invocable = [
            self._bedrock_arn("provisioned-model"),
            self._bedrock_arn("custom-model-deployment"),
            self._bedrock_arn("inference-profile"),
            self._bedrock_arn("foundation-model", account=False),
        ]
        profile_models = f"arn:{self.partition}:bedrock:*::foundation-model/*"
        profiles = self._bedrock_arn("inference-profile")
        described = [
            self._bedrock_arn("provisioned-model"),
            self._bedrock_arn("custom-model-deployment"),
            self._bedrock_arn("custom-model"),
        ]
        listing = f"arn:{self.partition}:s3:::{bucket_name(self._settings, 'artifacts')}"
        function.policy.add_statements(
            *[
                iam.PolicyStatement(
                    sid="InvokeModelsUnderEvaluation",
                    actions=["bedrock:InvokeModel"],
                    resources=invocable,
                ),
                # A cross-Region inference profile (us.amazon.nova-...) routes each call to
                # the model in any Region of the profile, and IAM authorizes the model in the
                # Region that serves it: the model in every Region, and only through this
                # account's inference profiles, see
                # https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html
                iam.PolicyStatement(
                    sid="InvokeBaseModelsThroughInferenceProfiles",
                    actions=["bedrock:InvokeModel"],
                    resources=[profile_models],
                    conditions={"StringLike": {"bedrock:InferenceProfileArn": profiles}},
                ),
                iam.PolicyStatement(
                    sid="LookUpModelFamily",
                    actions=[
                        "bedrock:GetProvisionedModelThroughput",
                        "bedrock:GetCustomModelDeployment",
                        "bedrock:GetCustomModel",
                    ],
                    resources=described,
                ),
                iam.PolicyStatement(
                    sid="ReadTestSetsAndImages",
                    actions=["s3:GetObject"],
                    resources=[*test_sets, job_outputs],
                ),
                iam.PolicyStatement(
                    sid="ListJobOutputs",
                    actions=["s3:ListBucket"],
                    resources=[listing],
                    conditions={"StringLike": {"s3:prefix": [f"{MODELS_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    sid="WriteReports", actions=["s3:PutObject"], resources=[reports]
                ),
                self._key_statement(),
            ],
        )
        suppress_wildcards(
            function.policy,
            "Evaluation calls whichever provisioned model, deployment or base model the job "
            "names (unknown at deploy time) in this account and region, and base models in "
            "the other Regions of a cross-Region inference profile only through this "
            "account's profiles; S3 wildcards stop at the test-set, job-output and report "
            "prefixes of the platform's buckets.",
            resources=[*invocable, profile_models, *described, *test_sets, job_outputs, reports],
        )

    def _grant_register(self, group: str) -> None:
        function = self.register
        reports = self._objects("evaluation", EVALUATION_REPORTS_PREFIX)
        package_group = (
            f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:"
            f"model-package-group/{group}"
        )
        packages = (
            f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:model-package/{group}/*"
        )
        function.policy.add_statements(
            *[
                iam.PolicyStatement(
                    sid="RegisterModelVersions",
                    actions=["sagemaker:CreateModelPackage", "sagemaker:ListModelPackages"],
                    resources=[package_group, packages],
                ),
                iam.PolicyStatement(
                    sid="ReadModelVersions",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[packages],
                ),
                iam.PolicyStatement(
                    sid="ReadResultsWriteStatistics",
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[reports],
                ),
                self._key_statement(),
            ],
        )
        suppress_wildcards(
            function.policy,
            "Versions of this stack's one model package group get numbered names at "
            "registration; report objects are keyed by job under evaluation/reports/.",
            resources=[packages, reports],
        )

    def _grant_deploy(self, group: str, security: SecurityStack) -> None:
        function = self.deploy
        prefix = self._settings.resource_prefix
        sm = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        owned = [
            f"{sm}:model/{prefix}-*",
            f"{sm}:endpoint-config/{prefix}-*",
            f"{sm}:endpoint/{prefix}-*",
        ]
        packages = f"{sm}:model-package/{group}/*"
        alarms = f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:{prefix}-*"
        bedrock_owned = [
            self._bedrock_arn("provisioned-model"),
            self._bedrock_arn("custom-model-deployment"),
            self._bedrock_arn("custom-model"),
        ]
        endpoints = f"{sm}:endpoint/{prefix}-*"
        # Application Auto Scaling's target-tracking alarms (named TargetTracking-...).
        scaling_alarms = (
            f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:TargetTracking*"
        )
        foundation = f"arn:{self.partition}:bedrock:{self.region}::foundation-model/*"
        scaling_role = (
            f"arn:{self.partition}:iam::{self.account}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        )
        function.policy.add_statements(
            *[
                iam.PolicyStatement(
                    sid="ReadApprovedVersions",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[packages],
                ),
                iam.PolicyStatement(
                    sid="ManagePlatformEndpoints",
                    actions=[
                        "sagemaker:CreateModel",
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:CreateEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:ListTags",
                        "sagemaker:AddTags",
                    ],
                    resources=owned,
                ),
                # Endpoint configs name the key for data capture and volumes; SageMaker
                # creates grants on it in the caller's name, and only through SageMaker.
                iam.PolicyStatement(
                    sid="LetSageMakerUsePlatformKey",
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[self._key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"sagemaker.{self.region}.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    sid="RollbackAlarms",
                    actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
                    resources=[alarms],
                ),
                # Application Auto Scaling has no resource-level permissions for these
                # actions; the scalable targets are the platform endpoints' variants.
                iam.PolicyStatement(
                    sid="EndpointAutoscaling",
                    actions=[
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:PutScalingPolicy",
                        "application-autoscaling:DeleteScalingPolicy",
                        "application-autoscaling:DescribeScalingPolicies",
                    ],
                    resources=["*"],
                ),
                # What registering an endpoint variant and a target-tracking policy checks
                # for the caller, the prerequisites of
                # https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-prerequisites.html
                iam.PolicyStatement(
                    sid="EndpointAutoscalingPrerequisites",
                    actions=["sagemaker:UpdateEndpointWeightsAndCapacities"],
                    resources=[endpoints],
                ),
                iam.PolicyStatement(
                    sid="EndpointAutoscalingAlarms",
                    actions=[
                        "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:DeleteAlarms",
                    ],
                    resources=[scaling_alarms],
                ),
                iam.PolicyStatement(
                    sid="AutoscalingServiceLinkedRole",
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[scaling_role],
                    conditions={
                        "StringEquals": {
                            "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                        }
                    },
                ),
                # Creating throughput or a deployment is authorized on the custom model and
                # on its base model, see
                # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
                iam.PolicyStatement(
                    sid="ServeBedrockCustomModels",
                    actions=[
                        "bedrock:CreateProvisionedModelThroughput",
                        "bedrock:CreateCustomModelDeployment",
                        "bedrock:TagResource",
                        "bedrock:GetCustomModel",
                    ],
                    resources=[*bedrock_owned, foundation],
                ),
                # Custom models are encrypted with the platform key; serving one needs the
                # key through Bedrock (PermissionsModelCustomization and
                # PermissionsModelInvocation of
                # https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html).
                iam.PolicyStatement(
                    sid="ServeModelsEncryptedWithPlatformKey",
                    actions=[
                        "kms:Decrypt",
                        "kms:GenerateDataKey",
                        "kms:DescribeKey",
                        "kms:CreateGrant",
                    ],
                    resources=[self._key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"bedrock.{self.region}.amazonaws.com"}
                    },
                ),
            ],
        )
        function.adopt(security.grant_pass_sagemaker_role(function.grantee))
        suppress_wildcards(
            function.policy,
            "Endpoints, configs and models are created per approval with names under this "
            "environment's prefix; model versions are numbered at registration; alarms carry "
            "the prefix; Bedrock serving resources get IDs only when created and their base "
            "model is the one the custom model was tuned from; target-tracking alarms are "
            "named by Application Auto Scaling (TargetTracking-...).",
            resources=[*owned, packages, alarms, *bedrock_owned, foundation, scaling_alarms],
        )
        suppress_wildcards(
            function.policy,
            "Application Auto Scaling's scalable-target and scaling-policy actions support no "
            "resource-level permissions; the targets are this environment's endpoints.",
            resources=["*"],
        )

    # -- events and discovery --------------------------------------------------------------

    def _rules(self, group: str) -> None:
        prefix = self._settings.resource_prefix
        # EventBridge cannot use the platform key without a key-policy statement for
        # events.amazonaws.com (in the storage stack's key), so undeliverable events go to an
        # SQS-encrypted queue, see
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html and
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html
        dead_letters = sqs.Queue(
            self,
            "UndeliveredEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            suppress(
                dead_letters,
                rule,
                "This queue holds approval and endpoint events EventBridge could not deliver "
                "to the deploy-endpoint function; it is itself the dead-letter queue.",
            )
        target = targets.LambdaFunction(
            self.deploy_function,
            dead_letter_queue=dead_letters,
            retry_attempts=4,
            max_event_age=Duration.hours(2),
        )
        # https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
        self.approval_rule = events.Rule(
            self,
            "ModelApprovedRule",
            description=f"Deploys versions of {group} when they are approved",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
            ),
            targets=[target],
        )
        self.endpoint_rule = events.Rule(
            self,
            "EndpointStateRule",
            description=f"Puts autoscaling on {prefix} endpoints once they are in service",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": events.Match.prefix(f"{prefix}-")},
            ),
            targets=[target],
        )

    def _publish(self, group: str) -> None:
        security_group = self.endpoint_security_group.security_group_id
        for parameter, value in {
            ServingParameter.MODEL_PACKAGE_GROUP: group,
            ServingParameter.EVALUATE_FUNCTION: self.evaluate_function.function_arn,
            ServingParameter.REGISTER_FUNCTION: self.register_function.function_arn,
            ServingParameter.DEPLOY_FUNCTION: self.deploy_function.function_arn,
            ServingParameter.ENDPOINT_SECURITY_GROUP: security_group,
        }.items():
            # The ids these parameters had before the shared helper (``ParamEvaluateFunction``).
            legacy_id = "Param" + "".join(part.capitalize() for part in parameter.name.split("_"))
            publish_parameter(self, self._settings, parameter, value, construct_id=legacy_id)

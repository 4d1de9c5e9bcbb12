"""The platform's self-updating deployment pipeline (CDK Pipelines).

Source (CodeConnections or S3) -> Build (the README's test command, then synth) ->
UpdatePipeline (self-mutation) -> Assets -> one stage per environment in the order of
``config/pipeline.yaml``: an optional manual approval before, the deployment, and an
optional fine-tuning smoke job (with its quality gate) after.

Artifacts live in a bucket of this stack encrypted with this stack's customer-managed key
(rotated); when an environment lives in another account, CodePipeline gives that account
access through the key and bucket policies and runs the deployment there with the
account's bootstrap roles (``cdk bootstrap --trust <pipeline account>``). See
https://docs.aws.amazon.com/cdk/v2/guide/cdk-pipeline.html and
https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.pipelines-readme.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as codepipeline_actions
from aws_cdk import aws_codestarnotifications as notifications
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from stacks.compliance import suppress, suppress_wildcards
from stacks.finetuning_pipeline_stage import (
    INLINE_POLICY_RULES,
    FineTuningActionProps,
    FineTuningStep,
    acknowledge_artifact_access,
)
from stacks.log_groups import encrypted_log_group
from stacks.settings import PlatformSettings
from stacks.settings.naming import default_state_machine_name, orchestration_key_alias
from stacks.settings.pipeline import (
    CodeConnectionsSource,
    DeploymentTarget,
    PipelineSettings,
    S3Source,
    cross_account,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where the Build step writes the pipeline's cloud assembly (pipeline_app.py); `make synth`
# keeps cdk.out/ for the platform stage it synthesizes on its own.
PIPELINE_ASSEMBLY_DIR = "cdk.pipeline.out"
# CPU wheels for torch: the PyPI default on x86_64 Linux is the CUDA build, gigabytes the
# tests never use. pip takes 2.x.y+cpu over 2.x.y for the same pin.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPUTE_TYPES = {
    "small": codebuild.ComputeType.SMALL,
    "medium": codebuild.ComputeType.MEDIUM,
    "large": codebuild.ComputeType.LARGE,
    "x2_large": codebuild.ComputeType.X2_LARGE,
}
# Events that notify the pipeline topic, see
# https://docs.aws.amazon.com/dtconsole/latest/userguide/concepts.html#events-ref-pipeline
PIPELINE_NOTIFICATION_EVENTS = (
    "codepipeline-pipeline-pipeline-execution-failed",
    "codepipeline-pipeline-pipeline-execution-succeeded",
    "codepipeline-pipeline-manual-approval-needed",
)

StageFactory = Callable[[Construct, str, PlatformSettings], Stage]


def pinned_cdk_cli_version(package_json: Path = REPO_ROOT / "package.json") -> str:
    """The CDK CLI version package.json pins, so the pipeline's own CLI steps match it."""
    return json.loads(package_json.read_text())["devDependencies"]["aws-cdk"]


def platform_stage(scope: Construct, construct_id: str, settings: PlatformSettings) -> Stage:
    """Every platform stack of one environment (stacks/platform_stacks.py)."""
    from stacks.platform_stacks import FineTuningPlatformStage

    return FineTuningPlatformStage(scope, construct_id, settings=settings)


def synth_commands() -> list[str]:
    """The Build step: the README's test command, its synth, then the pipeline's assembly."""
    return [
        "make test",
        "make synth",
        f'node_modules/.bin/cdk synth --app ".venv/bin/python pipeline_app.py" '
        f"--output {PIPELINE_ASSEMBLY_DIR} --quiet",
    ]


class PipelineStack(Stack):
    """CodePipeline (CDK Pipelines) that tests, synthesizes and deploys every environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        environments: Sequence[PlatformSettings],
        stage_factory: StageFactory = platform_stage,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if [env.environment for env in environments] != [t.environment for t in settings.stages]:
            raise ValueError(
                "environments must be the settings of settings.stages, in the same order: "
                f"expected {[t.environment for t in settings.stages]}, "
                f"got {[env.environment for env in environments]}"
            )
        self._settings = settings
        self.cross_account = cross_account(settings, list(environments))

        self.key = self._artifact_key()
        self.access_logs_bucket, self.artifact_bucket = self._buckets()
        self.log_group = encrypted_log_group(
            self,
            "BuildLogs",
            key=self.key,
            retention_days=365,
        )
        self.topic = self._notification_topic()

        self.source = self._source()
        synth = pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            commands=synth_commands(),
            primary_output_directory=PIPELINE_ASSEMBLY_DIR,
            env={
                "PIP_EXTRA_INDEX_URL": TORCH_CPU_INDEX,
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": settings.synth.nodejs_version,
            },
            build_environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=COMPUTE_TYPES[settings.synth.compute_type],
            ),
            partial_build_spec=codebuild.BuildSpec.from_object(
                {
                    "phases": {
                        "install": {
                            "runtime-versions": {
                                "python": settings.synth.python_version,
                                "nodejs": settings.synth.nodejs_version,
                            }
                        }
                    },
                    "cache": {"paths": ["/root/.cache/pip/**/*", "/root/.npm/**/*"]},
                }
            ),
            cache=codebuild.Cache.local(codebuild.LocalCacheMode.CUSTOM),
            timeout=Duration.minutes(settings.synth.timeout_minutes),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=settings.name,
            synth=synth,
            artifact_bucket=self.artifact_bucket,
            # The artifact key is ours either way; this flag also gives the replication
            # buckets of other regions a (rotated) key of their own.
            cross_account_keys=self.cross_account,
            enable_key_rotation=self.cross_account or None,
            pipeline_type=codepipeline.PipelineType.V2,
            self_mutation=True,
            publish_assets_in_parallel=False,
            cli_version=pinned_cdk_cli_version(),
            use_change_sets=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                logging=codebuild.LoggingOptions(
                    cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group)
                ),
            ),
        )

        self.stages: dict[str, Stage] = {}
        for target, env in zip(settings.stages, environments, strict=True):
            stage = stage_factory(self, _stage_id(env), env)
            self.stages[env.environment] = stage
            self.pipeline.add_stage(stage, pre=self._pre(target), post=self._post(target, env))

        # Build the CodePipeline now so its generated resources can be reviewed below.
        self.pipeline.build_pipeline()
        notifications.NotificationRule(
            self,
            "PipelineNotifications",
            source=self.pipeline.pipeline,
            events=list(PIPELINE_NOTIFICATION_EVENTS),
            targets=[self.topic],
            detail_type=notifications.DetailType.BASIC,
        )
        self._acknowledge_generated_resources()

    # -- resources of this stack ----------------------------------------------------------

    def _artifact_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "ArtifactKey",
            alias=f"alias/{self._settings.name}-artifacts",
            description=f"Encrypts the {self._settings.name} pipeline's artifacts, logs and topic",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CodeBuild logs of this stack's log group, encrypted with this key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{self.partition}:logs:"
                        f"{self.region}:{self.account}:log-group:*"
                    }
                },
            )
        )
        # Notifications publish to the encrypted topic through SNS, see
        # https://docs.aws.amazon.com/dtconsole/latest/userguide/set-up-sns.html
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCodeStarNotificationsThroughSns",
                principals=[iam.ServicePrincipal("codestar-notifications.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{self.region}.amazonaws.com"}},
            )
        )
        return key

    def _buckets(self) -> tuple[s3.Bucket, s3.Bucket]:
        common = {
            "encryption": s3.BucketEncryption.KMS,
            "encryption_key": self.key,
            "bucket_key_enabled": True,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "minimum_tls_version": 1.2,
            "versioned": True,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            "removal_policy": RemovalPolicy.RETAIN,
        }
        prefix = self._settings.bucket_prefix
        access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            bucket_name=f"{prefix}-logs-{self.account}-{self.region}",
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireLogs", expiration=Duration.days(365)),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(30),
                ),
            ],
            **common,
        )
        # CDK grants logging.s3.amazonaws.com the key for this bucket's access logs, see
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
        artifacts = s3.Bucket(
            self,
            "ArtifactBucket",
            # A physical name: other accounts' deploy roles name it in their policies.
            bucket_name=f"{prefix}-artifacts-{self.account}-{self.region}",
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteMultipartUploads",
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                # Artifacts of old executions are never read again.
                s3.LifecycleRule(id="ExpireOldArtifacts", expiration=Duration.days(90)),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(30),
                ),
            ],
            **common,
        )
        for rule, reason in {
            "AwsSolutions-S1": "This is the access-log target; logging it to itself would loop.",
            "HIPAA.Security-S3BucketLoggingEnabled": "This is the access-log target; logging "
            "it to itself would loop.",
            "NIST.800.53.R5-S3BucketLoggingEnabled": "This is the access-log target; logging "
            "it to itself would loop.",
        }.items():
            suppress(access_logs, rule, reason)
        for bucket in (access_logs, artifacts):
            for pack in ("HIPAA.Security", "NIST.800.53.R5"):
                suppress(
                    bucket,
                    f"{pack}-S3BucketReplicationEnabled",
                    "Pipeline artifacts and their access logs are rebuilt by the next run from "
                    "the source repository; a second region would only double the cost.",
                )
        return access_logs, artifacts

    def _notification_topic(self) -> sns.Topic:
        topic = sns.Topic(
            self,
            "PipelineTopic",
            display_name=f"{self._settings.name} pipeline",
            master_key=self.key,
            enforce_ssl=True,
        )
        for address in self._settings.notification_emails:
            topic.add_subscription(subscriptions.EmailSubscription(address))
        return topic

    def _source(self) -> pipelines.CodePipelineSource:
        source = self._settings.source
        if isinstance(source, CodeConnectionsSource):
            return pipelines.CodePipelineSource.connection(
                source.repository,
                source.branch,
                connection_arn=source.connection_arn,
                trigger_on_push=source.trigger_on_push,
            )
        assert isinstance(source, S3Source)
        trigger = {
            "events": codepipeline_actions.S3Trigger.EVENTS,
            "poll": codepipeline_actions.S3Trigger.POLL,
            "none": codepipeline_actions.S3Trigger.NONE,
        }[source.trigger]
        bucket = s3.Bucket.from_bucket_name(self, "SourceBucket", source.bucket)
        return pipelines.CodePipelineSource.s3(bucket, source.key, trigger=trigger)

    # -- steps around each environment ----------------------------------------------------

    def _pre(self, target: DeploymentTarget) -> list[pipelines.Step]:
        if not target.manual_approval:
            return []
        return [
            pipelines.ManualApprovalStep(
                f"Approve{target.environment.title().replace('-', '')}",
                comment=f"Deploy the fine-tuning platform to {target.environment}?",
                notification_topic=self.topic,
            )
        ]

    def _post(self, target: DeploymentTarget, env: PlatformSettings) -> list[pipelines.Step]:
        if target.smoke_job is None:
            return []
        name = target.smoke_job.state_machine_name or default_state_machine_name(env)
        # The state machine lives in the stage's stacks, which the pipeline cannot reference;
        # it is found by its deterministic name in the stage's account and region.
        account = env.account or self._settings.account or Aws.ACCOUNT_ID
        arn = f"arn:{self.partition}:states:{env.region}:{account}:stateMachine:{name}"
        machine = sfn.StateMachine.from_state_machine_arn(
            self, f"{_stage_id(env)}StateMachine", arn
        )
        return [
            FineTuningStep(
                "SmokeJob",
                input=self.source,
                props=FineTuningActionProps(
                    state_machine=machine,
                    job_spec=target.smoke_job.job_spec,
                    execution_name_prefix=self._settings.execution_name_prefix,
                    require_quality_gate=target.smoke_job.require_quality_gate,
                    state_machine_key_alias=orchestration_key_alias(env),
                    log_group=self.log_group,
                ),
            )
        ]

    # -- compliance review of what CDK Pipelines generates ---------------------------------

    def _acknowledge_generated_resources(self) -> None:
        """Acknowledge the findings of CDK Pipelines' own roles and projects, role by role.

        Each call names the role's job; the wildcards acknowledged are exactly those CDK
        Pipelines writes for it. A wildcard that appears after a CDK upgrade is not
        acknowledged and fails the gate until someone reviews it here.
        """
        bucket = self.artifact_bucket
        synth_project = self.pipeline.synth_project
        mutation_project = self.pipeline.self_mutation_project
        acknowledge_artifact_access(
            synth_project.role,
            bucket,
            write=True,
            purpose="The Build step runs the tests and synth and writes the cloud assembly; "
            "it writes its logs to its own /aws/codebuild/ group and its test reports to "
            "report groups named after its project.",
            extra=_codebuild_defaults(synth_project),
        )
        acknowledge_artifact_access(
            mutation_project.role,
            bucket,
            write=False,
            purpose="UpdatePipeline runs `cdk deploy` of this pipeline stack: it reads the "
            "cloud assembly, assumes only the bootstrap roles tagged aws-cdk:bootstrap-role "
            "(the role ARN wildcard), and calls cloudformation:DescribeStacks and "
            "s3:ListBucket, which the CDK CLI needs on stacks and buckets it cannot name.",
            extra=[
                *_codebuild_defaults(mutation_project),
                f"arn:*:iam::{self.account}:role/*",
                "*",
            ],
        )
        assets = self.pipeline.node.try_find_child("Assets")
        publishing = {
            "FileRole": "uploads through the bootstrap file-publishing role only",
            # The evaluation image (containers/evaluation) is built in the Assets stage.
            "DockerRole": "builds images in a privileged CodeBuild project and pushes them "
            "through the bootstrap image-publishing role only; ECR's GetAuthorizationToken "
            "takes no resource",
        }
        for role_id, publishes in publishing.items():
            role = assets.node.try_find_child(role_id) if assets else None
            if isinstance(role, iam.Role):
                acknowledge_artifact_access(
                    role,
                    bucket,
                    write=False,
                    purpose="Asset publishing: one role for every asset project of its kind, "
                    "so it logs to /aws/codebuild/*, reports to any report group and starts "
                    "and watches builds of projects created after it; it "
                    f"{publishes}.",
                    extra=[
                        f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:"
                        "/aws/codebuild/*",
                        f"arn:{self.partition}:codebuild:{self.region}:{self.account}:"
                        "report-group/*",
                        "*",
                    ],
                )
        pipeline = self.pipeline.pipeline
        replication = [
            support.replication_bucket.arn_for_objects("*")
            for support in self._harden_replication_buckets()
        ]
        acknowledge_artifact_access(
            pipeline.role,
            bucket,
            write=True,
            purpose="The pipeline's service role moves artifacts between actions and assumes "
            "the action roles"
            + (
                "; it copies them to the replication buckets of the other regions, whose "
                "keys live in those regions' support stacks (hence the key grant on *)."
                if replication
                else "."
            ),
            extra=[*replication, "*"] if replication else [],
        )
        source_stage = pipeline.node.try_find_child("Source")
        for role in _roles_under(source_stage):
            acknowledge_artifact_access(
                role,
                bucket,
                write=True,
                purpose="The source action writes the checked-out repository as the "
                "pipeline's first artifact.",
            )
        for construct in self.node.find_all():
            self._acknowledge(construct)

    def _harden_replication_buckets(self) -> list[codepipeline.CrossRegionSupport]:
        """Version and access-log the artifact buckets CDK creates in other regions.

        Environments in another region get their artifacts through a replication bucket
        in a support stack of that region (created by CodePipeline's construct, encrypted
        with a rotated key of its own); here it gets what the primary bucket has.
        """
        supports = list(self.pipeline.pipeline.cross_region_support.values())
        for support in supports:
            bucket = support.replication_bucket
            cfn_bucket = bucket.node.default_child
            assert isinstance(cfn_bucket, s3.CfnBucket)
            cfn_bucket.versioning_configuration = s3.CfnBucket.VersioningConfigurationProperty(
                status="Enabled"
            )
            logs_bucket = s3.Bucket(
                support.stack,
                "ReplicationAccessLogs",
                encryption_key=bucket.encryption_key,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                minimum_tls_version=1.2,
                versioned=True,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                removal_policy=RemovalPolicy.RETAIN,
                lifecycle_rules=[
                    s3.LifecycleRule(id="ExpireLogs", expiration=Duration.days(365)),
                    s3.LifecycleRule(
                        id="ExpireNoncurrentVersions",
                        noncurrent_version_expiration=Duration.days(30),
                    ),
                ],
            )
            cfn_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
                destination_bucket_name=logs_bucket.bucket_name, log_file_prefix="replication/"
            )
            # What the L2 property would have granted: log delivery for this bucket only.
            logs_bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                    actions=["s3:PutObject"],
                    resources=[logs_bucket.arn_for_objects("replication/*")],
                    conditions={
                        "ArnLike": {"aws:SourceArn": bucket.bucket_arn},
                        "StringEquals": {"aws:SourceAccount": support.stack.account},
                    },
                )
            )
            if bucket.encryption_key is not None:
                bucket.encryption_key.grant_encrypt_decrypt(
                    iam.ServicePrincipal("logging.s3.amazonaws.com")
                )
            for rule in (
                "AwsSolutions-S1",
                "HIPAA.Security-S3BucketLoggingEnabled",
                "NIST.800.53.R5-S3BucketLoggingEnabled",
            ):
                suppress(
                    logs_bucket,
                    rule,
                    "This is the access-log target of the replication bucket; logging it to "
                    "itself would loop.",
                )
            for target in (bucket, logs_bucket):
                for pack in ("HIPAA.Security", "NIST.800.53.R5"):
                    suppress(
                        target,
                        f"{pack}-S3BucketReplicationEnabled",
                        "Per-region copies of pipeline artifacts (and their access logs) "
                        "that the next run rebuilds from source; no second copy is needed.",
                    )
        return supports

    def _acknowledge(self, construct: IConstruct) -> None:
        if isinstance(construct, codebuild.PipelineProject):
            suppress(
                construct,
                "HIPAA.Security-CodeBuildProjectSourceRepoUrl",
                "Pipeline projects take their source from the encrypted artifact bucket "
                "(source type CODEPIPELINE); they never clone a repository with credentials.",
            )
        elif isinstance(construct, iam.Role) and construct.node.id in (
            "CodePipelineActionRole",
            "CodeBuildActionRole",
        ):
            for rule in INLINE_POLICY_RULES:
                suppress(
                    construct,
                    rule,
                    "CDK Pipelines writes the grants of this single-purpose action role "
                    "(start and watch its builds, or publish an approval request) as the "
                    "role's inline policy.",
                )
            if construct.node.scope and construct.node.scope.node.id.startswith("Approve"):
                suppress_wildcards(
                    construct,
                    "The approval action publishes its request to the pipeline topic, which "
                    "is encrypted with the pipeline key: GenerateDataKey* on that key only.",
                    actions=["kms:GenerateDataKey*"],
                )
        elif isinstance(construct, iam.Role) and construct.node.id == "EventsRole":
            for rule in INLINE_POLICY_RULES:
                suppress(
                    construct,
                    rule,
                    "The S3 source's EventBridge rule assumes this role for one action: "
                    "codepipeline:StartPipelineExecution on this pipeline, written inline by CDK.",
                )
        elif isinstance(construct, events.CfnRule) and "SourceEventRule" in construct.node.path:
            suppress(
                construct,
                "Serverless-EventBusDLQ",
                "The S3 source trigger only starts this pipeline; an undelivered start is "
                "recovered by the next upload or a manual 'Release change', and CodePipeline "
                "keeps the source object's versions.",
            )
        elif isinstance(construct, sns.Subscription):
            suppress(
                construct,
                "Serverless-SNSRedrivePolicy",
                "Email subscriptions of the pipeline topic: SNS retries email delivery itself, "
                "and a dead-letter queue of undelivered emails would have no reader.",
            )


def _codebuild_defaults(project: codebuild.IProject) -> list[str]:
    """The log group and report groups CDK grants every CodeBuild project by name."""
    stack = Stack.of(project)
    return [
        stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/codebuild/{project.project_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ),
        stack.format_arn(
            service="codebuild", resource="report-group", resource_name=f"{project.project_name}-*"
        ),
    ]


def _roles_under(scope: IConstruct | None) -> list[iam.Role]:
    if scope is None:
        return []
    return [c for c in scope.node.find_all() if isinstance(c, iam.Role)]


def _stage_id(env: PlatformSettings) -> str:
    return "".join(part.capitalize() for part in env.environment.split("-"))

"""Orchestration: the state machine and functions that run a fine-tuning job end to end.

Owns the fine-tuning state machine (``orchestration_workflow``), its fifteen functions
(``lambda/``), the job table and the idempotency table, the notification topic, the
EventBridge rules (job state changes, stopped executions, manifests under ``jobs/``), the
scheduled expiry cleanup and a dead-letter queue. Everything it stores is encrypted with
its own customer managed key, whose policy admits exactly the AWS services that deliver
into these resources (CloudWatch Logs, EventBridge, SNS, CloudWatch alarms).

Policies name buckets and the state machine by their deterministic names, never by
reference, so no resource policy of another stack changes and no dependency cycle forms.
docs/orchestration.md describes the flow, the manifest and every permission.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from finetuning.orchestration import tags
from finetuning.orchestration.environment import Var
from finetuning.orchestration.records import CREATED_INDEX, STATUS_INDEX
from finetuning.orchestration.waiting import BEDROCK_EVENT, SAGEMAKER_EVENT
from finetuning.orchestration.workflow import States
from finetuning.platform import (
    EVALUATION_REPORTS_PREFIX,
    JOB_MANIFESTS_PREFIX,
    TRAINING_DATA_PROCESSED_PREFIX,
    TRAINING_DATA_RAW_PREFIX,
    OrchestrationParameter,
)
from finetuning.platform import parameter_name as orchestration_parameter_name
from stacks.compliance import suppress, suppress_wildcards
from stacks.container_images import evaluation_image, training_image
from stacks.distillation_teachers import DistillationTeacherAccess
from stacks.log_groups import encrypted_log_group
from stacks.network_stack import NetworkStack
from stacks.orchestration_functions import (
    PlatformFunction,
    depend_only_on_policy,
    powertools_layer,
)
from stacks.orchestration_settings import OrchestrationSettings
from stacks.orchestration_workflow import FineTuningWorkflow
from stacks.rft_grader import (
    GRADER_CONCURRENCY_REASON,
    GRADER_MEMORY_MB,
    GRADER_TIMEOUT,
    GRADER_VPC_REASON,
    RftGrader,
)
from stacks.security_stack import SecurityStack
from stacks.settings import PlatformSettings
from stacks.storage_stack import bucket_name

STATE_MACHINE_SUFFIX = "finetuning"
# The regexes of train.py's log lines, which StartJob sends as SageMaker metric definitions.
METRIC_DEFINITION_FILES = (
    "training_scripts/__init__.py",
    "training_scripts/metric_definitions.py",
)
# Step Functions execution status change events, see
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html
EXECUTION_ENDED_STATUSES = ["ABORTED", "TIMED_OUT", "FAILED"]
JOB_END_STATUSES = ["Completed", "Failed", "Stopped"]
DYNAMODB_READ = ("dynamodb:GetItem",)
DYNAMODB_WRITE = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# What Powertools idempotency does with its table, see
# https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/#iam-permissions
IDEMPOTENCY_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# What a caller creating a Bedrock job or throughput with a customer managed key needs, see
# https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html
KEY_FOR_SERVICE_ACTIONS = (
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:DescribeKey",
    "kms:CreateGrant",
)


class OrchestrationStack(Stack):
    """State machine, functions, tables, topic, rules and the expiry cleanup."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        platform_key: kms.IKey,
        network: NetworkStack,
        security: SecurityStack,
        serving_functions: Mapping[str, lambda_.IFunction],
        orchestration: OrchestrationSettings | None = None,
        **kwargs,
    ) -> None:
        """``serving_functions``: the serving stack's evaluate-candidate and register-model
        functions, keyed by the states that invoke them (``States.EVALUATE_BEDROCK``,
        ``States.REGISTER_MODEL``)."""
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings
        self._orchestration = orchestration or getattr(
            settings, "orchestration", OrchestrationSettings()
        )
        self._platform_key = platform_key
        prefix = settings.resource_prefix
        self.state_machine_name = f"{prefix}-{STATE_MACHINE_SUFFIX}"

        self.key = self._key()
        self.dead_letter_queue = self._dead_letter_queue()
        self.job_table = self._job_table()
        self.idempotency_table = self._idempotency_table()
        self.topic = self._topic()
        self._layer = powertools_layer(self, self._orchestration.powertools_layer_version)

        subnet_ids = network.vpc.select_subnets(
            subnet_group_name=network.training_subnets.subnet_group_name
        ).subnet_ids
        self._subnet_ids = subnet_ids
        self._security_group_id = network.training_security_group.security_group_id
        self._platform_env = {
            Var.RESOURCE_PREFIX: prefix,
            Var.JOB_TABLE: self.job_table.table_name,
            Var.TOPIC_ARN: self.topic.topic_arn,
        }
        self.training_image = training_image(
            self, "TrainingImage", dlc_tag=self._orchestration.training_image_tag
        )
        self._training_env = {
            Var.DATA_BUCKET: bucket_name(settings, "data"),
            Var.ARTIFACTS_BUCKET: bucket_name(settings, "artifacts"),
            Var.EVALUATION_BUCKET: bucket_name(settings, "evaluation"),
            Var.PLATFORM_KEY_ARN: platform_key.key_arn,
            Var.SAGEMAKER_ROLE_ARN: security.sagemaker_execution_role.role_arn,
            Var.BEDROCK_ROLE_ARN: security.bedrock_customization_role.role_arn,
            Var.SUBNET_IDS: ",".join(subnet_ids),
            Var.SECURITY_GROUP_IDS: network.training_security_group.security_group_id,
            Var.DEFAULT_INSTANCE_TYPE: settings.training.default_instance_type,
            Var.ALLOWED_INSTANCE_FAMILIES: ",".join(settings.training.allowed_instance_families),
            # The DLC with train.py's pinned packages: isolated jobs cannot install them.
            Var.TRAINING_IMAGE_URI: self.training_image.image_uri,
        }
        self.evaluation_image = evaluation_image(self, "EvaluationImage")
        self._allow_image_pull(security)
        # The platform's RFT grader (stacks/rft_grader.py): start functions name it in a
        # REINFORCEMENT_FINE_TUNING job whose manifest gives no grader of its own.
        self.rft_grader = RftGrader(
            self,
            "RftGrader",
            function=self._function(
                "RftGraderFunction",
                "grader",
                "Scores RFT answers with the platform's evaluation scoring",
                env={},
                memory_mb=GRADER_MEMORY_MB,
                timeout=GRADER_TIMEOUT,
                vpc_reason=GRADER_VPC_REASON,
                concurrency_reason=GRADER_CONCURRENCY_REASON,
            ),
            bedrock_role=security.bedrock_customization_role,
            external_grader_arns=self._orchestration.rft_grader_arns,
        )
        self._training_env[Var.GRADER_FUNCTION_ARN] = self.rft_grader.arn
        DistillationTeacherAccess(
            self, "DistillationTeachers", bedrock_role=security.bedrock_customization_role
        )
        self.functions = self._functions(security)
        self._serving_functions = dict(serving_functions)
        self.state_machine = self._state_machine()
        self._rules()
        self._cleanup_schedule()
        self._publish_parameters()

    # -- ARNs by name ---------------------------------------------------------------------

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True):
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )

    @property
    def state_machine_arn(self) -> str:
        return self._arn("states", f"stateMachine:{self.state_machine_name}")

    @property
    def executions_arn(self) -> str:
        return self._arn("states", f"execution:{self.state_machine_name}:*")

    def _objects(self, purpose: str, prefix: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_name(self._settings, purpose)}/{prefix}*"

    # -- shared resources -----------------------------------------------------------------

    def _key(self) -> kms.Key:
        key = kms.Key(
            self,
            "OrchestrationKey",
            alias=f"alias/{self._settings.resource_prefix}-orchestration",
            description=(
                f"Encrypts the {self._settings.resource_prefix} orchestration's job table, "
                "executions, topic, queue and logs"
            ),
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{self.partition}:logs:"
                        f"{self.region}:{self.account}:log-group:*"
                    }
                },
            )
        )
        # EventBridge (rule dead letters), SNS (subscription dead letters) and CloudWatch
        # alarms (publishing to the topic) write into encrypted queues and topics as
        # services, so they need the key in its policy, for this account only.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowServicesDeliveringToOrchestration",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("sns.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        return key

    def _dead_letter_queue(self) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            suppress(
                queue,
                rule,
                "This queue is itself the dead-letter queue of every orchestration function, "
                "rule target, schedule and subscription; a further queue would only move "
                "the same failed messages.",
            )
        return queue

    def _job_table(self) -> dynamodb.TableV2:
        created = dynamodb.Attribute(name="created_at", type=dynamodb.AttributeType.STRING)
        table = dynamodb.TableV2(
            self,
            "JobTable",
            partition_key=dynamodb.Attribute(name="job_id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self.key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=STATUS_INDEX,
                    partition_key=dynamodb.Attribute(
                        name="status", type=dynamodb.AttributeType.STRING
                    ),
                    sort_key=created,
                ),
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=CREATED_INDEX,
                    partition_key=dynamodb.Attribute(
                        name="record_type", type=dynamodb.AttributeType.STRING
                    ),
                    sort_key=created,
                ),
            ],
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                table,
                f"{pack}-DynamoDBInBackupPlan",
                "Point-in-time recovery keeps 35 days of continuous backups of the job table "
                "and deletion protection guards it; add it to an organisation backup plan by "
                "tag where policy requires longer retention.",
            )
        return table

    def _idempotency_table(self) -> dynamodb.TableV2:
        # Powertools idempotency records: key "id", expiry "expiration" (TTL).
        table = dynamodb.TableV2(
            self,
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self.key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                table,
                f"{pack}-DynamoDBInBackupPlan",
                "Holds only short-lived idempotency records that expire by TTL within a day; "
                "nothing in it needs restoring beyond point-in-time recovery.",
            )
        return table

    def _topic(self) -> sns.Topic:
        topic = sns.Topic(
            self,
            "NotificationTopic",
            display_name=f"{self._settings.resource_prefix} fine-tuning",
            master_key=self.key,
            enforce_ssl=True,
        )
        for email in self._orchestration.notification_emails:
            topic.add_subscription(
                subscriptions.EmailSubscription(email, dead_letter_queue=self.dead_letter_queue)
            )
        return topic

    # -- functions --------------------------------------------------------------------------

    def _function(
        self, construct_id: str, folder: str, description: str, *, env: dict[str, str], **kw
    ) -> PlatformFunction:
        o = self._orchestration
        return PlatformFunction(
            self,
            construct_id,
            folder=folder,
            description=description,
            key=self.key,
            dead_letter_queue=self.dead_letter_queue,
            layer=self._layer,
            log_retention_days=self._settings.logs.retention_days,
            environment={**self._platform_env, **env},
            memory_mb=kw.pop("memory_mb", o.function_memory_mb),
            timeout=kw.pop("timeout", Duration.seconds(o.function_timeout_seconds)),
            reserved_concurrency=o.reserved_concurrency,
            **kw,
        )

    def _functions(self, security: SecurityStack) -> dict[str, PlatformFunction]:
        o = self._orchestration
        idempotency = {
            Var.IDEMPOTENCY_TABLE: self.idempotency_table.table_name,
            Var.IDEMPOTENCY_TTL_SECONDS: str(o.idempotency_ttl_hours * 3600),
        }
        t = self._training_env
        fns: dict[str, PlatformFunction] = {}
        fns[States.REGISTER] = f = self._function(
            "RegisterJob", "register_job", "Puts a job in the job table", env={}
        )
        self._table(f, "dynamodb:GetItem", "dynamodb:PutItem")

        fns[States.VALIDATE] = f = self._function(
            "ValidateDataset",
            "validate_dataset",
            "Validates a job's training data with finetuning.data",
            env={k: t[k] for k in (Var.DATA_BUCKET, Var.ARTIFACTS_BUCKET, Var.EVALUATION_BUCKET)},
            memory_mb=o.validation_memory_mb,
            timeout=Duration.seconds(o.validation_timeout_seconds),
            extra_library=("data",),
        )
        self._table(f, *DYNAMODB_WRITE)
        data_objects = [
            self._objects("data", TRAINING_DATA_RAW_PREFIX),
            self._objects("data", TRAINING_DATA_PROCESSED_PREFIX),
        ]
        reports = self._objects("evaluation", EVALUATION_REPORTS_PREFIX)
        f.allow("ReadTrainingData", ["s3:GetObject", "s3:GetObjectVersion"], data_objects)
        f.allow("WriteValidationReports", ["s3:PutObject"], [reports])
        self._platform_key_via(f, "s3", ["kms:Decrypt", "kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Object wildcards stop at the data bucket's training-data/ prefixes (read) and the "
            "evaluation bucket's evaluation/reports/ prefix (write).",
            resources=[*data_objects, reports],
        )

        # One start function per backend, from the same code: each role can start one
        # kind of job and pass one service role.
        fns[States.START_BEDROCK] = f = self._function(
            "StartBedrockJob",
            "start_job",
            "Starts the Bedrock model customization job of a spec, once",
            env={**t, **idempotency, Var.EXPECTED_BACKEND: "bedrock"},
        )
        self._table(f, *DYNAMODB_WRITE)
        self._idempotency(f)
        self._bedrock_jobs(f, create=True)
        f.adopt(security.grant_pass_bedrock_role(f.grantee))
        self._platform_key_via(f, "bedrock", KEY_FOR_SERVICE_ACTIONS)

        fns[States.START_SAGEMAKER] = f = self._function(
            "StartSageMakerJob",
            "start_job",
            "Starts the SageMaker training job of a spec, once",
            env={**t, **idempotency, Var.EXPECTED_BACKEND: "sagemaker"},
            extra_files=METRIC_DEFINITION_FILES,
        )
        self._table(f, *DYNAMODB_WRITE)
        self._idempotency(f)
        self._sagemaker_jobs(f, create=True)
        f.adopt(security.grant_pass_sagemaker_role(f.grantee))
        self._platform_key_via(f, "sagemaker", KEY_FOR_SERVICE_ACTIONS)

        for name, construct_id, folder, description in (
            (States.WAIT, "WaitForJob", "wait_for_job", "Stores the wait's task token; polls"),
            (None, "JobEvents", "job_events", "Answers waits from job state-change events"),
        ):
            f = self._function(construct_id, folder, description, env={})
            self._table(f, *DYNAMODB_WRITE)
            self._bedrock_jobs(f)
            self._sagemaker_jobs(f)
            f.allow(
                "AnswerWaits",
                ["states:SendTaskSuccess", "states:SendTaskFailure"],
                ["*"],
            )
            suppress_wildcards(
                f.policy,
                "SendTaskSuccess and SendTaskFailure support no resource-level permissions; "
                "the task token, known only to the waiting execution, names the task.",
                resources=["*"],
            )
            fns[name or construct_id] = f

        fns[States.COLLECT] = f = self._function(
            "CollectResults",
            "collect_results",
            "Collects metrics, artifacts and a cost estimate of a finished job",
            env={Var.PRICE_TABLE: json.dumps(self._orchestration.prices.model_dump())},
            extra_library=("data",),
        )
        self._table(f, *DYNAMODB_WRITE)
        self._bedrock_jobs(f)
        self._sagemaker_jobs(f)

        fns[States.PREPARE_EVALUATION] = f = self._function(
            "PrepareEvaluation",
            "prepare_evaluation",
            "Records the training metrics and plans the evaluation of a finished job",
            env={Var.EVALUATION_BUCKET: t[Var.EVALUATION_BUCKET]},
        )
        self._table(f, *DYNAMODB_WRITE)
        f.allow("WriteEvaluationRecords", ["s3:PutObject"], [reports])
        self._platform_key_via(f, "s3", ["kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Writes only under the evaluation bucket's evaluation/reports/ prefix.",
            resources=[reports],
        )

        fns[States.EVALUATE_OPEN] = f = self._function(
            "EvaluateOpenModel",
            "evaluation_job",
            "Starts, once, and watches the Processing job that evaluates an open model",
            env={
                **{
                    k: t[k]
                    for k in (
                        Var.EVALUATION_BUCKET,
                        Var.PLATFORM_KEY_ARN,
                        Var.SAGEMAKER_ROLE_ARN,
                        Var.SUBNET_IDS,
                        Var.SECURITY_GROUP_IDS,
                    )
                },
                Var.EVALUATION_IMAGE_URI: self.evaluation_image.image_uri,
            },
        )
        self._table(f, *DYNAMODB_WRITE)
        self._processing_jobs(f, create=True)
        f.adopt(security.grant_pass_sagemaker_role(f.grantee))
        f.allow("WriteRequestsReadOutcomes", ["s3:PutObject", "s3:GetObject"], [reports])
        self._platform_key_via(f, "s3", ["kms:Decrypt", "kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Reads and writes only under the evaluation bucket's evaluation/reports/ prefix "
            "(the job's request and its outcome).",
            resources=[reports],
        )

        # Also the DeployCustomModel and CheckDeployment states' functions (on-demand mode).
        fns[States.PROVISION] = f = self._function(
            "ProvisionThroughput",
            "provision_throughput",
            "Creates the provisioned throughput or on-demand deployment a spec asks for, once",
            env=idempotency,
        )
        self._table(f, *DYNAMODB_WRITE)
        self._idempotency(f)
        self._throughput(f, create=True)
        self._deployment(f, create=True)
        self._platform_key_via(f, "bedrock", KEY_FOR_SERVICE_ACTIONS)

        fns[States.CHECK_THROUGHPUT] = f = self._function(
            "CheckThroughput",
            "check_throughput",
            "Waits for throughput InService or a deployment Active; starts its expiry",
            env={
                Var.DEFAULT_SERVING_HOURS: str(o.default_serving_hours),
                Var.THROUGHPUT_MAX_WAIT_MINUTES: str(o.throughput_max_wait_minutes),
            },
        )
        self._table(f, *DYNAMODB_WRITE)
        self._throughput(f)
        self._deployment(f)

        fns[States.COMPLETE] = f = self._function(
            "CompleteJob", "complete_job", "Marks a job completed and notifies", env={}
        )
        self._table(f, *DYNAMODB_WRITE)
        self._publish(f)

        for name, construct_id, folder, description in (
            (
                States.HANDLE_FAILURE,
                "HandleFailure",
                "handle_failure",
                "Marks a failed job, removes its partial resources, notifies",
            ),
            (
                None,
                "ExecutionEnded",
                "execution_ended",
                "Stops the job of a stopped or timed-out execution, cleans up, notifies",
            ),
        ):
            f = self._function(construct_id, folder, description, env={})
            self._table(f, *DYNAMODB_WRITE)
            self._bedrock_jobs(f, stop=True)
            self._sagemaker_jobs(f, stop=True)
            self._processing_jobs(f, stop=True)
            self._delete_serving(f, endpoints=False)
            self._publish(f)
            fns[name or construct_id] = f

        fns["SubmitManifest"] = f = self._function(
            "SubmitManifest",
            "submit_manifest",
            "Starts the execution of a job manifest put under jobs/ in the data bucket",
            env={Var.STATE_MACHINE_ARN: self.state_machine_arn, **idempotency},
            pure_packages=("yaml",),
        )
        self._idempotency(f)
        manifests = self._objects("data", JOB_MANIFESTS_PREFIX)
        f.allow("ReadManifests", ["s3:GetObject", "s3:GetObjectVersion"], [manifests])
        self._platform_key_via(f, "s3", ["kms:Decrypt"])
        f.allow("StartExecutions", ["states:StartExecution"], [self.state_machine_arn])
        f.allow("DescribeExecutions", ["states:DescribeExecution"], [self.executions_arn])
        self._publish(f)
        suppress_wildcards(
            f.policy,
            "Reads only job manifests under the data bucket's jobs/ prefix and describes only "
            "executions of this platform's state machine (named after their job ids).",
            resources=[manifests, self.executions_arn],
        )

        fns["CleanupExpired"] = f = self._function(
            "CleanupExpired",
            "cleanup_expired",
            "Warns about, then deletes, serving resources past their expiry",
            env={Var.EXPIRY_WARNING_HOURS: str(o.expiry_warning_hours)},
            timeout=Duration.minutes(5),
        )
        self._table(f, *DYNAMODB_WRITE)
        self._delete_serving(f, endpoints=True)
        self._publish(f)
        return fns

    # -- permission helpers ------------------------------------------------------------------

    def _table(self, f: PlatformFunction, *actions: str) -> None:
        f.allow("UseJobTable", actions, [self.job_table.table_arn])

    def _idempotency(self, f: PlatformFunction) -> None:
        f.allow("UseIdempotencyTable", IDEMPOTENCY_ACTIONS, [self.idempotency_table.table_arn])

    def _publish(self, f: PlatformFunction) -> None:
        f.allow("PublishNotifications", ["sns:Publish"], [self.topic.topic_arn])

    def _platform_key_via(
        self, f: PlatformFunction, service: str, actions, *more_services: str
    ) -> None:
        """The platform key, only through the services that encrypt with it for us."""
        via = [f"{name}.{self.region}.amazonaws.com" for name in (service, *more_services)]
        f.allow(
            "UsePlatformKeyViaServices",
            actions,
            [self._platform_key.key_arn],
            {"StringEquals": {"kms:ViaService": via}},
        )

    def _bedrock_jobs(self, f: PlatformFunction, *, create: bool = False, stop: bool = False):
        jobs = self._arn("bedrock", "model-customization-job/*")
        f.allow("DescribeBedrockJobs", ["bedrock:GetModelCustomizationJob"], [jobs])
        wildcards = [jobs]
        if create:
            models = self._arn("bedrock", "custom-model/*")
            foundation = self._arn("bedrock", "foundation-model/*", account=False)
            f.allow(
                "CreateTaggedBedrockJobs",
                ["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"],
                [jobs, models, foundation],
                self._request_tagged,
            )
            wildcards += [models, foundation]
        if stop:
            f.allow(
                "StopOwnBedrockJobs",
                ["bedrock:StopModelCustomizationJob"],
                [jobs],
                {
                    "StringEquals": {
                        f"aws:ResourceTag/{tags.PLATFORM}": self._settings.resource_prefix
                    }
                },
            )
        suppress_wildcards(
            f.policy,
            "Bedrock job and model ids are assigned at creation; creation requires the "
            "platform tag and the foundation-model wildcard covers base models only.",
            resources=wildcards,
        )

    @property
    def _request_tagged(self) -> dict[str, dict[str, str]]:
        return {"StringEquals": {f"aws:RequestTag/{tags.PLATFORM}": self._settings.resource_prefix}}

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
                f"aws:RequestTag/{tags.PLATFORM}": self._settings.resource_prefix,
                "sagemaker:OutputKmsKey": self._platform_key.key_arn,
            },
            "ForAllValues:StringEquals": {
                "sagemaker:VpcSubnets": self._subnet_ids,
                "sagemaker:VpcSecurityGroupIds": [self._security_group_id],
            },
            "Null": {"sagemaker:VpcSubnets": "false"},
        }

    def _sagemaker_jobs(self, f: PlatformFunction, *, create: bool = False, stop: bool = False):
        jobs = self._arn("sagemaker", "training-job/*")
        f.allow("DescribeTrainingJobs", ["sagemaker:DescribeTrainingJob"], [jobs])
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._settings.resource_prefix}}
        if create:
            # ... on an allowed instance family.
            f.allow(
                "CreateIsolatedTrainingJobs",
                ["sagemaker:CreateTrainingJob"],
                [jobs],
                {
                    **self._isolated_job_conditions(),
                    "ForAllValues:StringLike": {
                        "sagemaker:InstanceTypes": [
                            f"ml.{family}.*"
                            for family in self._settings.training.allowed_instance_families
                        ]
                    },
                },
            )
            f.allow("TagTrainingJobsOnCreate", ["sagemaker:AddTags"], [jobs], self._request_tagged)
        if stop:
            f.allow("StopOwnTrainingJobs", ["sagemaker:StopTrainingJob"], [jobs], own)
        suppress_wildcards(
            f.policy,
            "Training job names are the job ids chosen per spec at run time; creating requires "
            "network isolation, traffic encryption and the platform tag.",
            resources=[jobs],
        )

    def _processing_jobs(self, f: PlatformFunction, *, create: bool = False, stop: bool = False):
        jobs = self._arn("sagemaker", "processing-job/*")
        f.allow("DescribeProcessingJobs", ["sagemaker:DescribeProcessingJob"], [jobs])
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._settings.resource_prefix}}
        if create:
            f.allow(
                "CreateIsolatedProcessingJobs",
                ["sagemaker:CreateProcessingJob"],
                [jobs],
                {
                    **self._isolated_job_conditions(),
                    # Instance types with NVMe storage take no volume key (SageMaker
                    # encrypts it in hardware), so the key is checked only when sent.
                    "StringEqualsIfExists": {
                        "sagemaker:VolumeKmsKey": self._platform_key.key_arn,
                    },
                },
            )
            f.allow(
                "TagProcessingJobsOnCreate", ["sagemaker:AddTags"], [jobs], self._request_tagged
            )
        if stop:
            f.allow("StopOwnProcessingJobs", ["sagemaker:StopProcessingJob"], [jobs], own)
        suppress_wildcards(
            f.policy,
            "Evaluation job names derive from the job ids chosen per spec at run time; "
            "creating requires network isolation, encryption with the platform key and the "
            "platform tag; stopping requires the platform tag.",
            resources=[jobs],
        )

    def _allow_image_pull(self, security: SecurityStack) -> None:
        """Let the SageMaker execution role pull the training and evaluation images (a
        customer managed policy here, next to the images, so the security stack need not know
        the assets)."""
        pull = [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        iam.ManagedPolicy(
            self,
            "EvaluationImagePull",
            description=(
                "The SageMaker execution role pulls the platform's training and evaluation images"
            ),
            roles=[security.sagemaker_execution_role],
            statements=[
                iam.PolicyStatement(
                    sid="PullEvaluationImage",
                    actions=pull,
                    resources=[self.evaluation_image.repository.repository_arn],
                ),
                iam.PolicyStatement(
                    sid="PullTrainingImage",
                    actions=pull,
                    resources=[self.training_image.repository.repository_arn],
                ),
            ],
        )

    def _throughput(self, f: PlatformFunction, *, create: bool = False) -> None:
        throughputs = self._arn("bedrock", "provisioned-model/*")
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._settings.resource_prefix}}
        f.allow("ReadThroughput", ["bedrock:GetProvisionedModelThroughput"], [throughputs])
        f.allow("TagOwnThroughput", ["bedrock:TagResource"], [throughputs], own)
        wildcards = [throughputs]
        if create:
            # Creation is authorized against the custom model and its base model, see
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
            models = self._arn("bedrock", "custom-model/*")
            foundation = self._arn("bedrock", "foundation-model/*", account=False)
            f.allow(
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

    def _deployment(self, f: PlatformFunction, *, create: bool = False) -> None:
        """On-demand custom model deployments: read, tag with the expiry, create tagged.

        Actions, resource types and condition keys:
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html
        """
        deployments = self._arn("bedrock", "custom-model-deployment/*")
        own = {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": self._settings.resource_prefix}}
        f.allow("ReadDeployment", ["bedrock:GetCustomModelDeployment"], [deployments])
        f.allow("TagOwnDeployment", ["bedrock:TagResource"], [deployments], own)
        wildcards = [deployments]
        if create:
            # Creation is authorized against the deployment and the custom model it serves.
            models = self._arn("bedrock", "custom-model/*")
            f.allow(
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

    def _delete_serving(self, f: PlatformFunction, *, endpoints: bool) -> None:
        """Delete only this environment's serving resources, and never those tagged to keep."""
        prefix = self._settings.resource_prefix
        own_and_not_kept = {
            "StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix},
            "StringNotEquals": {f"aws:ResourceTag/{tags.KEEP}": tags.KEEP_VALUE},
        }
        throughputs = self._arn("bedrock", "provisioned-model/*")
        f.allow(
            "DeleteOwnThroughput",
            ["bedrock:DeleteProvisionedModelThroughput"],
            [throughputs],
            own_and_not_kept,
        )
        deployments = self._arn("bedrock", "custom-model-deployment/*")
        f.allow(
            "DeleteOwnDeployments",
            ["bedrock:DeleteCustomModelDeployment"],
            [deployments],
            own_and_not_kept,
        )
        wildcards = [throughputs, deployments]
        if endpoints:
            endpoint_arns = self._arn("sagemaker", "endpoint/*")
            f.allow(
                "FindServingResources",
                [
                    "bedrock:ListProvisionedModelThroughputs",
                    "bedrock:ListCustomModelDeployments",
                    "sagemaker:ListEndpoints",
                ],
                ["*"],
            )
            f.allow(
                "ReadBedrockServingTags",
                ["bedrock:ListTagsForResource"],
                [throughputs, deployments],
            )
            f.allow("ReadEndpointTags", ["sagemaker:ListTags"], [endpoint_arns])
            f.allow(
                "MarkOwnResourcesWarned",
                ["bedrock:TagResource"],
                [throughputs, deployments],
                {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix}},
            )
            f.allow(
                "MarkOwnEndpointsWarned",
                ["sagemaker:AddTags"],
                [endpoint_arns],
                {"StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": prefix}},
            )
            f.allow(
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

    # -- state machine ------------------------------------------------------------------------

    def _state_machine(self) -> sfn.StateMachine:
        o = self._orchestration
        task_functions: dict[str, lambda_.IFunction] = {
            name: self.functions[name].function
            for name in (
                States.REGISTER,
                States.VALIDATE,
                States.START_BEDROCK,
                States.START_SAGEMAKER,
                States.WAIT,
                States.COLLECT,
                States.PROVISION,
                States.CHECK_THROUGHPUT,
                States.PREPARE_EVALUATION,
                States.EVALUATE_OPEN,
                States.COMPLETE,
                States.HANDLE_FAILURE,
            )
        }
        for name in (States.EVALUATE_BEDROCK, States.REGISTER_MODEL):
            task_functions[name] = self._serving_functions[name]
        workflow = FineTuningWorkflow(self, "Workflow", functions=task_functions, settings=o)
        log_group = encrypted_log_group(
            self,
            "StateMachineLogGroup",
            key=self.key,
            retention_days=self._settings.logs.retention_days,
            log_group_name=f"/aws/vendedlogs/states/{self.state_machine_name}",
        )
        role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the fine-tuning state machine",
        )
        policy = iam.ManagedPolicy(
            self,
            "StateMachinePolicy",
            roles=[role],
            description="Invoke the orchestration functions; logs, traces and the key",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeTaskFunctions",
                    actions=["lambda:InvokeFunction"],
                    resources=[fn.function_arn for fn in task_functions.values()],
                ),
                # Vended-log delivery to CloudWatch Logs, see
                # https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
                iam.PolicyStatement(
                    sid="DeliverExecutionLogs",
                    actions=[
                        "logs:CreateLogDelivery",
                        "logs:GetLogDelivery",
                        "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery",
                        "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies",
                        "logs:DescribeLogGroups",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="WriteTraces",
                    actions=[
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "xray:GetSamplingRules",
                        "xray:GetSamplingTargets",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="UseOrchestrationKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                ),
            ],
        )
        suppress_wildcards(
            policy,
            "CloudWatch Logs delivery and X-Ray APIs support no resource-level permissions.",
            resources=["*"],
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(workflow.definition),
            role=role.without_policy_updates(),
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(
                self.key, Duration.minutes(5)
            ),
            # Backstop past the job deadline; the execution-ended rule stops the job.
            timeout=Duration.hours(o.max_job_hours + 12),
            comment="Validate, start, wait for, collect, evaluate and serve one fine-tuning job",
        )
        depend_only_on_policy(machine, policy)
        return machine

    # -- events, schedule, parameters -----------------------------------------------------------

    def _target(self, name: str) -> targets.LambdaFunction:
        return targets.LambdaFunction(
            self.functions[name].function,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=4,
            max_event_age=Duration.hours(6),
        )

    def _rules(self) -> None:
        events.Rule(
            self,
            "BedrockJobStateRule",
            description="Bedrock model customization job state changes -> waiting executions",
            event_pattern=events.EventPattern(
                source=[BEDROCK_EVENT[0]], detail_type=[BEDROCK_EVENT[1]]
            ),
            targets=[self._target("JobEvents")],
        )
        events.Rule(
            self,
            "SageMakerJobStateRule",
            description="SageMaker training jobs that ended -> waiting executions",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_EVENT[0]],
                detail_type=[SAGEMAKER_EVENT[1]],
                detail={"TrainingJobStatus": JOB_END_STATUSES},
            ),
            targets=[self._target("JobEvents")],
        )
        events.Rule(
            self,
            "ExecutionEndedRule",
            description="Fine-tuning executions stopped, timed out or failed -> clean up",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": EXECUTION_ENDED_STATUSES,
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[self._target("ExecutionEnded")],
        )
        # Needs EventBridge notifications on the data bucket (storage stack), see
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html
        events.Rule(
            self,
            "ManifestUploadedRule",
            description="Job manifests put under jobs/ in the data bucket -> new executions",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket_name(self._settings, "data")]},
                    "object": {"key": [{"prefix": JOB_MANIFESTS_PREFIX}]},
                },
            ),
            targets=[self._target("SubmitManifest")],
        )

    def _cleanup_schedule(self) -> None:
        role = iam.Role(
            self,
            "CleanupScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description="Lets EventBridge Scheduler start the expiry cleanup",
        )
        cleanup = self.functions["CleanupExpired"].function
        iam.ManagedPolicy(
            self,
            "CleanupSchedulePolicy",
            roles=[role],
            description="Invoke the cleanup function; dead letters; the schedule's key",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeCleanup",
                    actions=["lambda:InvokeFunction"],
                    resources=[cleanup.function_arn],
                ),
                iam.PolicyStatement(
                    sid="SendToDeadLetterQueue",
                    actions=["sqs:SendMessage"],
                    resources=[self.dead_letter_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="UseOrchestrationKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                ),
            ],
        )
        scheduler.Schedule(
            self,
            "CleanupSchedule",
            description="Warns about and deletes serving resources past their expiry",
            schedule=scheduler.ScheduleExpression.rate(
                Duration.minutes(self._orchestration.cleanup_interval_minutes)
            ),
            target=scheduler_targets.LambdaInvoke(
                cleanup,
                role=role.without_policy_updates(),
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            ),
            key=self.key,
        )

    def _publish_parameters(self) -> None:
        settings = self._settings
        for parameter, value in {
            OrchestrationParameter.STATE_MACHINE_ARN: self.state_machine.state_machine_arn,
            OrchestrationParameter.JOB_TABLE_NAME: self.job_table.table_name,
            OrchestrationParameter.NOTIFICATION_TOPIC_ARN: self.topic.topic_arn,
            OrchestrationParameter.KMS_KEY_ARN: self.key.key_arn,
            OrchestrationParameter.RFT_GRADER_FUNCTION_ARN: self.rft_grader.arn,
        }.items():
            construct_id = "Param" + "".join(
                part.capitalize() for part in parameter.value.replace("/", "-").split("-")
            )
            ssm.StringParameter(
                self,
                construct_id,
                parameter_name=orchestration_parameter_name(
                    settings.project, settings.environment, parameter
                ),
                string_value=value,
                description=(
                    f"{settings.resource_prefix}: {parameter.name.lower().replace('_', ' ')}"
                ),
            )

    # -- grants for other stacks and pipelines ------------------------------------------------

    def grant_start_job(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions (as ``finetune job create --via-platform`` does) and read them."""
        grant = self.state_machine.grant_start_execution(grantee)
        self.state_machine.grant_read(grantee)
        self.key.grant_encrypt_decrypt(grantee)
        return grant

    def grant_read_jobs(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the job table (``finetune job list --via-platform``)."""
        return self.job_table.grant_read_data(grantee)

    @property
    def lambda_functions(self) -> list[lambda_.Function]:
        """Every function of this stack, the RFT grader included (monitoring alarms on each)."""
        return [*(f.function for f in self.functions.values()), self.rft_grader.function.function]

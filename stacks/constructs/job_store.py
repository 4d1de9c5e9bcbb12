"""The orchestration's job store: the records a fine-tuning job leaves and the channels
that carry its failures and notifications.

One customer managed key (rotated, retained) encrypts the job table, the idempotency table,
the notification topic and the dead-letter queue, and the state machine, logs and schedule
that the other orchestration constructs add. Its policy admits exactly the AWS services that
deliver into these resources (CloudWatch Logs, EventBridge, SNS, CloudWatch alarms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from finetuning.orchestration.records import CREATED_INDEX, STATUS_INDEX
from stacks.compliance import suppress
from stacks.constructs.logical_ids import StackLevelConstruct, keep_flat_logical_ids
from stacks.constructs.platform_function import PlatformFunction

# What Powertools idempotency does with its table, see
# https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/#iam-permissions
IDEMPOTENCY_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


@dataclass(frozen=True)
class JobStoreProps:
    """What the job store is built from.

    - ``resource_prefix``: ``<project>-<environment>``, in the key's alias and description
      and the topic's display name.
    - ``key_alias``: the orchestration key's alias (``stacks.settings.naming``).
    - ``notification_emails``: subscribed to the topic (their dead letters go to the queue).
    """

    resource_prefix: str
    key_alias: str
    notification_emails: Sequence[str] = ()


class JobStore(StackLevelConstruct):
    """Key, dead-letter queue, job table, idempotency table and notification topic.

    Its resources keep the logical ids they had as direct children of the orchestration
    stack (:class:`~stacks.constructs.logical_ids.StackLevelConstruct`). The ``grant_*``
    methods write one named statement into a :class:`PlatformFunction`'s managed policy and
    return the ``iam.Grant``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: JobStoreProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.key = self._key()
        self.dead_letter_queue = self._dead_letter_queue()
        self.job_table = self._job_table()
        self.idempotency_table = self._idempotency_table()
        self.topic = self._topic()
        keep_flat_logical_ids(self)

    # -- grants -----------------------------------------------------------------------------

    def grant_job_table(self, function: PlatformFunction, *actions: str) -> iam.Grant:
        """``actions`` on the job table (no index: the functions read and write by job id)."""
        return function.allow("UseJobTable", actions, [self.job_table.table_arn])

    def grant_idempotency(self, function: PlatformFunction) -> iam.Grant:
        """What Powertools idempotency does with its table."""
        return function.allow(
            "UseIdempotencyTable", IDEMPOTENCY_ACTIONS, [self.idempotency_table.table_arn]
        )

    def grant_publish(self, function: PlatformFunction) -> iam.Grant:
        """Publish notifications to the topic."""
        return function.allow("PublishNotifications", ["sns:Publish"], [self.topic.topic_arn])

    # -- resources --------------------------------------------------------------------------

    def _key(self) -> kms.Key:
        stack = Stack.of(self)
        key = kms.Key(
            self,
            "OrchestrationKey",
            alias=self._props.key_alias,
            description=(
                f"Encrypts the {self._props.resource_prefix} orchestration's job table, "
                "executions, topic, queue and logs"
            ),
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
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
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:"
                        f"{stack.region}:{stack.account}:log-group:*"
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
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
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
            display_name=f"{self._props.resource_prefix} fine-tuning",
            master_key=self.key,
            enforce_ssl=True,
        )
        for email in self._props.notification_emails:
            topic.add_subscription(
                subscriptions.EmailSubscription(email, dead_letter_queue=self.dead_letter_queue)
            )
        return topic

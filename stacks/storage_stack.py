"""Storage: the platform's customer-managed key and its four buckets.

Every bucket is SSE-KMS with the platform key and bucket keys, blocks public access,
accepts only TLS 1.2+ requests, is versioned and access-logged, enforces bucket-owner
object ownership and survives ``cdk destroy`` (data and models are never lost with a
stack). The key prefixes are documented in docs/storage.md.
"""

from __future__ import annotations

from aws_cdk import (
    Aws,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_kms as kms,
)
from aws_cdk import (
    aws_s3 as s3,
)
from constructs import Construct

from finetuning.platform import CHECKPOINTS_PREFIX, PlatformParameter
from stacks.compliance import suppress
from stacks.discovery import publish_parameter
from stacks.settings import PlatformSettings


def bucket_name(settings: PlatformSettings, purpose: str) -> str:
    """Deterministic, globally unique bucket name, so policies in other stacks can name the
    bucket without a cross-stack reference: ``<project>-<env>-<purpose>-<account>-<region>``."""
    return f"{settings.resource_prefix}-{purpose}-{Aws.ACCOUNT_ID}-{settings.region}"


class StorageStack(Stack):
    """KMS key plus data, artifacts, evaluation and access-log buckets."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PlatformSettings, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings

        self.key = kms.Key(
            self,
            "PlatformKey",
            alias=f"alias/{settings.resource_prefix}",
            description=f"Encrypts the {settings.resource_prefix} fine-tuning platform's data",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._allow_log_services()
        # Provisioned throughput for a custom Amazon Nova model: Bedrock itself (not the
        # caller's role) decrypts and re-encrypts the model with the key it was made with,
        # the PermissionsNovaProvisionedThroughput statement of
        # https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PermissionsNovaProvisionedThroughput",
                principals=[iam.ServicePrincipal("bedrock.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={
                    "ForAnyValue:StringEquals": {
                        "kms:EncryptionContextKeys": "aws:bedrock:custom-model"
                    }
                },
            )
        )

        self.access_logs_bucket = self._bucket(
            "AccessLogsBucket",
            purpose="access-logs",
            access_logs=None,
            expire_current_after=settings.storage.access_log_expiration_days,
        )
        # S3 server access logging delivers as logging.s3.amazonaws.com; with SSE-KMS on
        # the target bucket, that principal needs the key (see docs/storage.md).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowS3ServerAccessLogDelivery",
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        for rule in (
            "AwsSolutions-S1",
            "HIPAA.Security-S3BucketLoggingEnabled",
            "NIST.800.53.R5-S3BucketLoggingEnabled",
        ):
            suppress(
                self.access_logs_bucket,
                rule,
                "This is the access-log target; logging it to itself would loop.",
            )

        self.data_bucket = self._bucket(
            "DataBucket", purpose="data", access_logs=self.access_logs_bucket
        )
        # Job manifests put under jobs/ start runs through EventBridge (orchestration stack).
        # The L1 property avoids the custom-resource function `event_bridge_enabled` adds.
        self.data_bucket.node.default_child.add_property_override(
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
        )
        self.artifacts_bucket = self._bucket(
            "ArtifactsBucket",
            purpose="artifacts",
            access_logs=self.access_logs_bucket,
            extra_rules=[
                s3.LifecycleRule(
                    id="ExpireOldCheckpoints",
                    prefix=CHECKPOINTS_PREFIX,
                    expiration=Duration.days(settings.storage.checkpoint_expiration_days),
                )
            ],
        )
        self.evaluation_bucket = self._bucket(
            "EvaluationBucket", purpose="evaluation", access_logs=self.access_logs_bucket
        )

        for parameter, value in {
            PlatformParameter.KMS_KEY_ARN: self.key.key_arn,
            PlatformParameter.DATA_BUCKET: self.data_bucket.bucket_name,
            PlatformParameter.ARTIFACTS_BUCKET: self.artifacts_bucket.bucket_name,
            PlatformParameter.EVALUATION_BUCKET: self.evaluation_bucket.bucket_name,
            PlatformParameter.ACCESS_LOGS_BUCKET: self.access_logs_bucket.bucket_name,
        }.items():
            publish_parameter(self, settings, parameter, value)

    @property
    def buckets(self) -> list[s3.Bucket]:
        return [
            self.data_bucket,
            self.artifacts_bucket,
            self.evaluation_bucket,
            self.access_logs_bucket,
        ]

    def _bucket(
        self,
        construct_id: str,
        *,
        purpose: str,
        access_logs: s3.IBucket | None,
        extra_rules: list[s3.LifecycleRule] | None = None,
        expire_current_after: int | None = None,
    ) -> s3.Bucket:
        storage = self._settings.storage
        rules = [
            s3.LifecycleRule(
                id="AbortIncompleteMultipartUploads",
                abort_incomplete_multipart_upload_after=Duration.days(
                    storage.abort_incomplete_multipart_upload_days
                ),
            ),
            s3.LifecycleRule(
                id="ExpireNoncurrentVersions",
                noncurrent_version_expiration=Duration.days(
                    storage.noncurrent_version_expiration_days
                ),
            ),
            *(extra_rules or []),
        ]
        if expire_current_after is not None:
            rules.append(
                s3.LifecycleRule(id="ExpireLogs", expiration=Duration.days(expire_current_after))
            )
        bucket = s3.Bucket(
            self,
            construct_id,
            bucket_name=bucket_name(self._settings, purpose),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id}/" if access_logs else None,
            lifecycle_rules=rules,
            removal_policy=RemovalPolicy.RETAIN,
            auto_delete_objects=False,
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                bucket,
                f"{pack}-S3BucketReplicationEnabled",
                "Cross-region replication doubles storage cost; versioning plus RETAIN on "
                "delete protect against loss inside the region. Enable it per bucket if "
                "your recovery objective needs a second region.",
            )
        return bucket

    def _allow_log_services(self) -> None:
        """Let CloudWatch Logs encrypt this account's log groups with the platform key."""
        self.key.add_to_resource_policy(
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

"""Storage stack: the customer key and the properties every bucket must have."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.support.synth import SynthResult

BUCKET_PURPOSES = ("data", "artifacts", "evaluation", "access-logs")


def buckets(result: SynthResult) -> dict[str, dict]:
    return {lid: r for _, lid, r in result.resources("AWS::S3::Bucket")}


def key_logical_id(result: SynthResult) -> str:
    """The platform key: the storage stack's one KMS key."""
    ((logical_id, _),) = [
        (lid, r)
        for stack, lid, r in result.resources("AWS::KMS::Key")
        if stack.endswith("-storage")
    ]
    return logical_id


def test_customer_key_with_rotation_alias_and_retention(dev: SynthResult) -> None:
    template = dev.template("-storage")
    template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "PendingWindowInDays": 30},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/llm-finetuning-dev"})


def test_four_buckets_with_deterministic_names(dev: SynthResult) -> None:
    names = sorted(r["Properties"]["BucketName"]["Fn::Join"][1][0] for r in buckets(dev).values())
    assert names == sorted(f"llm-finetuning-dev-{p}-" for p in BUCKET_PURPOSES)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_bucket_is_encrypted_with_the_customer_key(synth, environment: str) -> None:
    result = synth(environment)
    key = key_logical_id(result)
    for logical_id, bucket in buckets(result).items():
        (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["BucketKeyEnabled"] is True, logical_id
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": [key, "Arn"]},
        }, logical_id


def test_every_bucket_is_private_versioned_owned_and_retained(dev: SynthResult) -> None:
    for logical_id, bucket in buckets(dev).items():
        props = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain", logical_id
        assert bucket["UpdateReplacePolicy"] == "Retain", logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert props["OwnershipControls"] == {
            "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
        }, logical_id


def test_every_bucket_policy_denies_plain_http_and_old_tls(dev: SynthResult) -> None:
    policies = {
        r["Properties"]["Bucket"]["Ref"]: r for _, _, r in dev.resources("AWS::S3::BucketPolicy")
    }
    assert set(policies) == set(buckets(dev))
    for bucket_id, policy in policies.items():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        denies = [s for s in statements if s["Effect"] == "Deny"]
        conditions = [s["Condition"] for s in denies]
        assert {"Bool": {"aws:SecureTransport": "false"}} in conditions, bucket_id
        assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions, bucket_id


def test_access_logs_go_to_the_log_bucket(dev: SynthResult) -> None:
    all_buckets = buckets(dev)
    (log_bucket,) = [lid for lid in all_buckets if lid.startswith("AccessLogsBucket")]
    assert "LoggingConfiguration" not in all_buckets[log_bucket]["Properties"]
    for logical_id, bucket in all_buckets.items():
        if logical_id == log_bucket:
            continue
        logging = bucket["Properties"]["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": log_bucket}
        assert logging["LogFilePrefix"].endswith("/")
    # Log delivery may write SSE-KMS objects to the log bucket: the key allows it.
    dev.template("-storage").has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AllowS3ServerAccessLogDelivery",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_lifecycle_rules_follow_settings(synth, environment: str) -> None:
    from stacks.settings import load_settings

    storage = load_settings(environment).storage
    for logical_id, bucket in buckets(synth(environment)).items():
        rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
        assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": storage.abort_incomplete_multipart_upload_days
        }
        assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": storage.noncurrent_version_expiration_days
        }
        if logical_id.startswith("ArtifactsBucket"):
            checkpoints = rules["ExpireOldCheckpoints"]
            assert checkpoints["Prefix"] == "models/checkpoints/"
            assert checkpoints["ExpirationInDays"] == storage.checkpoint_expiration_days
        else:
            assert "ExpireOldCheckpoints" not in rules
        if logical_id.startswith("AccessLogsBucket"):
            assert rules["ExpireLogs"]["ExpirationInDays"] == storage.access_log_expiration_days


def test_lifecycle_days_come_from_settings(synth) -> None:
    result = synth("dev", **{"storage.checkpoint_expiration_days": 3})
    (artifacts,) = [b for lid, b in buckets(result).items() if lid.startswith("ArtifactsBucket")]
    rules = {r["Id"]: r for r in artifacts["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireOldCheckpoints"]["ExpirationInDays"] == 3


def test_data_bucket_sends_events_for_job_manifests(dev: SynthResult) -> None:
    for logical_id, bucket in buckets(dev).items():
        notifications = bucket["Properties"].get("NotificationConfiguration")
        if logical_id.startswith("DataBucket"):
            assert notifications == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
        else:
            assert notifications is None, logical_id

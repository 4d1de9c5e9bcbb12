"""``--create-role``: a least-privilege service role for one job, when no platform is deployed.

The role trusts only the service that runs the job (Bedrock or SageMaker), only on behalf of
this account (``aws:SourceAccount``; for Bedrock also ``aws:SourceArn`` limited to this
account's customization jobs, as Bedrock documents against the confused-deputy problem). Its
inline policy names the exact S3 prefixes the job reads and writes, and the KMS key if any.
https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-iam-role.html
https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html

The role is named after a digest of what it grants, so the same data and output locations
reuse one role instead of piling up new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from finetuning.backends.sagemaker_images import HF_TRAINING_REPOSITORY, REGISTRY_ACCOUNTS
from finetuning.jobs import Backend, FinetuningJobConfig
from finetuning.uris import S3Uri, parse_s3_uri

logger = logging.getLogger(__name__)

ROLE_PATH = "/finetuning/"
POLICY_NAME = "finetuning-job-access"
KMS_DATA_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]


def _prefix(location: S3Uri) -> str:
    """The "directory" of an object key (``data/train.jsonl`` -> ``data/``), or the key itself
    when it already names a prefix."""
    key = location.key
    if not key or key.endswith("/"):
        return key
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


def _objects(location: S3Uri) -> str:
    return f"arn:aws:s3:::{location.bucket}/{_prefix(location)}*"


def _s3_statements(reads: list[S3Uri], writes: list[S3Uri]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    if reads:
        statements.append(
            {
                "Sid": "ReadJobData",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": sorted({_objects(location) for location in reads}),
            }
        )
    if writes:
        statements.append(
            {
                "Sid": "WriteJobOutputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": sorted({_objects(location) for location in writes}),
            }
        )
    buckets: dict[str, set[str]] = {}
    for location in [*reads, *writes]:
        buckets.setdefault(location.bucket, set()).add(_prefix(location) + "*")
    for index, (bucket, prefixes) in enumerate(sorted(buckets.items())):
        statements.append(
            {
                "Sid": f"ListJobPrefixes{index}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": sorted(prefixes)}},
            }
        )
    return statements


def role_documents(
    config: FinetuningJobConfig, account: str, region: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trust policy, permissions policy) for the job's backend."""
    reads = [parse_s3_uri(config.training_data_uri, "training_data_uri")]
    if config.validation_data_uri:
        reads.append(parse_s3_uri(config.validation_data_uri, "validation_data_uri"))
    writes = [parse_s3_uri(config.output_uri, "output_uri")]
    backend = Backend(config.backend)
    if backend is Backend.BEDROCK:
        principal = "bedrock.amazonaws.com"
        condition: dict[str, Any] = {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {
                "aws:SourceArn": f"arn:aws:bedrock:{region}:{account}:model-customization-job/*"
            },
        }
    else:
        principal = "sagemaker.amazonaws.com"
        condition = {"StringEquals": {"aws:SourceAccount": account}}
        if config.base_model and config.base_model.startswith("s3://"):
            reads.append(parse_s3_uri(config.base_model, "base_model"))
        if config.checkpoint_uri:
            writes.append(parse_s3_uri(config.checkpoint_uri, "checkpoint_uri"))
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": principal},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ],
    }
    statements = _s3_statements(reads, writes)
    if config.kms_key_id:
        statements.append(
            {
                "Sid": "UseJobKey",
                "Effect": "Allow",
                "Action": KMS_DATA_ACTIONS,
                "Resource": config.kms_key_id,
            }
        )
    if backend is Backend.SAGEMAKER:
        statements += _sagemaker_statements(config, account, region)
    return trust, {"Version": "2012-10-17", "Statement": statements}


def _sagemaker_statements(
    config: FinetuningJobConfig, account: str, region: str
) -> list[dict[str, Any]]:
    registry = REGISTRY_ACCOUNTS.get(region, "763104351884")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteTrainingJobLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs*",
        },
        {
            "Sid": "PutTrainingMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
        {
            "Sid": "PullTrainingImage",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": f"arn:aws:ecr:{region}:{registry}:repository/{HF_TRAINING_REPOSITORY}",
        },
        {
            # GetAuthorizationToken supports no resource scoping.
            "Sid": "EcrAuthorizationToken",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*",
        },
    ]
    if config.subnet_ids:
        statements += [
            {
                "Sid": "DescribeVpcForJobs",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ManageJobNetworkInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                "Resource": [
                    f"arn:aws:ec2:{region}:{account}:network-interface/*",
                    *(f"arn:aws:ec2:{region}:{account}:subnet/{s}" for s in config.subnet_ids),
                    *(
                        f"arn:aws:ec2:{region}:{account}:security-group/{g}"
                        for g in config.security_group_ids
                    ),
                ],
            },
        ]
    return statements


def ensure_role(iam: Any, sts: Any, config: FinetuningJobConfig, region: str) -> str:
    """Create (or update) the job's role, wait until IAM reports it, return its ARN.

    A role IAM reports can still be briefly unusable by the service (IAM is eventually
    consistent); the caller retries the create call on the service's "cannot assume role"
    answer for a short while.
    """
    account = sts.get_caller_identity()["Account"]
    trust, permissions = role_documents(config, account, region)
    digest = hashlib.sha256(json.dumps([trust, permissions], sort_keys=True).encode()).hexdigest()[
        :12
    ]
    name = f"finetuning-{Backend(config.backend).value}-{digest}"
    try:
        role = iam.create_role(
            RoleName=name,
            Path=ROLE_PATH,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"finetune --create-role: {Backend(config.backend).value} jobs",
            MaxSessionDuration=3600,
            Tags=[{"Key": "created-by", "Value": "finetune-create-role"}],
        )["Role"]
        logger.info("created role %s", role["Arn"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        role = iam.get_role(RoleName=name)["Role"]
    iam.put_role_policy(
        RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(permissions)
    )
    iam.get_waiter("role_exists").wait(RoleName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 30})
    return role["Arn"]


def is_role_not_ready(error: ClientError) -> bool:
    """The service's answer while a new role has not yet propagated."""
    details = error.response.get("Error", {})
    message = details.get("Message", "").lower()
    return details.get("Code") in ("ValidationException", "AccessDeniedException") and (
        "role" in message and ("assume" in message or "not authorized" in message)
    )

"""Discovery contract between the deployed platform and its clients.

The CDK stacks publish resource names under ``/<project>/<environment>/`` in SSM
Parameter Store; the CLI and the Lambda functions read them back. Keeping the keys in
one module means a renamed parameter breaks a test, not a deployment.
"""

from __future__ import annotations

from enum import StrEnum


class PlatformParameter(StrEnum):
    """Leaf names of the platform's SSM parameters (joined to the prefix)."""

    KMS_KEY_ARN = "kms/key-arn"
    DATA_BUCKET = "buckets/data"
    ARTIFACTS_BUCKET = "buckets/artifacts"
    EVALUATION_BUCKET = "buckets/evaluation"
    ACCESS_LOGS_BUCKET = "buckets/access-logs"
    SAGEMAKER_EXECUTION_ROLE_ARN = "roles/sagemaker-execution-arn"
    BEDROCK_CUSTOMIZATION_ROLE_ARN = "roles/bedrock-customization-arn"
    VPC_ID = "network/vpc-id"
    TRAINING_SUBNET_IDS = "network/training-subnet-ids"
    TRAINING_SECURITY_GROUP_ID = "network/training-security-group-id"


def parameter_prefix(project: str, environment: str) -> str:
    """The SSM path under which one environment's parameters live."""
    return f"/{project}/{environment}"


def parameter_name(project: str, environment: str, parameter: PlatformParameter) -> str:
    """Full SSM parameter name, e.g. ``/llm-finetuning/dev/buckets/data``."""
    return f"{parameter_prefix(project, environment)}/{parameter.value}"


# S3 key prefixes shared by the stacks (IAM scoping, lifecycle rules) and the library.
# The layout is documented in docs/storage.md.
TRAINING_DATA_RAW_PREFIX = "training-data/raw/"
TRAINING_DATA_PROCESSED_PREFIX = "training-data/processed/"
CHECKPOINTS_PREFIX = "models/checkpoints/"
FINAL_MODELS_PREFIX = "models/final/"
EVALUATION_REPORTS_PREFIX = "evaluation/reports/"
JOB_MANIFESTS_PREFIX = "jobs/"

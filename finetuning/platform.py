"""Discovery contract between the deployed platform and its clients: the one SSM contract.

The CDK stacks publish resource names under ``/<project>/<environment>/`` in SSM
Parameter Store (each through ``stacks.discovery.publish_parameter``); the CLI, the library
and the Lambda functions read them back. Keeping the keys, the prefix and the project and
environment defaults in one module means a renamed parameter breaks a test, not a deployment.
Standard library only: every function bundle ships this file.
"""

from __future__ import annotations

from enum import StrEnum

# Which deployed environment a client talks to when neither a flag nor a setting says:
# ``FINETUNE_PROJECT`` / ``FINETUNE_ENVIRONMENT``, else these defaults (the CDK app's too).
DEFAULT_PROJECT = "llm-finetuning"
DEFAULT_ENVIRONMENT = "dev"
PROJECT_VARIABLE = "FINETUNE_PROJECT"
ENVIRONMENT_VARIABLE = "FINETUNE_ENVIRONMENT"


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


class OrchestrationParameter(StrEnum):
    """What the orchestration stack publishes: the CLI finds the state machine and the job
    table with no ARNs to copy."""

    STATE_MACHINE_ARN = "orchestration/state-machine-arn"
    JOB_TABLE_NAME = "orchestration/job-table-name"
    NOTIFICATION_TOPIC_ARN = "orchestration/notification-topic-arn"
    KMS_KEY_ARN = "orchestration/kms-key-arn"
    # The platform's RFT grader (stacks/rft_grader.py), for library and CLI jobs to name.
    RFT_GRADER_FUNCTION_ARN = "orchestration/rft-grader-function-arn"


class ServingParameter(StrEnum):
    """What the serving stack publishes."""

    MODEL_PACKAGE_GROUP = "serving/model-package-group"
    EVALUATE_FUNCTION = "serving/evaluate-function-arn"
    REGISTER_FUNCTION = "serving/register-function-arn"
    DEPLOY_FUNCTION = "serving/deploy-function-arn"
    ENDPOINT_SECURITY_GROUP = "serving/endpoint-security-group-id"


# Any of the platform's parameters; each enum is one stack's share of the names.
Parameter = PlatformParameter | OrchestrationParameter | ServingParameter


def parameter_prefix(project: str, environment: str) -> str:
    """The SSM path under which one environment's parameters live."""
    return f"/{project}/{environment}"


def parameter_name(project: str, environment: str, parameter: Parameter) -> str:
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

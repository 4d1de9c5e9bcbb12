"""Find the deployed platform's resources from its SSM parameters.

The CDK stacks publish role ARNs, bucket names, the KMS key, subnets and the training security
group under ``/<project>/<environment>/`` (names in :mod:`finetuning.platform`). With them a
job needs only its data and a name: ``finetune job create --training-data-uri s3://... --job-name
x``. Anything given explicitly (a flag, a config field) wins over what is discovered.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from finetuning.platform import (
    CHECKPOINTS_PREFIX,
    DEFAULT_ENVIRONMENT,
    DEFAULT_PROJECT,
    ENVIRONMENT_VARIABLE,
    FINAL_MODELS_PREFIX,
    PROJECT_VARIABLE,
    PlatformParameter,
    parameter_name,
    parameter_prefix,
)

logger = logging.getLogger(__name__)

# Errors that mean "no platform visible to these credentials", not "something broke".
# Credentials AWS does not recognise (UnrecognizedClientException, expired tokens) are not
# among them: they propagate, and the CLI reports a credentials problem, not "no platform".
_NOT_VISIBLE = ("AccessDeniedException", "ParameterNotFound")


@dataclass(frozen=True)
class PlatformResources:
    """What one deployed environment of the platform provides to jobs."""

    project: str
    environment: str
    data_bucket: str | None = None
    artifacts_bucket: str | None = None
    evaluation_bucket: str | None = None
    kms_key_arn: str | None = None
    sagemaker_role_arn: str | None = None
    bedrock_role_arn: str | None = None
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)
    security_group_ids: tuple[str, ...] = field(default_factory=tuple)

    def output_uri(self, job_name: str) -> str | None:
        if not self.artifacts_bucket:
            return None
        return f"s3://{self.artifacts_bucket}/{FINAL_MODELS_PREFIX}{job_name}/"

    def checkpoint_uri(self, job_name: str) -> str | None:
        if not self.artifacts_bucket:
            return None
        return f"s3://{self.artifacts_bucket}/{CHECKPOINTS_PREFIX}{job_name}/"


def platform_coordinates(
    project: str | None = None, environment: str | None = None
) -> tuple[str, str]:
    return (
        project or os.environ.get(PROJECT_VARIABLE) or DEFAULT_PROJECT,
        environment or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_ENVIRONMENT,
    )


def discover_platform(
    ssm_client: Any, project: str | None = None, environment: str | None = None
) -> PlatformResources | None:
    """Read the platform's parameters; ``None`` when no parameter exists under its prefix."""
    project, environment = platform_coordinates(project, environment)
    prefix = parameter_prefix(project, environment)
    values: dict[str, str] = {}
    try:
        paginator = ssm_client.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=prefix, Recursive=True, WithDecryption=False):
            for parameter in page.get("Parameters", []):
                values[parameter["Name"]] = parameter["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_VISIBLE:
            logger.info("no platform parameters readable under %s: %s", prefix, exc)
            return None
        raise
    if not values:
        return None

    def value(parameter: PlatformParameter) -> str | None:
        return values.get(parameter_name(project, environment, parameter)) or None

    def listed(parameter: PlatformParameter) -> tuple[str, ...]:
        raw = value(parameter) or ""
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    return PlatformResources(
        project=project,
        environment=environment,
        data_bucket=value(PlatformParameter.DATA_BUCKET),
        artifacts_bucket=value(PlatformParameter.ARTIFACTS_BUCKET),
        evaluation_bucket=value(PlatformParameter.EVALUATION_BUCKET),
        kms_key_arn=value(PlatformParameter.KMS_KEY_ARN),
        sagemaker_role_arn=value(PlatformParameter.SAGEMAKER_EXECUTION_ROLE_ARN),
        bedrock_role_arn=value(PlatformParameter.BEDROCK_CUSTOMIZATION_ROLE_ARN),
        vpc_id=value(PlatformParameter.VPC_ID),
        subnet_ids=listed(PlatformParameter.TRAINING_SUBNET_IDS),
        security_group_ids=listed(PlatformParameter.TRAINING_SECURITY_GROUP_ID),
    )

"""What a function knows about the deployed platform, read from its environment variables.

The stacks (orchestration and serving) set on each function only the variables that function
needs;
reading one that is not set raises :class:`ConfigurationError` naming it, so a wiring
mistake fails loudly on the first invocation instead of half-way through a job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from finetuning.orchestration.errors import ConfigurationError

if TYPE_CHECKING:
    from finetuning.approved_model_deployment import ServingSettings


class Var:
    """Environment variable names, shared by the stack (writer) and the functions (readers)."""

    REGION = "AWS_REGION"
    RESOURCE_PREFIX = "PLATFORM_RESOURCE_PREFIX"
    JOB_TABLE = "JOB_TABLE_NAME"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE_NAME"
    STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
    TOPIC_ARN = "NOTIFICATION_TOPIC_ARN"
    DATA_BUCKET = "DATA_BUCKET"
    ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET"
    EVALUATION_BUCKET = "EVALUATION_BUCKET"
    PLATFORM_KEY_ARN = "PLATFORM_KEY_ARN"
    SAGEMAKER_ROLE_ARN = "SAGEMAKER_EXECUTION_ROLE_ARN"
    BEDROCK_ROLE_ARN = "BEDROCK_CUSTOMIZATION_ROLE_ARN"
    SUBNET_IDS = "TRAINING_SUBNET_IDS"
    SECURITY_GROUP_IDS = "TRAINING_SECURITY_GROUP_IDS"
    DEFAULT_INSTANCE_TYPE = "DEFAULT_INSTANCE_TYPE"
    ALLOWED_INSTANCE_FAMILIES = "ALLOWED_INSTANCE_FAMILIES"
    TRAINING_IMAGE_URI = "TRAINING_IMAGE_URI"
    EVALUATION_IMAGE_URI = "EVALUATION_IMAGE_URI"
    DEFAULT_SERVING_HOURS = "DEFAULT_SERVING_HOURS"
    EXPIRY_WARNING_HOURS = "EXPIRY_WARNING_HOURS"
    THROUGHPUT_MAX_WAIT_MINUTES = "THROUGHPUT_MAX_WAIT_MINUTES"
    IDEMPOTENCY_TTL_SECONDS = "IDEMPOTENCY_TTL_SECONDS"
    PRICE_TABLE = "PRICE_TABLE_JSON"
    EXPECTED_BACKEND = "EXPECTED_BACKEND"
    GRADER_FUNCTION_ARN = "RFT_GRADER_FUNCTION_ARN"
    # The serving functions (evaluate-candidate, register-model, deploy-endpoint).
    MODEL_PACKAGE_GROUP = "MODEL_PACKAGE_GROUP"
    SERVING_SETTINGS = "SERVING_SETTINGS"
    ENDPOINT_SUBNET_IDS = "ENDPOINT_SUBNET_IDS"
    ENDPOINT_SECURITY_GROUP_IDS = "ENDPOINT_SECURITY_GROUP_IDS"
    # The operations gauge function (lambda/operations_gauges, which ships no library code and
    # reads these names as literals; tests/lambda_functions/test_operations_gauges.py checks
    # they match), besides RESOURCE_PREFIX (its metrics' Environment dimension).
    METRICS_NAMESPACE = "METRICS_NAMESPACE"
    STATE_MACHINE_ARNS = "STATE_MACHINE_ARNS"
    EXPECTED_JOB_MINUTES = "EXPECTED_JOB_MINUTES"
    ENDPOINT_NAME_PREFIX = "ENDPOINT_NAME_PREFIX"
    GAUGE_PERIOD_SECONDS = "GAUGE_PERIOD_SECONDS"


@dataclass(frozen=True)
class Environment:
    """Typed access to the variables; ``values`` defaults to ``os.environ``."""

    values: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def _get(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise ConfigurationError(
                f"environment variable {name} is not set: the stack that deploys this function "
                "sets it (stacks/orchestration_stack.py, stacks/serving_stack.py)"
            )
        return value

    def _int(self, name: str) -> int:
        text = self._get(name)
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(
                f"environment variable {name}={text!r}: expected an integer"
            ) from None

    def _list(self, name: str) -> list[str]:
        return [item for item in self._get(name).split(",") if item]

    @property
    def grader_function_arn(self) -> str:
        """The platform's RFT grader Lambda (used when a manifest names no grader)."""
        return self._get(Var.GRADER_FUNCTION_ARN)

    @property
    def region(self) -> str:
        return self._get(Var.REGION)

    @property
    def resource_prefix(self) -> str:
        return self._get(Var.RESOURCE_PREFIX)

    @property
    def job_table(self) -> str:
        return self._get(Var.JOB_TABLE)

    @property
    def idempotency_table(self) -> str:
        return self._get(Var.IDEMPOTENCY_TABLE)

    @property
    def state_machine_arn(self) -> str:
        return self._get(Var.STATE_MACHINE_ARN)

    @property
    def topic_arn(self) -> str:
        return self._get(Var.TOPIC_ARN)

    @property
    def data_bucket(self) -> str:
        return self._get(Var.DATA_BUCKET)

    @property
    def artifacts_bucket(self) -> str:
        return self._get(Var.ARTIFACTS_BUCKET)

    @property
    def evaluation_bucket(self) -> str:
        return self._get(Var.EVALUATION_BUCKET)

    @property
    def platform_key_arn(self) -> str:
        return self._get(Var.PLATFORM_KEY_ARN)

    @property
    def sagemaker_role_arn(self) -> str:
        return self._get(Var.SAGEMAKER_ROLE_ARN)

    @property
    def bedrock_role_arn(self) -> str:
        return self._get(Var.BEDROCK_ROLE_ARN)

    @property
    def subnet_ids(self) -> list[str]:
        return self._list(Var.SUBNET_IDS)

    @property
    def security_group_ids(self) -> list[str]:
        return self._list(Var.SECURITY_GROUP_IDS)

    @property
    def default_instance_type(self) -> str:
        return self._get(Var.DEFAULT_INSTANCE_TYPE)

    @property
    def allowed_instance_families(self) -> list[str]:
        return self._list(Var.ALLOWED_INSTANCE_FAMILIES)

    @property
    def training_image_uri(self) -> str:
        return self._get(Var.TRAINING_IMAGE_URI)

    @property
    def evaluation_image_uri(self) -> str:
        """The evaluation Processing job's image (containers/evaluation/Dockerfile)."""
        return self._get(Var.EVALUATION_IMAGE_URI)

    @property
    def default_serving_hours(self) -> int:
        return self._int(Var.DEFAULT_SERVING_HOURS)

    @property
    def expiry_warning_hours(self) -> int:
        return self._int(Var.EXPIRY_WARNING_HOURS)

    @property
    def throughput_max_wait_minutes(self) -> int:
        return self._int(Var.THROUGHPUT_MAX_WAIT_MINUTES)

    @property
    def expected_backend(self) -> str:
        return self._get(Var.EXPECTED_BACKEND)

    @property
    def idempotency_ttl_seconds(self) -> int:
        return self._int(Var.IDEMPOTENCY_TTL_SECONDS)

    @property
    def model_package_group(self) -> str:
        return self._get(Var.MODEL_PACKAGE_GROUP)

    @property
    def endpoint_subnet_ids(self) -> list[str]:
        """Subnets of the endpoints the deploy function creates."""
        return self._list(Var.ENDPOINT_SUBNET_IDS)

    @property
    def endpoint_security_group_ids(self) -> list[str]:
        return self._list(Var.ENDPOINT_SECURITY_GROUP_IDS)

    def serving_settings(self) -> ServingSettings:
        """The serving settings the stack wrote as JSON; a missing or invalid value fails
        here (at cold start), naming the variable, instead of running on defaults."""
        from pydantic import ValidationError

        from finetuning.approved_model_deployment import ServingSettings

        text = self._get(Var.SERVING_SETTINGS)
        try:
            return ServingSettings.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigurationError(
                f"environment variable {Var.SERVING_SETTINGS}: expected the serving settings "
                "as JSON (finetuning.approved_model_deployment.ServingSettings), found "
                f"{text[:200]!r}: {exc}"
            ) from None

"""Typed, validated settings for one environment of the platform (``config/<env>.yaml``).

Settings live in ``config/<env>.yaml`` and are validated once, before any construct is
built. A bad value fails synth with a message naming the file, the field, the value and
what is allowed.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from finetuning.approved_model_deployment import ServingSettings
from finetuning.aws_jobs.instance_types import instance_family
from finetuning.platform import DEFAULT_PROJECT
from finetuning.settings import DEFAULT_INSTANCE_TYPE, InstanceType
from stacks.settings.base import SettingsError, StrictModel, read_yaml, validate_mapping
from stacks.settings.monitoring import MonitoringSettings
from stacks.settings.orchestration import OrchestrationSettings
from stacks.settings.patterns import (
    POLICY_ARN_PATTERN,
    AccountId,
    RegionCode,
    ResourceName,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

# CloudWatch Logs accepts only these retention periods (days), see
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# Accelerated SageMaker instance families the training and serving paths support, see
# https://aws.amazon.com/sagemaker/pricing/ (instance families) and
# https://docs.aws.amazon.com/sagemaker/latest/dg/notebooks-available-instance-types.html
KNOWN_ACCELERATED_FAMILIES = (
    "g4dn", "g5", "g6", "g6e", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "trn1", "trn1n",
    "inf2",
)  # fmt: skip

Days = Annotated[int, Field(ge=1, le=3650)]


class NetworkSettings(StrictModel):
    vpc_cidr: str = "10.20.0.0/16"
    max_azs: int = 2
    nat_gateways: int = Field(default=0, ge=0)
    interface_endpoints: bool = False
    flow_log_retention_days: int = 90

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"expected an IPv4 CIDR block such as 10.20.0.0/16 ({exc})") from None
        # Three subnet groups of /24 in up to three AZs need nine /24s.
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("expected a prefix length from /16 to /20 (room for nine /24 subnets)")
        if not network.is_private:
            raise ValueError("expected a private (RFC 1918) range")
        return value

    @field_validator("max_azs")
    @classmethod
    def _azs(cls, value: int) -> int:
        if value not in (2, 3):
            raise ValueError("expected 2 or 3 availability zones")
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_log_retention(value)

    @model_validator(mode="after")
    def _nat_per_az(self) -> NetworkSettings:
        if self.nat_gateways > self.max_azs:
            raise ValueError(
                f"nat_gateways={self.nat_gateways} exceeds max_azs={self.max_azs}: "
                "expected 0 (no internet egress) up to one NAT gateway per AZ"
            )
        return self


class StorageSettings(StrictModel):
    abort_incomplete_multipart_upload_days: Days = 7
    noncurrent_version_expiration_days: Days = 30
    checkpoint_expiration_days: Days = 14
    access_log_expiration_days: Days = 365


class LogSettings(StrictModel):
    retention_days: int = 90

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_log_retention(value)


class TrainingSettings(StrictModel):
    default_instance_type: InstanceType = DEFAULT_INSTANCE_TYPE
    allowed_instance_families: tuple[str, ...] = ("g5", "g6", "g6e", "p4d", "p5")

    @field_validator("allowed_instance_families")
    @classmethod
    def _families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [family for family in value if family not in KNOWN_ACCELERATED_FAMILIES]
        if unknown:
            raise ValueError(
                f"unknown instance family {', '.join(unknown)}: expected any of "
                f"{', '.join(KNOWN_ACCELERATED_FAMILIES)}"
            )
        if not value:
            raise ValueError("expected at least one instance family")
        return value

    @model_validator(mode="after")
    def _default_in_allowed(self) -> TrainingSettings:
        family = instance_family(self.default_instance_type)
        if family not in self.allowed_instance_families:
            raise ValueError(
                f"default_instance_type {self.default_instance_type!r} has instance family "
                f"{family!r}: expected one of allowed_instance_families "
                f"({', '.join(self.allowed_instance_families)})"
            )
        return self


class SecuritySettings(StrictModel):
    permissions_boundary_arn: str | None = None

    @field_validator("permissions_boundary_arn")
    @classmethod
    def _boundary(cls, value: str | None) -> str | None:
        if value is not None and not POLICY_ARN_PATTERN.match(value):
            raise ValueError(
                "expected an IAM managed policy ARN such as "
                "arn:aws:iam::123456789012:policy/PlatformBoundary"
            )
        return value


class PlatformSettings(StrictModel):
    project: ResourceName = DEFAULT_PROJECT
    environment: ResourceName
    cost_centre: str
    account: AccountId = None
    region: RegionCode = "us-east-1"
    network: NetworkSettings = NetworkSettings()
    storage: StorageSettings = StorageSettings()
    logs: LogSettings = LogSettings()
    training: TrainingSettings = TrainingSettings()
    security: SecuritySettings = SecuritySettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    serving: ServingSettings = ServingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("cost_centre")
    @classmethod
    def _cost_centre(cls, value: str) -> str:
        if not value.strip() or len(value) > 256:
            raise ValueError("expected a non-empty tag value of at most 256 characters")
        return value

    @model_validator(mode="after")
    def _bucket_names_fit(self) -> PlatformSettings:
        # <project>-<environment>-access-logs-<12-digit account>-<region> must fit S3's 63.
        longest = len(f"{self.resource_prefix}-access-logs-123456789012-{self.region}")
        if longest > 63:
            raise ValueError(
                f"project and environment names are too long together: bucket names would be "
                f"{longest} characters, S3 allows 63 (shorten project or environment by "
                f"{longest - 63})"
            )
        return self

    @property
    def ssm_prefix(self) -> str:
        from finetuning.platform import parameter_prefix

        return parameter_prefix(self.project, self.environment)

    @property
    def resource_prefix(self) -> str:
        """Prefix for physical names that must be unique per environment."""
        return f"{self.project}-{self.environment}"


def _check_log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"expected a CloudWatch Logs retention period: one of "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))} days"
        )
    return value


def settings_from_mapping(data: Any, source: Path) -> PlatformSettings:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    return validate_mapping(PlatformSettings, data, source)


def load_settings(environment: str, config_dir: Path = CONFIG_DIR) -> PlatformSettings:
    """Read and validate ``config/<environment>.yaml``."""
    path = config_dir / f"{environment}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in config_dir.glob("*.yaml"))
        raise SettingsError(
            f"{path}: no settings file for environment {environment!r}; "
            f"expected one of {', '.join(available) or '(none found)'}"
        )
    settings = settings_from_mapping(read_yaml(path), path)
    if settings.environment != environment:
        raise SettingsError(
            f"{path}: environment: expected {environment!r} to match the file name "
            f"(got {settings.environment!r})"
        )
    return settings

"""Settings validation: bad values fail naming the file, field, value and what is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.settings import PlatformSettings, SettingsError, load_settings, settings_from_mapping
from tests.support.synth import ROOT, settings_dict

SOURCE = Path("config/dev.yaml")


def error_for(**overrides) -> str:
    with pytest.raises(SettingsError) as excinfo:
        settings_from_mapping(settings_dict("dev", **overrides), SOURCE)
    return str(excinfo.value)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_shipped_settings_are_valid(environment: str) -> None:
    settings = load_settings(environment)
    assert isinstance(settings, PlatformSettings)
    assert settings.environment == environment
    assert settings.ssm_prefix == f"/llm-finetuning/{environment}"


def test_defaults_cost_nothing_while_idle() -> None:
    dev = load_settings("dev")
    assert dev.network.nat_gateways == 0
    assert dev.network.interface_endpoints is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.20.0.0/33", "expected an IPv4 CIDR block"),
        ("not-a-cidr", "expected an IPv4 CIDR block"),
        ("10.20.0.1/16", "expected an IPv4 CIDR block"),  # host bits set
        ("10.0.0.0/8", "prefix length from /16 to /20"),
        ("10.20.0.0/24", "prefix length from /16 to /20"),
        ("8.8.0.0/16", "private (RFC 1918) range"),
    ],
)
def test_bad_cidr(value: str, expected: str) -> None:
    message = error_for(**{"network.vpc_cidr": value})
    assert f"{SOURCE}: network.vpc_cidr:" in message
    assert expected in message
    assert repr(value) in message


@pytest.mark.parametrize("azs", [1, 4, 6])
def test_unknown_az_count(azs: int) -> None:
    message = error_for(**{"network.max_azs": azs})
    assert "network.max_azs: expected 2 or 3 availability zones" in message
    assert f"(got {azs})" in message


def test_more_nat_gateways_than_azs() -> None:
    message = error_for(**{"network.nat_gateways": 3})
    assert "nat_gateways=3 exceeds max_azs=2" in message


@pytest.mark.parametrize(
    "field",
    [
        "storage.noncurrent_version_expiration_days",
        "storage.checkpoint_expiration_days",
        "storage.abort_incomplete_multipart_upload_days",
    ],
)
def test_negative_retention(field: str) -> None:
    message = error_for(**{field: -5})
    assert f"{field}: Input should be greater than or equal to 1 (got -5)" in message


@pytest.mark.parametrize("field", ["logs.retention_days", "network.flow_log_retention_days"])
def test_log_retention_must_be_a_cloudwatch_value(field: str) -> None:
    message = error_for(**{field: 45})
    assert f"{field}: expected a CloudWatch Logs retention period" in message
    assert "90, 120" in message  # the allowed values are listed
    assert "(got 45)" in message


def test_unknown_instance_family() -> None:
    message = error_for(**{"training.allowed_instance_families": ["g5", "x9"]})
    assert "training.allowed_instance_families: unknown instance family x9" in message
    assert "g6e" in message  # lists what is known


def test_default_instance_type_outside_allowed_families() -> None:
    message = error_for(**{"training.default_instance_type": "ml.p4de.24xlarge"})
    assert "has instance family 'p4de'" in message
    assert "allowed_instance_families" in message


def test_malformed_instance_type() -> None:
    message = error_for(**{"training.default_instance_type": "g5.2xlarge"})
    assert "training.default_instance_type: expected a SageMaker instance type" in message
    assert "ml.<family>.<size>" in message


def test_unknown_field_lists_allowed_fields() -> None:
    message = error_for(**{"network.nat_gateway": 1})
    assert "network.nat_gateway: unknown field: expected one of vpc_cidr, max_azs" in message


def test_bad_region_and_account() -> None:
    message = error_for(region="moon-base-1", account="12345")
    assert "region: expected an AWS region code" in message
    assert "account: expected a 12-digit AWS account id" in message


def test_bad_permissions_boundary() -> None:
    message = error_for(**{"security.permissions_boundary_arn": "PlatformBoundary"})
    assert "security.permissions_boundary_arn: expected an IAM managed policy ARN" in message


def test_names_too_long_for_buckets() -> None:
    message = error_for(project="a-very-long-project-name-for-s3")
    assert "bucket names would be" in message and "S3 allows 63" in message


def test_all_problems_reported_at_once() -> None:
    message = error_for(**{"network.max_azs": 9, "logs.retention_days": 2})
    assert "network.max_azs" in message and "logs.retention_days" in message


def test_missing_environment_lists_available(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(settings_dict("dev")))
    with pytest.raises(SettingsError, match=r"no settings file for environment 'qa'.*dev"):
        load_settings("qa", config_dir=tmp_path)


def test_environment_must_match_file_name(tmp_path: Path) -> None:
    (tmp_path / "staging.yaml").write_text(yaml.safe_dump(settings_dict("dev")))
    with pytest.raises(SettingsError, match=r"staging.yaml: environment: expected 'staging'"):
        load_settings("staging", config_dir=tmp_path)


def test_invalid_yaml(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text("network: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings("dev", config_dir=tmp_path)


def test_synth_fails_with_the_settings_message() -> None:
    """`cdk synth -c env=...` runs app.py; a bad environment exits 1 with the message."""
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"env": "nope"})}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "error: " in result.stderr
    assert "no settings file for environment 'nope'" in result.stderr

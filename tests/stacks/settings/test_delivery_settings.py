"""Pipeline and monitoring settings: valid files load, bad values name file, field and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from stacks.settings import SettingsError, load_settings
from stacks.settings.monitoring import (
    AlarmSettings,
    BudgetNotificationType,
    BudgetSettings,
    BudgetThreshold,
    MonitoringSettings,
)
from stacks.settings.naming import default_state_machine_name
from stacks.settings.pipeline import (
    CodeConnectionsSource,
    PipelineSettings,
    S3Source,
    SmokeJobSettings,
    check_topology,
    cross_account,
    load_pipeline_settings,
    pipeline_settings_from_mapping,
)
from tests.support.delivery import REPO

CONNECTION = (
    "arn:aws:codeconnections:us-east-1:111111111111:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
)
SOURCE = Path("config/pipeline.yaml")


def pipeline(**overrides) -> dict:
    data = {
        "source": {
            "type": "codeconnections",
            "connection_arn": CONNECTION,
            "repository": "my-org/llm-finetuning-platform",
        },
        "stages": [
            {"environment": "dev", "smoke_job": {}},
            {"environment": "prod", "manual_approval": True},
        ],
    }
    data.update(overrides)
    return data


def error_of(data: dict) -> str:
    with pytest.raises(SettingsError) as caught:
        pipeline_settings_from_mapping(data, SOURCE)
    return str(caught.value)


def test_minimal_pipeline_settings_take_the_documented_defaults() -> None:
    settings = pipeline_settings_from_mapping(pipeline(), SOURCE)

    assert settings.name == "llm-finetuning-delivery"
    assert isinstance(settings.source, CodeConnectionsSource)
    assert settings.source.branch == "main" and settings.source.trigger_on_push
    assert [t.environment for t in settings.stages] == ["dev", "prod"]
    assert settings.stages[0].smoke_job == SmokeJobSettings()
    assert settings.stages[0].smoke_job.job_spec == "pipeline/smoke-job.json"
    assert settings.stages[1].manual_approval and settings.stages[1].smoke_job is None
    assert settings.synth.compute_type == "large" and settings.synth.timeout_minutes == 60


def test_s3_source_is_chosen_by_its_type() -> None:
    settings = pipeline_settings_from_mapping(
        pipeline(source={"type": "s3", "bucket": "my-source", "key": "src/repo.zip"}), SOURCE
    )
    assert isinstance(settings.source, S3Source)
    assert settings.source.trigger == "events"


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        (
            {
                "source": {
                    "type": "codeconnections",
                    "connection_arn": "arn:aws:s3:::x",
                    "repository": "a/b",
                }
            },
            "source.codeconnections.connection_arn",
            "expected a CodeConnections connection ARN",
        ),
        (
            {
                "source": {
                    "type": "codeconnections",
                    "connection_arn": CONNECTION,
                    "repository": "no-owner",
                }
            },
            "source.codeconnections.repository",
            "expected owner/repository",
        ),
        (
            {
                "source": {
                    "type": "codeconnections",
                    "connection_arn": CONNECTION,
                    "repository": "a/b",
                    "branch": "bad branch",
                }
            },
            "source.codeconnections.branch",
            "expected a git branch name",
        ),
        (
            {"source": {"type": "s3", "bucket": "Bad_Bucket", "key": "k.zip"}},
            "source.s3.bucket",
            "expected an S3 bucket name",
        ),
        ({"stages": []}, "stages", "expected at least one environment"),
        (
            {"stages": [{"environment": "dev"}, {"environment": "dev"}]},
            "stages",
            "environment listed twice: dev",
        ),
        (
            {"stages": [{"environment": "dev", "smoke_job": {"job_spec": "job.yaml"}}]},
            "stages.0.smoke_job.job_spec",
            "expected a .json job spec",
        ),
        (
            {"stages": [{"environment": "dev", "smoke_job": {"job_spec": "../job.json"}}]},
            "stages.0.smoke_job.job_spec",
            "relative to the repository root",
        ),
        ({"synth": {"timeout_minutes": 600}}, "synth.timeout_minutes", "less than or equal to 480"),
        ({"synth": {"compute_type": "huge"}}, "synth.compute_type", "'small'"),
        ({"account": "12345"}, "account", "12-digit AWS account id"),
        ({"region": "mars-1"}, "region", "AWS region code"),
        ({"notification_emails": ["not-an-address"]}, "notification_emails", "not an email"),
    ],
)
def test_bad_pipeline_values_name_the_file_field_and_problem(
    change: dict, field: str, expected: str
) -> None:
    message = error_of(pipeline(**change))

    assert f"{SOURCE}: {field}:" in message
    assert expected in message


def test_unknown_source_type_lists_the_known_ones() -> None:
    message = error_of(pipeline(source={"type": "codecommit", "repository": "x"}))
    assert "source" in message and "codeconnections" in message and "'s3'" in message


def test_unknown_fields_list_what_is_allowed_at_every_level() -> None:
    top = error_of(pipeline(stagez=[]))
    nested = error_of(pipeline(synth={"compute": "large"}))

    assert "stagez: unknown field: expected one of project, account, region" in top
    assert "synth.compute: unknown field: expected one of compute_type, timeout_minutes" in nested


def test_load_pipeline_settings_reads_yaml_and_reports_missing_or_broken_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline()))
    assert load_pipeline_settings(path).stages[1].environment == "prod"

    with pytest.raises(SettingsError, match="no pipeline settings; copy the example"):
        load_pipeline_settings(tmp_path / "absent.yaml")
    path.write_text("source: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_pipeline_settings(path)
    path.write_text("- a list\n")
    with pytest.raises(SettingsError, match="expected a mapping of settings, got list"):
        load_pipeline_settings(path)


def test_topology_needs_a_pipeline_account_when_an_environment_pins_one() -> None:
    settings = pipeline_settings_from_mapping(pipeline(), SOURCE)
    dev = load_settings("dev").model_copy(update={"account": "222222222222"})
    prod = load_settings("prod")

    with pytest.raises(SettingsError, match=r"stages\[dev\]: .*pins account 222222222222"):
        check_topology(settings, [dev, prod])

    pinned = settings.model_copy(update={"account": "111111111111"})
    check_topology(pinned, [dev, prod])
    assert cross_account(pinned, [dev, prod])
    assert not cross_account(pinned, [load_settings("dev"), prod])


def test_topology_refuses_an_environment_of_another_project() -> None:
    settings = pipeline_settings_from_mapping(pipeline(project="other-project"), SOURCE)
    with pytest.raises(SettingsError, match="has project 'llm-finetuning'"):
        check_topology(settings, [load_settings("dev"), load_settings("prod")])


def test_state_machine_name_is_derived_from_the_environment() -> None:
    assert default_state_machine_name(load_settings("dev")) == "llm-finetuning-dev-finetuning"


# -- monitoring settings ----------------------------------------------------------------


def test_monitoring_defaults_have_no_budget_and_five_minute_alarms() -> None:
    monitoring = MonitoringSettings()
    assert monitoring.budget is None
    assert monitoring.alarms.period_minutes == 5
    assert monitoring.alarms.expected_job_hours == 12


@pytest.mark.parametrize(
    ("alarms", "expected"),
    [
        ({"period_minutes": 7}, "expected one of 1, 5, 10, 15, 30, 60 minutes"),
        ({"period_minutes": 5, "evaluation_periods": 289}, "one day for periods under an hour"),
        ({"period_minutes": 60, "evaluation_periods": 169}, r"at most 10080 minutes \(7 days\)"),
        ({"expected_job_hours": 0}, "greater than 0"),
        ({"expected_job_hours": 24 * 8}, "less than or equal to 168"),
    ],
)
def test_alarm_settings_follow_cloudwatch_limits(alarms: dict, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        AlarmSettings.model_validate(alarms)


def test_a_day_of_five_minute_periods_is_the_longest_window_allowed() -> None:
    assert AlarmSettings(period_minutes=5, evaluation_periods=288).evaluation_periods == 288


def test_budget_thresholds_default_to_actual_and_forecast_alerts() -> None:
    budget = BudgetSettings(monthly_limit_usd=250)
    assert [(t.percent, t.type) for t in budget.thresholds] == [
        (50, BudgetNotificationType.ACTUAL),
        (80, BudgetNotificationType.ACTUAL),
        (100, BudgetNotificationType.ACTUAL),
        (100, BudgetNotificationType.FORECASTED),
    ]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"monthly_limit_usd": 0}, "greater than 0"),
        ({"monthly_limit_usd": 10, "thresholds": []}, "at least one threshold"),
        (
            {"monthly_limit_usd": 10, "thresholds": [{"percent": p} for p in range(1, 12)]},
            "11 thresholds: a budget has at most 10 notifications",
        ),
        (
            {"monthly_limit_usd": 10, "thresholds": [{"percent": 80}, {"percent": 80}]},
            "duplicate thresholds: 80% ACTUAL",
        ),
        ({"monthly_limit_usd": 10, "thresholds": [{"percent": 2_000_000}]}, "1000000"),
        ({"monthly_limit_usd": 10, "email_subscribers": ["ops"]}, "not an email address: ops"),
        (
            {"monthly_limit_usd": 10, "email_subscribers": [f"a{i}@x.io" for i in range(11)]},
            "at most 10 email subscribers",
        ),
        ({"monthly_limit_usd": 10, "scope": "organization"}, "'tags' or 'account'"),
    ],
)
def test_budget_settings_follow_aws_budgets_limits(budget: dict, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        BudgetSettings.model_validate(budget)


def test_same_percent_may_alert_on_actual_and_forecast() -> None:
    budget = BudgetSettings(
        monthly_limit_usd=10,
        thresholds=(
            BudgetThreshold(percent=100),
            BudgetThreshold(percent=100, type=BudgetNotificationType.FORECASTED),
        ),
    )
    assert len(budget.thresholds) == 2


def test_settings_are_immutable() -> None:
    settings = PipelineSettings.model_validate(pipeline())
    with pytest.raises(ValidationError):
        settings.region = "eu-west-1"  # type: ignore[misc]


def test_pipeline_names_become_valid_bucket_and_execution_name_prefixes() -> None:
    settings = pipeline_settings_from_mapping(pipeline(pipeline_name="ML.Platform@Prod_1"), SOURCE)
    assert settings.bucket_prefix == "ml-platform-prod-1"
    assert settings.execution_name_prefix == "ML-Platform-Prod_1-smoke"


def test_a_pipeline_name_too_long_for_its_bucket_is_refused() -> None:
    message = error_of(pipeline(pipeline_name="a" * 40, region="ap-southeast-2"))
    assert "too long for the artifact bucket name (78 characters, S3 allows 63)" in message
    assert "shorten pipeline_name or project by 15" in message


SETTINGS_MODULES = (
    "stacks.settings",
    "stacks.settings.base",
    "stacks.settings.patterns",
    "stacks.settings.monitoring",
    "stacks.settings.platform",
    "stacks.settings.pipeline",
    "stacks.settings.naming",
    "stacks.settings.orchestration",
)


@pytest.mark.parametrize("module", SETTINGS_MODULES)
def test_every_settings_module_imports_first_without_a_cycle(module: str) -> None:
    # Each one may be the first the interpreter loads (a test, a script, the app); the
    # base and the patterns are leaves that load no settings model.
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "print('stacks.settings.platform' in sys.modules); "
        "from stacks.settings import PlatformSettings; print(PlatformSettings.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded_platform, name = result.stdout.split()
    assert name == "PlatformSettings"
    if module in ("stacks.settings", "stacks.settings.base", "stacks.settings.patterns"):
        assert loaded_platform == "False", f"{module} loads the platform settings on import"


def test_unknown_fields_inside_lists_and_source_types_name_the_allowed_fields() -> None:
    message = error_of(
        pipeline(
            source={"type": "s3", "bucket": "my-source", "key": "src.zip", "bogus": 1},
            stages=[{"environment": "dev", "smoke_job": {"jobspec": "x.json"}}],
        )
    )
    assert "source.s3.bogus: unknown field: expected one of type, bucket, key, trigger" in message
    assert (
        "stages.0.smoke_job.jobspec: unknown field: expected one of job_spec, "
        "state_machine_name, require_quality_gate (got 'x.json')"
    ) in message

"""Typed settings of one environment's operations: alarm thresholds, gauges and the budget.

``PlatformSettings.monitoring`` carries them as ``monitoring:`` in ``config/<env>.yaml``;
the monitoring stack (``stacks/monitoring_stack.py``) builds from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stacks.settings.base import StrictModel
from stacks.settings.patterns import EMAIL_PATTERN

# A budget can have up to ten notifications; each has at most one SNS and ten email
# subscribers; a threshold is a percentage of the limit, at most 1,000,000 %. See
# https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_budgets_Notification.html
# https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_budgets_NotificationWithSubscribers.html
MAX_BUDGET_NOTIFICATIONS = 10
MAX_BUDGET_EMAIL_SUBSCRIBERS = 10
MAX_BUDGET_THRESHOLD_PERCENT = 1_000_000

# CloudWatch alarm periods are 10, 20, 30 s or a multiple of 60 s; period x evaluation
# periods may not exceed one day for periods under an hour, seven days otherwise, see
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
ALARM_PERIOD_MINUTES = (1, 5, 10, 15, 30, 60)
MAX_ALARM_EVALUATION_SECONDS_SUBHOURLY = 86_400
MAX_ALARM_EVALUATION_SECONDS = 604_800

# The Step Functions invoke action of a Standard state machine waits up to 7 days, see
# https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-StepFunctions.html
# (a job the pipeline waits for cannot be expected to run longer).
STEP_FUNCTIONS_ACTION_TIMEOUT_HOURS = 7 * 24


class AlarmSettings(StrictModel):
    """Thresholds of the alarms that notify the platform's SNS topic."""

    period_minutes: int = 5
    evaluation_periods: int = Field(default=1, ge=1)
    failed_executions: int = Field(default=1, ge=1)
    function_errors: int = Field(default=1, ge=1)
    endpoint_5xx_errors: int = Field(default=1, ge=1)
    endpoint_model_latency_ms: float = Field(default=2_000, gt=0)
    expected_job_hours: float = Field(default=12, gt=0, le=STEP_FUNCTIONS_ACTION_TIMEOUT_HOURS)

    @field_validator("period_minutes")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in ALARM_PERIOD_MINUTES:
            raise ValueError(f"expected one of {', '.join(map(str, ALARM_PERIOD_MINUTES))} minutes")
        return value

    @model_validator(mode="after")
    def _evaluation_range(self) -> AlarmSettings:
        seconds = self.period_minutes * 60 * self.evaluation_periods
        limit = (
            MAX_ALARM_EVALUATION_SECONDS_SUBHOURLY
            if self.period_minutes < 60
            else MAX_ALARM_EVALUATION_SECONDS
        )
        if seconds > limit:
            window = "one day for periods under an hour" if self.period_minutes < 60 else "7 days"
            raise ValueError(
                f"period_minutes x evaluation_periods = {seconds // 60} minutes: CloudWatch "
                f"evaluates at most {limit // 60} minutes ({window})"
            )
        return self


class BudgetNotificationType(StrEnum):
    ACTUAL = "ACTUAL"
    FORECASTED = "FORECASTED"


class BudgetThreshold(StrictModel):
    """Notify when actual (or forecast) spend exceeds ``percent`` of the monthly limit."""

    percent: float = Field(gt=0, le=MAX_BUDGET_THRESHOLD_PERCENT)
    type: BudgetNotificationType = BudgetNotificationType.ACTUAL


DEFAULT_BUDGET_THRESHOLDS = (
    BudgetThreshold(percent=50),
    BudgetThreshold(percent=80),
    BudgetThreshold(percent=100),
    BudgetThreshold(percent=100, type=BudgetNotificationType.FORECASTED),
)


class BudgetSettings(StrictModel):
    """A monthly cost budget for one environment, filtered by its cost allocation tags."""

    monthly_limit_usd: float = Field(gt=0)
    thresholds: tuple[BudgetThreshold, ...] = DEFAULT_BUDGET_THRESHOLDS
    email_subscribers: tuple[str, ...] = ()
    # "tags": only costs tagged project=<project> and environment=<env> (the tags every
    # stack carries; activate them as cost allocation tags); "account": the whole account.
    scope: Literal["tags", "account"] = "tags"

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[BudgetThreshold, ...]) -> tuple[BudgetThreshold, ...]:
        if not value:
            raise ValueError("expected at least one threshold")
        if len(value) > MAX_BUDGET_NOTIFICATIONS:
            raise ValueError(
                f"{len(value)} thresholds: a budget has at most {MAX_BUDGET_NOTIFICATIONS} "
                "notifications"
            )
        seen = [(t.percent, t.type) for t in value]
        duplicates = sorted({f"{p:g}% {t}" for p, t in seen if seen.count((p, t)) > 1})
        if duplicates:
            raise ValueError(f"duplicate thresholds: {', '.join(duplicates)}")
        return value

    @field_validator("email_subscribers")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_BUDGET_EMAIL_SUBSCRIBERS:
            raise ValueError(
                f"{len(value)} addresses: a budget notification has at most "
                f"{MAX_BUDGET_EMAIL_SUBSCRIBERS} email subscribers"
            )
        bad = [address for address in value if not EMAIL_PATTERN.match(address)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value


class MonitoringSettings(StrictModel):
    """Dashboard, alarms and budget of one environment."""

    alarms: AlarmSettings = AlarmSettings()
    budget: BudgetSettings | None = None
    # How often the gauge function samples what CloudWatch does not measure by itself
    # (running executions, provisioned throughput and endpoints in service).
    gauge_interval_minutes: int = Field(default=5, ge=1, le=60)
    # None leaves the gauge function on the account's unreserved pool (its schedule runs it
    # once per interval, well inside its timeout); a number reserves that many concurrent
    # executions (Lambda keeps 100 unreserved, so low-quota accounts cannot reserve any, see
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)

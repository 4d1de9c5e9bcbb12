"""Typed settings for delivery (the deployment pipeline) and operations (alarms, budget).

Two models live here:

- :class:`MonitoringSettings`, one per environment, under ``monitoring:`` in
  ``config/<env>.yaml`` (``PlatformSettings.monitoring``): alarm thresholds and the budget.
- :class:`PipelineSettings`, one per project, in ``config/pipeline.yaml``: where the source
  comes from, which environments the pipeline deploys in which order, the optional
  fine-tuning smoke job and the synth step's build environment.

Both are validated once, before any construct is built; a bad value fails with the file,
the field, the value and what is allowed, like the platform settings do.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from types import ModuleType

    from stacks.settings import PlatformSettings

PIPELINE_SETTINGS_FILE = "pipeline.yaml"

# CodeConnections (formerly CodeStar Connections) connection ARNs, see
# https://docs.aws.amazon.com/dtconsole/latest/userguide/connections.html
CONNECTION_ARN_PATTERN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
    r"connection/[0-9a-f-]{36}$"
)
# owner/repository for GitHub and Bitbucket; group/subgroup/project for GitLab.
REPOSITORY_PATTERN = re.compile(r"^[\w.-]+(/[\w.-]+)+$")
# Git refuses these in branch names (git-check-ref-format): spaces, ~ ^ : ? * [ \ and "..".
BRANCH_PATTERN = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[^\s~^:?*\[\\]+(?<![/.])$")
# S3 bucket naming rules, see
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
BUCKET_PATTERN = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Step Functions state machine and execution names: 1-80 characters; this keeps to the
# characters that CloudWatch Logs also accepts, see
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
STATE_MACHINE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")

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

# A CodePipeline CodeBuild action times out after 8 hours whatever the project says, see
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
# and CodeBuild accepts 5 to 2160 minutes per project, see
# https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
MIN_BUILD_TIMEOUT_MINUTES = 5
MAX_BUILD_TIMEOUT_MINUTES = 480

# The Step Functions invoke action of a Standard state machine waits up to 7 days, see
# https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-StepFunctions.html
STEP_FUNCTIONS_ACTION_TIMEOUT_HOURS = 7 * 24


def _platform() -> ModuleType:
    """``stacks.settings``, imported on first use.

    ``stacks/settings.py`` imports :class:`MonitoringSettings` from here for
    ``PlatformSettings.monitoring``, so this module must not import it while loading.
    """
    from stacks import settings

    return settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- operations: alarms and budget (per environment) --------------------------------------


class AlarmSettings(_Strict):
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


class BudgetThreshold(_Strict):
    """Notify when actual (or forecast) spend exceeds ``percent`` of the monthly limit."""

    percent: float = Field(gt=0, le=MAX_BUDGET_THRESHOLD_PERCENT)
    type: BudgetNotificationType = BudgetNotificationType.ACTUAL


DEFAULT_BUDGET_THRESHOLDS = (
    BudgetThreshold(percent=50),
    BudgetThreshold(percent=80),
    BudgetThreshold(percent=100),
    BudgetThreshold(percent=100, type=BudgetNotificationType.FORECASTED),
)


class BudgetSettings(_Strict):
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


class MonitoringSettings(_Strict):
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


# -- delivery: the pipeline (per project) --------------------------------------------------


class CodeConnectionsSource(_Strict):
    """A GitHub, GitLab or Bitbucket repository reached through a CodeConnections connection."""

    type: Literal["codeconnections"]
    connection_arn: str
    repository: str
    branch: str = "main"
    trigger_on_push: bool = True

    @field_validator("connection_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not CONNECTION_ARN_PATTERN.match(value):
            raise ValueError(
                "expected a CodeConnections connection ARN such as arn:aws:codeconnections:"
                "us-east-1:123456789012:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
            )
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not REPOSITORY_PATTERN.match(value):
            raise ValueError("expected owner/repository, e.g. my-org/llm-finetuning-platform")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not BRANCH_PATTERN.match(value):
            raise ValueError("expected a git branch name such as main or release/1.2")
        return value


class S3Source(_Strict):
    """A zip of the repository uploaded to a versioned S3 bucket."""

    type: Literal["s3"]
    bucket: str
    key: str
    # events: start on every upload (needs a CloudTrail trail that logs the bucket's
    # data events); poll: CodePipeline checks the object; none: start by hand.
    trigger: Literal["events", "poll", "none"] = "events"

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not BUCKET_PATTERN.match(value):
            raise ValueError("expected an S3 bucket name (3-63 lowercase letters, digits, - .)")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value or value.startswith("/") or len(value.encode()) > 1024:
            raise ValueError("expected an object key such as source/llm-finetuning.zip")
        return value


PipelineSource = Annotated[CodeConnectionsSource | S3Source, Field(discriminator="type")]


class SmokeJobSettings(_Strict):
    """A fine-tuning job the pipeline runs after deploying an environment."""

    # JSON file in the source, passed as-is as the state machine's input.
    job_spec: str = "pipeline/smoke-job.json"
    # Defaults to the orchestration state machine of the environment (state_machine_name).
    state_machine_name: str | None = None
    # Fail the stage when the execution output carries no quality-gate verdict at all.
    require_quality_gate: bool = False

    @field_validator("job_spec")
    @classmethod
    def _job_spec(cls, value: str) -> str:
        return check_job_spec_path(value)

    @field_validator("state_machine_name")
    @classmethod
    def _state_machine(cls, value: str | None) -> str | None:
        if value is not None and not STATE_MACHINE_NAME_PATTERN.match(value):
            raise ValueError("expected 1-80 letters, digits, hyphens and underscores")
        return value


class DeploymentTarget(_Strict):
    """One environment the pipeline deploys, in order (its settings: config/<env>.yaml)."""

    environment: str
    manual_approval: bool = False
    smoke_job: SmokeJobSettings | None = None

    @field_validator("environment")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _platform().NAME_PATTERN.match(value):
            raise ValueError(
                "expected 3-32 lowercase letters, digits and hyphens, starting with a letter"
            )
        return value


class SynthSettings(_Strict):
    """The CodeBuild environment of the step that runs the tests and synthesizes."""

    compute_type: Literal["small", "medium", "large", "x2_large"] = "large"
    timeout_minutes: int = Field(
        default=60, ge=MIN_BUILD_TIMEOUT_MINUTES, le=MAX_BUILD_TIMEOUT_MINUTES
    )
    # Runtime versions of the CodeBuild Ubuntu standard:7.0 image, see
    # https://docs.aws.amazon.com/codebuild/latest/userguide/available-runtimes.html
    python_version: Literal["3.11", "3.12"] = "3.12"
    nodejs_version: Literal["18", "20"] = "20"


class PipelineSettings(_Strict):
    """The self-updating deployment pipeline (CDK Pipelines) of the platform."""

    project: str = "llm-finetuning"
    # Toolchain account and region the pipeline lives in; null = the CLI's at deploy time.
    account: str | None = None
    region: str = "us-east-1"
    pipeline_name: str | None = None
    source: PipelineSource
    stages: tuple[DeploymentTarget, ...]
    synth: SynthSettings = SynthSettings()
    # Subscribed to the pipeline's topic: failed and succeeded runs, approvals waiting.
    notification_emails: tuple[str, ...] = ()

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _platform().NAME_PATTERN.match(value):
            raise ValueError(
                "expected 3-32 lowercase letters, digits and hyphens, starting with a letter"
            )
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not _platform().ACCOUNT_PATTERN.match(str(value)):
            raise ValueError("expected a 12-digit AWS account id, or null for any account")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _platform().REGION_PATTERN.match(value):
            raise ValueError("expected an AWS region code such as us-east-1 or eu-west-2")
        return value

    @field_validator("pipeline_name")
    @classmethod
    def _pipeline_name(cls, value: str | None) -> str | None:
        # Pipeline names: up to 100 of A-Z a-z 0-9 . @ - _, see
        # https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
        if value is not None and not re.fullmatch(r"[A-Za-z0-9.@_-]{1,100}", value):
            raise ValueError("expected up to 100 letters, digits and . @ - _")
        return value

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: tuple[DeploymentTarget, ...]) -> tuple[DeploymentTarget, ...]:
        if not value:
            raise ValueError("expected at least one environment to deploy")
        names = [target.environment for target in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"environment listed twice: {', '.join(duplicates)}")
        return value

    @field_validator("notification_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [address for address in value if not EMAIL_PATTERN.match(address)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _bucket_names_fit(self) -> PipelineSettings:
        # <bucket prefix>-artifacts-<12-digit account>-<region> must fit S3's 63 characters.
        longest = len(f"{self.bucket_prefix}-artifacts-123456789012-{self.region}")
        if longest > 63:
            raise ValueError(
                f"pipeline name {self.name!r} is too long for the artifact bucket name "
                f"({longest} characters, S3 allows 63): shorten pipeline_name or project by "
                f"{longest - 63}"
            )
        return self

    @property
    def name(self) -> str:
        return self.pipeline_name or f"{self.project}-delivery"

    @property
    def bucket_prefix(self) -> str:
        """The pipeline name as S3 allows it in bucket names (lowercase, digits, hyphens)."""
        return re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")

    @property
    def execution_name_prefix(self) -> str:
        """Prefix of the smoke jobs' execution names (Step Functions: A-Z a-z 0-9 - _)."""
        return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{self.name}-smoke")[:43].strip("-")


def check_job_spec_path(value: str) -> str:
    """A relative POSIX path to a ``.json`` file inside the source artifact."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"expected a path relative to the repository root, got {value!r}")
    if path.suffix != ".json":
        # Step Functions input must be JSON; the action passes the file through unchanged.
        raise ValueError(
            f"expected a .json job spec (the state machine input must be JSON), got {value!r}"
        )
    return value


def default_state_machine_name(settings: PlatformSettings) -> str:
    """The orchestration state machine's physical name in one environment.

    The pipeline cannot reference a state machine in another stage's stack, so the
    orchestration stack names it deterministically and the pipeline builds its ARN.
    """
    return f"{settings.resource_prefix}-finetuning"


def orchestration_key_alias(settings: PlatformSettings) -> str:
    """Alias of the key that encrypts the orchestration state machine (orchestration_stack)."""
    return f"alias/{settings.resource_prefix}-orchestration"


def cross_account(pipeline: PipelineSettings, environments: list[PlatformSettings]) -> bool:
    """Whether any environment deploys into an account other than the pipeline's."""
    return any(env.account is not None and env.account != pipeline.account for env in environments)


def check_topology(pipeline: PipelineSettings, environments: list[PlatformSettings]) -> None:
    """Cross-environment rules that no single settings file can check by itself."""
    problems = []
    for target, env in zip(pipeline.stages, environments, strict=True):
        if env.project != pipeline.project:
            problems.append(
                f"stages[{target.environment}]: config/{env.environment}.yaml has project "
                f"{env.project!r}, the pipeline deploys project {pipeline.project!r}"
            )
        if env.account is not None and pipeline.account is None:
            problems.append(
                f"stages[{target.environment}]: config/{env.environment}.yaml pins account "
                f"{env.account}: set the pipeline's account too (CDK Pipelines needs the "
                "toolchain account to grant another account access to its artifacts)"
            )
    if problems:
        raise _platform().SettingsError(
            "invalid pipeline settings:\n" + "\n".join(f"  {p}" for p in problems)
        )


def _describe(error: dict[str, Any], path: Path, root: type[BaseModel]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        model: Any = root
        for part in error["loc"][:-1]:
            fields = getattr(model, "model_fields", {})
            model = fields[str(part)].annotation if str(part) in fields else model
        allowed = ", ".join(getattr(model, "model_fields", {})) or "(see docs/delivery.md)"
        message = f"unknown field: expected one of {allowed}"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"{path}: {field}: {message}{shown}"


def pipeline_settings_from_mapping(data: Any, source: Path) -> PipelineSettings:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    if not isinstance(data, dict):
        raise _platform().SettingsError(
            f"{source}: expected a mapping of settings, got {type(data).__name__}"
        )
    try:
        return PipelineSettings.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {_describe(e, source, PipelineSettings)}" for e in exc.errors())
        raise _platform().SettingsError(
            f"invalid pipeline settings in {source}:\n{problems}"
        ) from None


def load_pipeline_settings(path: Path | None = None) -> PipelineSettings:
    """Read and validate ``config/pipeline.yaml`` (or ``path``)."""
    path = path or _platform().CONFIG_DIR / PIPELINE_SETTINGS_FILE
    if not path.is_file():
        raise _platform().SettingsError(
            f"{path}: no pipeline settings; copy the example in docs/delivery.md "
            '("Pipeline settings") and set your source'
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _platform().SettingsError(f"{path}: not valid YAML: {exc}") from None
    return pipeline_settings_from_mapping(data, path)

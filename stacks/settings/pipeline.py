"""Typed settings of the self-updating deployment pipeline (``config/pipeline.yaml``).

One file per project: where the source comes from, which environments the pipeline deploys
in which order, the optional fine-tuning smoke job and the synth step's build environment.
Validated once, before any construct is built, like the platform settings.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from stacks.settings.base import SettingsError, StrictModel, read_yaml, validate_mapping
from stacks.settings.patterns import (
    EMAIL_PATTERN,
    AccountId,
    RegionCode,
    ResourceName,
)
from stacks.settings.platform import CONFIG_DIR, PlatformSettings

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

# A CodePipeline CodeBuild action times out after 8 hours whatever the project says, see
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
# and CodeBuild accepts 5 to 2160 minutes per project, see
# https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
MIN_BUILD_TIMEOUT_MINUTES = 5
MAX_BUILD_TIMEOUT_MINUTES = 480


class CodeConnectionsSource(StrictModel):
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


class S3Source(StrictModel):
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


class SmokeJobSettings(StrictModel):
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


class DeploymentTarget(StrictModel):
    """One environment the pipeline deploys, in order (its settings: config/<env>.yaml)."""

    environment: ResourceName
    manual_approval: bool = False
    smoke_job: SmokeJobSettings | None = None


class SynthSettings(StrictModel):
    """The CodeBuild environment of the step that runs the tests and synthesizes."""

    compute_type: Literal["small", "medium", "large", "x2_large"] = "large"
    timeout_minutes: int = Field(
        default=60, ge=MIN_BUILD_TIMEOUT_MINUTES, le=MAX_BUILD_TIMEOUT_MINUTES
    )
    # Runtime versions of the CodeBuild Ubuntu standard:7.0 image, see
    # https://docs.aws.amazon.com/codebuild/latest/userguide/available-runtimes.html
    python_version: Literal["3.11", "3.12"] = "3.12"
    nodejs_version: Literal["18", "20"] = "20"


class PipelineSettings(StrictModel):
    """The self-updating deployment pipeline (CDK Pipelines) of the platform."""

    project: ResourceName = "llm-finetuning"
    # Toolchain account and region the pipeline lives in; null = the CLI's at deploy time.
    account: AccountId = None
    region: RegionCode = "us-east-1"
    pipeline_name: str | None = None
    source: PipelineSource
    stages: tuple[DeploymentTarget, ...]
    synth: SynthSettings = SynthSettings()
    # Subscribed to the pipeline's topic: failed and succeeded runs, approvals waiting.
    notification_emails: tuple[str, ...] = ()

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
        raise SettingsError("invalid pipeline settings:\n" + "\n".join(f"  {p}" for p in problems))


def pipeline_settings_from_mapping(data: Any, source: Path) -> PipelineSettings:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    return validate_mapping(PipelineSettings, data, source, what="pipeline settings")


def load_pipeline_settings(path: Path | None = None) -> PipelineSettings:
    """Read and validate ``config/pipeline.yaml`` (or ``path``)."""
    path = path or CONFIG_DIR / PIPELINE_SETTINGS_FILE
    if not path.is_file():
        raise SettingsError(
            f"{path}: no pipeline settings; copy the example in docs/delivery.md "
            '("Pipeline settings") and set your source'
        )
    return pipeline_settings_from_mapping(read_yaml(path), path)

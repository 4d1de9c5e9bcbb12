"""Typed settings of the orchestration stack (state machine, functions, cleanup, notifications).

``PlatformSettings`` carries them as ``orchestration:`` in ``config/<env>.yaml``; every field
has a default, so an environment file without the section gets the values below.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from stacks.settings.base import StrictModel
from stacks.settings.patterns import EMAIL_PATTERN

# EventBridge Scheduler rate expressions, see
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based
RATE_PATTERN = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minutes?|hours?|days?)\)$")

# Lambda memory 128 MB - 10,240 MB and timeout up to 900 s, see
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
MemoryMb = Annotated[int, Field(ge=128, le=10240)]
TimeoutSeconds = Annotated[int, Field(ge=3, le=900)]
Hours = Annotated[int, Field(ge=1, le=24 * 90)]


class PriceSettings(StrictModel):
    """USD prices for job cost estimates; empty means "usage only, no estimate".

    Take them from https://aws.amazon.com/sagemaker/pricing/ (training, per instance-hour)
    and https://aws.amazon.com/bedrock/pricing/ (model customization, per 1,000 tokens) for
    the deployment's region, and record the date you read them.
    """

    instance_hour: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    per_thousand_tokens: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    as_of: str | None = None
    source: str | None = None


class OrchestrationSettings(StrictModel):
    """How jobs are started, watched, notified and cleaned up."""

    # How long a wait for a job's state-change event lasts before the workflow polls the
    # job itself (EventBridge delivers service events on a best-effort basis).
    poll_interval_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 60
    # Longest a job may run before the workflow gives up, stops it and fails the run.
    max_job_hours: Hours = 72
    # Provisioned throughput: seconds between status checks, and how long to wait for
    # InService before failing (AWS documents minutes to tens of minutes).
    throughput_check_seconds: Annotated[int, Field(ge=30, le=3600)] = 120
    throughput_max_wait_minutes: Annotated[int, Field(ge=10, le=24 * 60)] = 180
    # Seconds between looks at an evaluation Processing job (open models); the job's own
    # max_runtime_seconds (job spec) bounds the loop.
    evaluation_check_seconds: Annotated[int, Field(ge=30, le=3600)] = 120
    # Serving expiry: default lifetime of a provisioned throughput when the job spec names
    # none, how long before deletion the owners are warned, and the cleanup cadence.
    default_serving_hours: Hours = 24
    expiry_warning_hours: Annotated[int, Field(ge=1, le=24 * 14)] = 6
    cleanup_schedule: str = "rate(1 hour)"
    # Idempotency records outlive every retry and duplicate event of one submission.
    idempotency_ttl_hours: Hours = 24
    # Who hears about successes, failures and expiries (SNS email subscriptions).
    notification_emails: tuple[str, ...] = ()
    # Functions: default memory and timeout; dataset validation streams the whole file.
    function_memory_mb: MemoryMb = 256
    function_timeout_seconds: TimeoutSeconds = 60
    validation_memory_mb: MemoryMb = 1024
    validation_timeout_seconds: TimeoutSeconds = 900
    # None leaves the functions on the account's unreserved pool; a number reserves that
    # many concurrent executions for each function (needs account headroom).
    reserved_concurrency: Annotated[int, Field(ge=1, le=1000)] | None = None
    # AWS-managed Powertools for AWS Lambda (Python) v3 layer version for python3.14/arm64.
    powertools_layer_version: Annotated[int, Field(ge=1)] = 38
    # Default SageMaker training image: the Hugging Face PyTorch training DLC, see
    # https://github.com/aws/deep-learning-containers/releases/tag/v1.0-hf-5.3.0-pt-2.9.0-tr-gpu-py312
    training_image_tag: str = "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04"
    prices: PriceSettings = PriceSettings()
    # Users' own RFT graders (Lambda function ARNs, no wildcards) that the Bedrock
    # customization role may invoke besides the platform's grader (stacks/rft_grader.py).
    rft_grader_arns: tuple[str, ...] = ()

    @field_validator("rft_grader_arns")
    @classmethod
    def _grader_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from finetuning.aws_jobs.bedrock_customization import LAMBDA_ARN

        bad = [arn for arn in value if not LAMBDA_ARN.match(arn)]
        if bad:
            raise ValueError(
                "expected Lambda function ARNs (arn:aws:lambda:REGION:ACCOUNT:function:NAME), "
                f"got {', '.join(map(repr, bad))}"
            )
        return value

    @field_validator("cleanup_schedule")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not RATE_PATTERN.match(value):
            raise ValueError(
                "expected an EventBridge Scheduler rate expression such as 'rate(1 hour)' or "
                "'rate(30 minutes)'"
            )
        return value

    @field_validator("notification_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [email for email in value if not EMAIL_PATTERN.match(email)]
        if bad:
            raise ValueError(f"expected email addresses, got {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OrchestrationSettings:
        if self.poll_interval_minutes > self.max_job_hours * 60:
            raise ValueError(
                f"poll_interval_minutes={self.poll_interval_minutes} exceeds max_job_hours="
                f"{self.max_job_hours}: expected at least one poll before the job deadline"
            )
        if self.expiry_warning_hours >= self.default_serving_hours:
            raise ValueError(
                f"expiry_warning_hours={self.expiry_warning_hours} is not shorter than "
                f"default_serving_hours={self.default_serving_hours}: expected the warning "
                "to come inside the serving lifetime"
            )
        return self

    @property
    def max_polls(self) -> int:
        """How many poll intervals fit in ``max_job_hours`` (the workflow's loop bound)."""
        return max(1, (self.max_job_hours * 60) // self.poll_interval_minutes)

    @property
    def cleanup_interval_minutes(self) -> int:
        match = RATE_PATTERN.match(self.cleanup_schedule)
        assert match is not None  # validated above
        value, unit = int(match["value"]), match["unit"].rstrip("s")
        return value * {"minute": 1, "hour": 60, "day": 1440}[unit]

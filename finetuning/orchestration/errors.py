"""Errors the orchestration raises, named for the state machine.

A Lambda function that raises reports the exception's class name as the Step Functions
error name, so these names appear in the state machine's Retry and Catch rules
(``stacks/orchestration_workflow.py``) and in failure notifications. Renaming a class
renames an error: the workflow imports the names from here.
"""

from __future__ import annotations


class OrchestrationError(Exception):
    """Base class of every error the orchestration raises on purpose."""


class RetryableServiceError(OrchestrationError):
    """An AWS call was throttled or hit a server-side fault after the client's own retries;
    the state machine retries the task with a longer backoff."""


class ConfigurationError(OrchestrationError):
    """A function runs without a setting it needs (a missing environment variable)."""


class ManifestError(OrchestrationError, ValueError):
    """A job manifest that cannot run: names the file, line and field."""


class DatasetInvalidError(OrchestrationError):
    """Dataset validation found errors; the message is the report's summary."""


class JobFailedError(OrchestrationError):
    """The Bedrock or SageMaker job ended in Failed."""


class JobStoppedError(OrchestrationError):
    """The Bedrock or SageMaker job was stopped before it finished."""


class JobTimeoutError(OrchestrationError):
    """The job ran past the platform's maximum job duration."""


class ThroughputFailedError(OrchestrationError):
    """Provisioned throughput ended in Failed or never reached InService in time."""


class DeploymentFailedError(OrchestrationError):
    """An on-demand custom model deployment ended in Failed or never became Active in time."""


class ServingResourceBusyError(OrchestrationError):
    """Bedrock refused to delete a provisioned throughput or custom model deployment in its
    present state (``ConflictException``, e.g. while it is still Creating). The failure
    handler hands it to the expiry cleanup, which retries on each run until it is deleted."""


class QualityGateFailedError(OrchestrationError):
    """The evaluated model did not pass its quality gate: the workflow's QualityGate state
    fails the run with this name, and the register step refuses the model with it."""

    def __init__(self, summary: str = "", report_uri: str | None = None) -> None:
        super().__init__(summary + (f" (report: {report_uri})" if report_uri else ""))
        self.summary = summary
        self.report_uri = report_uri


class EvaluationJobFailedError(OrchestrationError):
    """The evaluation's SageMaker Processing job ended in Failed or Stopped (an error in the
    evaluation itself, not a verdict: a failed quality gate is a Completed job)."""


# Names the state machine routes on; kept next to the classes so the two never drift.
RETRYABLE = RetryableServiceError.__name__
JOB_FAILED = JobFailedError.__name__
JOB_STOPPED = JobStoppedError.__name__

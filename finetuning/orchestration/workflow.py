"""The contract between the state machine and its functions.

The execution input is :func:`execution_input`; each task passes the whole state as
``input`` (plus the execution ARN and, for the wait, a task token) and stores what its
function returns under a key of the state (``ResultPath``), named below. The stack builds
the state machine from these names, and the simulated run in the tests walks the same ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from finetuning.orchestration.manifest import JobManifest, parse_manifest


class States:
    """State names (also shown in the console and in the execution history)."""

    REGISTER = "RegisterJob"
    VALIDATE = "ValidateDataset"
    BACKEND = "Backend"
    START_BEDROCK = "StartBedrockJob"
    START_SAGEMAKER = "StartSageMakerJob"
    WAIT = "WaitForJob"
    COUNT_POLL = "CountPoll"
    POLLS_LEFT = "PollsLeft"
    JOB_TIMED_OUT = "JobTimedOut"
    COLLECT = "CollectResults"
    SERVING_REQUESTED = "ServingRequested"
    PROVISION = "ProvisionThroughput"
    WAIT_THROUGHPUT = "WaitForThroughput"
    CHECK_THROUGHPUT = "CheckThroughput"
    THROUGHPUT_READY = "ThroughputReady"
    # On-demand serving: the same two functions as the throughput's, another branch.
    DEPLOY = "DeployCustomModel"
    WAIT_DEPLOYMENT = "WaitForDeployment"
    CHECK_DEPLOYMENT = "CheckDeployment"
    DEPLOYMENT_READY = "DeploymentReady"
    PREPARE_EVALUATION = "PrepareEvaluation"
    EVALUATION_ROUTE = "EvaluationRoute"
    EVALUATE_BEDROCK = "EvaluateBedrockModel"
    EVALUATE_OPEN = "EvaluateOpenModel"
    WAIT_EVALUATION = "WaitForEvaluation"
    EVALUATION_DONE = "EvaluationDone"
    GATE = "QualityGate"
    GATE_FAILED = "GateFailed"
    REGISTRATION_REQUESTED = "RegistrationRequested"
    REGISTER_MODEL = "RegisterModel"
    COMPLETE = "CompleteJob"
    SUCCEEDED = "Succeeded"
    HANDLE_FAILURE = "HandleFailure"
    FAILED = "Failed"


class ResultKeys:
    """Where each task's result lands in the state (``$.<key>``)."""

    REGISTRATION = "registration"
    VALIDATION = "validation"
    LAUNCH = "launch"
    WAIT = "wait"
    POLLS = "polls"
    RESULTS = "results"
    EVALUATION = "evaluation"  # the plan (PrepareEvaluation)
    EVALUATION_RESULT = "evaluation_result"  # metrics, report and gate verdict
    MODEL_REGISTRATION = "model_registration"
    SERVING = "serving"
    ERROR = "error"
    FAILURE = "failure"


class WorkflowState(BaseModel):
    """The state object; steps add their results as further keys."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    job: dict[str, Any]
    source: str = "unknown"
    manifest_uri: str | None = None

    def result(self, key: str) -> dict[str, Any]:
        value = (self.model_extra or {}).get(key)
        return value if isinstance(value, dict) else {}

    @property
    def manifest(self) -> JobManifest:
        return parse_manifest(self.job, f"execution input of job {self.job_id}")


class TaskEvent(BaseModel):
    """What every task sends its function."""

    model_config = ConfigDict(extra="forbid")

    input: WorkflowState
    execution_arn: str | None = None
    task_token: str | None = None


def execution_input(
    manifest: JobManifest, *, source: str, manifest_uri: str | None = None
) -> dict[str, Any]:
    """The input of one execution, named ``manifest.job_id``; identical for identical specs,
    which is what makes StartExecution idempotent for them."""
    return {
        "job_id": manifest.job_id,
        "job": manifest.to_spec(),
        "source": source,
        "manifest_uri": manifest_uri,
    }

"""Client of a deployed platform's orchestration: start jobs, list and read them.

This is what ``finetune job create --via-platform`` and ``finetune job list
--via-platform`` call. The state machine ARN and job table name come from the platform's
SSM parameters (``/<project>/<environment>/orchestration/...``), so nothing needs copying
from a console::

    from finetuning.platform_client import PlatformClient, build_manifest

    client = PlatformClient(project="llm-finetuning", environment="dev")
    submission = client.submit(build_manifest(job_name="support-bot", backend="bedrock", ...))
    page = client.list_jobs(status="running")

The caller needs ``states:StartExecution`` on the state machine, ``ssm:GetParameter`` under
the prefix, ``dynamodb:GetItem``/``Query`` on the job table and its indexes, and
``kms:Decrypt``/``kms:GenerateDataKey`` on the orchestration key (docs/orchestration.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from finetuning.orchestration import aws
from finetuning.orchestration.manifest import JobManifest, load_manifest, parse_manifest
from finetuning.orchestration.parameters import (
    OrchestrationParameter,
    orchestration_parameter_name,
)
from finetuning.orchestration.records import JobRecord, JobTable
from finetuning.orchestration.submission import Submission, start_execution

DEFAULT_PROJECT = "llm-finetuning"
DEFAULT_ENVIRONMENT = "dev"
PROJECT_VARIABLE = "FINETUNE_PROJECT"
ENVIRONMENT_VARIABLE = "FINETUNE_ENVIRONMENT"


class PlatformNotFoundError(RuntimeError):
    """The platform's SSM parameters are missing: not deployed, or another account/region."""


@dataclass(frozen=True)
class JobPage:
    jobs: list[dict[str, Any]]
    next_token: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "next_token": self.next_token}


def build_manifest(**fields: Any) -> JobManifest:
    """A manifest from keyword arguments (CLI flags); ``None`` values are left out."""
    return parse_manifest(
        {k: v for k, v in fields.items() if v is not None}, source="command line arguments"
    )


def read_manifest_file(path: str | os.PathLike[str]) -> JobManifest:
    """Load ``job.yaml`` or ``job.json`` from disk."""
    file = Path(path)
    return load_manifest(file.read_bytes(), source=str(file))


class PlatformClient:
    def __init__(
        self,
        *,
        project: str | None = None,
        environment: str | None = None,
        region: str | None = None,
        clients: Any = None,
    ) -> None:
        """``clients(service)`` returns a boto3 client (default: adaptive-retry clients)."""
        self.project = project or os.environ.get(PROJECT_VARIABLE, DEFAULT_PROJECT)
        self.environment = environment or os.environ.get(ENVIRONMENT_VARIABLE, DEFAULT_ENVIRONMENT)
        self._clients = clients or (lambda service: aws.client(service, region))

    def _parameter(self, parameter: OrchestrationParameter) -> str:
        name = orchestration_parameter_name(self.project, self.environment, parameter)
        ssm = self._clients("ssm")
        try:
            return ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise PlatformNotFoundError(
                f"SSM parameter {name} not found: is the {self.environment!r} environment of "
                f"{self.project!r} deployed with its orchestration stack in this account and "
                "region? (set --project/--environment or FINETUNE_PROJECT/FINETUNE_ENVIRONMENT)"
            ) from None

    @cached_property
    def state_machine_arn(self) -> str:
        return self._parameter(OrchestrationParameter.STATE_MACHINE_ARN)

    @cached_property
    def _table(self) -> JobTable:
        return JobTable(
            self._clients("dynamodb"), self._parameter(OrchestrationParameter.JOB_TABLE_NAME)
        )

    def submit(
        self, manifest: JobManifest | Mapping[str, Any], *, source: str = "cli"
    ) -> Submission:
        """Start the job's execution, or find the one this same spec already started."""
        if not isinstance(manifest, JobManifest):
            manifest = parse_manifest(manifest, source="submitted manifest")
        return start_execution(
            self._clients("stepfunctions"), self.state_machine_arn, manifest, source=source
        )

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, next_token: str | None = None
    ) -> JobPage:
        records, token = self._table.list(status=status, limit=limit, next_token=next_token)
        return JobPage(jobs=[record.summary() for record in records], next_token=token)

    def get_job(self, job_id: str) -> JobRecord | None:
        return self._table.get(job_id)

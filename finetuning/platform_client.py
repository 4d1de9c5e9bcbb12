"""Client of a deployed platform's orchestration: start jobs, list and read them.

This is what ``finetune job create --via-platform`` and ``finetune job list
--via-platform`` call. The state machine ARN and job table name come from the platform's
SSM parameters (``/<project>/<environment>/orchestration/...``), so nothing needs copying
from a console::

    from finetuning.platform_client import PlatformClient, build_manifest

    client = PlatformClient(project="llm-finetuning", environment="dev")
    submission = client.submit(build_manifest(job_name="support-bot", backend="bedrock", ...))
    page = client.list_jobs(status="running")

From the CLI's job config (``finetune job create ... --via-platform``)::

    code = client.upload_training_scripts("training_scripts")  # SageMaker jobs only
    submission = client.submit(manifest_from_job_config(config, source_dir_uri=code))

The caller needs ``states:StartExecution`` on the state machine, ``ssm:GetParameter`` under
the prefix, ``dynamodb:GetItem``/``Query`` on the job table and its indexes, and
``kms:Decrypt``/``kms:GenerateDataKey`` on the orchestration key (docs/orchestration.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from finetuning.orchestration import aws
from finetuning.orchestration.aws_jobs.source_archives import (
    SOURCE_ARCHIVE_NAME,
    training_source_archive,
)
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import (
    BEDROCK_ONLY,
    SAGEMAKER_ONLY,
    JobManifest,
    load_manifest,
    parse_manifest,
)
from finetuning.orchestration.records import JobRecord, JobTable
from finetuning.orchestration.submission import Submission, start_execution
from finetuning.platform import (
    DEFAULT_ENVIRONMENT,
    DEFAULT_PROJECT,
    ENVIRONMENT_VARIABLE,
    PROJECT_VARIABLE,
    OrchestrationParameter,
    PlatformParameter,
    parameter_name,
)

# Fields of the library's job config that the platform decides for its own jobs (its roles,
# key, network, checkpoints, isolation) or does not support (the automatic split).
PLATFORM_DECIDES = (
    "role_arn",
    "kms_key_id",
    "subnet_ids",
    "security_group_ids",
    "checkpoint_uri",
    "enable_network_isolation",
    "client_request_token",
)
NOT_SUPPORTED = ("split_seed", "model_type", "distributed", "validation_split")
COMMON_FIELDS = (
    "job_name",
    "backend",
    "base_model",
    "training_data_uri",
    "validation_data_uri",
    "output_uri",
    "hyperparameters",
    "tags",
)
CODE_PREFIX = "models/code/"
SOURCE_TARBALL = SOURCE_ARCHIVE_NAME


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


def manifest_from_job_config(
    config: Mapping[str, Any], *, source_dir_uri: str | None = None
) -> JobManifest:
    """The manifest of a job given as the library's job config (``finetune job create``'s
    flags), for ``--via-platform``. Settings the platform makes itself are refused, not
    silently dropped."""
    decided = sorted(k for k in PLATFORM_DECIDES if config.get(k))
    if decided:
        raise ManifestError(
            f"{', '.join(decided)}: the platform sets these for its own jobs; leave them out "
            "with --via-platform"
        )
    if config.get("validation_data_uri") is None and config.get("validation_split"):
        raise ManifestError(
            "validation_split: the platform does not split data; give --validation-data-uri "
            "or --no-validation-split with --via-platform (finetune data split makes the files)"
        )
    backend = config.get("backend") or "bedrock"
    if isinstance(config.get("hyperparameters"), str):
        raise ManifestError(
            "hyperparameters: presets are resolved by the library, not by the platform; give "
            "the values (--epoch-count, --learning-rate, ...) with --via-platform"
        )
    names = [*COMMON_FIELDS, *(SAGEMAKER_ONLY if backend == "sagemaker" else BEDROCK_ONLY)]
    fields = {k: config[k] for k in names if config.get(k) not in (None, "", [], {})}
    fields["backend"] = str(backend)
    fields.setdefault("job_name", "job")
    # The library's flat RFT and distillation fields are the manifest's rft/distillation blocks.
    for block, pairs in (
        (
            "rft",
            (
                ("grader_lambda_arn", "grader_lambda_arn"),
                ("rft_hyperparameters", "hyperparameters"),
            ),
        ),
        (
            "distillation",
            (
                ("teacher_model", "teacher_model"),
                ("teacher_max_response_length", "max_response_length"),
                ("invocation_logs_uri", "invocation_logs_uri"),
                ("use_prompt_response", "use_prompt_response"),
            ),
        ),
    ):
        values = {name: config[key] for key, name in pairs if config.get(key)}
        if values:
            fields[block] = values
    if backend == "sagemaker" and source_dir_uri:
        fields["source_dir_uri"] = source_dir_uri
    if fields.get("use_spot_instances") is False:
        del fields["use_spot_instances"]  # the CLI's "not asked"; the platform uses spot
    return parse_manifest(fields, source="command line arguments")


def source_tarball(directory: str | os.PathLike[str] | None = None) -> bytes:
    """``sourcedir.tar.gz`` for a platform job: the one archive builder's layout
    (``training_scripts/`` and ``finetuning/data/`` as packages), without a root
    ``requirements.txt``: platform jobs run with network isolation on the platform's
    training image, which has the pinned packages installed."""
    return training_source_archive(install_requirements=False, scripts_dir=directory)


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
        name = parameter_name(self.project, self.environment, parameter)
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

    def _platform_parameter(self, parameter: PlatformParameter) -> str:
        name = parameter_name(self.project, self.environment, parameter)
        return self._clients("ssm").get_parameter(Name=name)["Parameter"]["Value"]

    def upload_training_scripts(self, directory: str | os.PathLike[str] | None = None) -> str:
        """Put ``sourcedir.tar.gz`` of the ``training_scripts`` folder ``directory`` (default:
        the installed package) where SageMaker jobs may read it
        (``s3://<artifacts>/models/code/<sha256>/``); an identical upload is skipped."""
        body = source_tarball(directory)
        digest = hashlib.sha256(body).hexdigest()[:16]
        bucket = self._platform_parameter(PlatformParameter.ARTIFACTS_BUCKET)
        key = f"{CODE_PREFIX}{digest}/{SOURCE_TARBALL}"
        s3 = self._clients("s3")
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

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

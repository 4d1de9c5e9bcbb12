"""``ModelFinetuningService``: one API for fine-tuning jobs on Bedrock, SageMaker and locally.

The class keeps the names and signatures the IDP library documented (``create_finetuning_job``,
``get_job_status``, ``wait_for_job_completion``, the Provisioned Throughput methods, a
``config`` shaped ``{"model_finetuning": {...}}``) and does what that documentation promised:

* every configuration mistake is an :class:`~finetuning.errors.InvalidJobConfigError` naming
  the field, raised before any AWS call;
* the config's named base models and default hyperparameters fill what a job leaves out;
* a deployed platform (found through SSM) fills roles, buckets, key and network;
* the automatic validation split writes new files beside the input, never over it;
* waiting backs off with jitter and raises :class:`~finetuning.errors.WaitTimeoutError`
  at ``max_wait_time`` instead of returning silently;
* throttling is retried by botocore's adaptive mode; other AWS errors surface unchanged as
  ``botocore.exceptions.ClientError``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from finetuning import __version__
from finetuning.aws_jobs.bedrock_customization import open_weight_rft_model
from finetuning.aws_jobs.instance_types import DEFAULT_INSTANCE_TYPE
from finetuning.backends.base import JobBackend
from finetuning.backends.bedrock import JOB_ARN_MARKER
from finetuning.backends.bedrock_inference import DEPLOYMENT_ARN_MARKER, BedrockInference
from finetuning.backends.bedrock_openai_rft import OpenWeightRftBackend, is_open_weight_job
from finetuning.discovery import PlatformResources, discover_platform, platform_coordinates
from finetuning.errors import InvalidJobConfigError, WaitTimeoutError
from finetuning.hyperparameters import family_for_model
from finetuning.jobs import (
    Backend,
    CustomModelDeploymentConfig,
    CustomModelDeploymentResult,
    FinetuningJobConfig,
    FinetuningJobResult,
    JobPage,
    JobStatus,
    ProvisionedThroughputConfig,
    ProvisionedThroughputResult,
)
from finetuning.local.service import LocalJobService, is_local_job_id
from finetuning.uris import is_s3_uri

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
# What a job that names no base model (and whose config names none) fine-tunes on Bedrock, as
# the old create_finetuning_job.py did. Model id from the fine-tuning support table:
# https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-supported.html
DEFAULT_BEDROCK_BASE_MODEL = "amazon.nova-lite-v1:0:300k"
# First wait between status checks; it doubles up to polling_interval.
INITIAL_POLL_SECONDS = 2.0
# How long to retry a create call while a role made by --create-role propagates.
NEW_ROLE_RETRY_SECONDS = 90.0
_DISCOVERED_LATER = {
    "role_arn": "arn:aws:iam::000000000000:role/discovered-later",
    "output_uri": "s3://discovered-later/output/",
}
SAGEMAKER_JOB_ARN_MARKER = ":training-job/"


@dataclass(frozen=True)
class ServiceConfig:
    """The ``model_finetuning`` section of the service config, validated."""

    base_models: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    region: str | None = None
    platform_project: str | None = None
    platform_environment: str | None = None
    local_home: str | None = None
    local_max_concurrent_jobs: int = 1

    SECTION_KEYS = ("base_models", "hyperparameters", "region", "platform", "local")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> ServiceConfig:
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise InvalidJobConfigError("config", "a mapping", type(config).__name__)
        unknown = sorted(set(config) - {"model_finetuning"})
        if unknown:
            raise InvalidJobConfigError(
                f"config.{unknown[0]}", "only a model_finetuning section", unknown[0]
            )
        section = config.get("model_finetuning") or {}
        if not isinstance(section, Mapping):
            raise InvalidJobConfigError("config.model_finetuning", "a mapping", section)
        unknown = sorted(set(section) - set(cls.SECTION_KEYS))
        if unknown:
            raise InvalidJobConfigError(
                f"config.model_finetuning.{unknown[0]}",
                f"one of {', '.join(cls.SECTION_KEYS)}",
                unknown[0],
            )
        base_models = section.get("base_models") or {}
        if not isinstance(base_models, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in base_models.items()
        ):
            raise InvalidJobConfigError(
                "config.model_finetuning.base_models",
                "a mapping of name to model id or ARN",
                base_models,
            )
        presets = section.get("hyperparameters") or {}
        if not isinstance(presets, Mapping) or not all(
            isinstance(v, Mapping) for v in presets.values()
        ):
            raise InvalidJobConfigError(
                "config.model_finetuning.hyperparameters",
                "a mapping of preset name (default, ...) to a mapping of hyperparameters",
                presets,
            )
        platform = section.get("platform") or {}
        local = section.get("local") or {}
        for name, part, keys in (
            ("platform", platform, ("project", "environment")),
            ("local", local, ("home", "max_concurrent_jobs")),
        ):
            if not isinstance(part, Mapping) or set(part) - set(keys):
                raise InvalidJobConfigError(
                    f"config.model_finetuning.{name}",
                    f"a mapping with keys {', '.join(keys)}",
                    part,
                )
        max_jobs = local.get("max_concurrent_jobs", 1)
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise InvalidJobConfigError(
                "config.model_finetuning.local.max_concurrent_jobs", "a positive integer", max_jobs
            )
        return cls(
            base_models=dict(base_models),
            hyperparameters={name: dict(values) for name, values in presets.items()},
            region=section.get("region"),
            platform_project=platform.get("project"),
            platform_environment=platform.get("environment"),
            local_home=local.get("home"),
            local_max_concurrent_jobs=max_jobs,
        )


class ModelFinetuningService:
    """Create, watch and stop fine-tuning jobs; serve their models on Bedrock.

    Args:
        region: AWS region; default from the config, then ``AWS_REGION`` /
            ``AWS_DEFAULT_REGION``, then the boto3 session, then us-east-1.
        config: ``{"model_finetuning": {"base_models": {...}, "hyperparameters": {"default":
            {...}, "<preset>": {...}}, "platform": {"project", "environment"}, "local":
            {"home", "max_concurrent_jobs"}}}``.
        session: a ``boto3.Session`` to create clients from (default: a new one).
        platform: ``"auto"`` (discover through SSM when a job lacks a role or output
            location), ``None`` (never), or a :class:`PlatformResources`.
        max_attempts: botocore's attempts per call in adaptive retry mode (throttling).
        local_service: the local job service to use (default: one at the config's home).
        bedrock_api_key: the Amazon Bedrock API key for the open-weight models' RFT jobs
            (gpt-oss-20b, Qwen3 32B), which run through Bedrock's OpenAI-compatible API
            (default: ``OPENAI_API_KEY``, read when a call needs it).
        bedrock_openai_url: that API's endpoint (default:
            ``https://bedrock-mantle.<region>.api.aws/v1``).
    """

    def __init__(
        self,
        region: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        session: Any = None,
        platform: str | PlatformResources | None = "auto",
        max_attempts: int = 10,
        local_service: LocalJobService | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        bedrock_api_key: str | None = None,
        bedrock_openai_url: str | None = None,
    ) -> None:
        self.settings = ServiceConfig.from_mapping(config)
        if session is None:
            import boto3

            session = boto3.Session()
        self.session = session
        self.region = (
            region
            or self.settings.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.region_name
            or DEFAULT_REGION
        )
        self._platform_setting = platform
        self._platform: PlatformResources | None = (
            platform if isinstance(platform, PlatformResources) else None
        )
        self._platform_looked_up = isinstance(platform, PlatformResources) or platform is None
        self._client_config = Config(
            region_name=self.region,
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            user_agent_extra=f"finetuning/{__version__}",
        )
        self._clients: dict[str, Any] = {}
        self._local = local_service
        self._bedrock_api_key = bedrock_api_key
        self._bedrock_openai_url = bedrock_openai_url
        self._sleep = sleep
        self._clock = clock

    # -- clients and backends ---------------------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self._client_config)
        return self._clients[service]

    @property
    def local_service(self) -> LocalJobService:
        if self._local is None:
            self._local = LocalJobService(
                self.settings.local_home,
                max_concurrent_jobs=self.settings.local_max_concurrent_jobs,
                s3_client_factory=lambda: self.client("s3"),
            )
        return self._local

    def backend(self, backend: Backend | str) -> JobBackend:
        backend = Backend(backend)
        if backend is Backend.BEDROCK:
            from finetuning.backends.bedrock import BedrockBackend

            return BedrockBackend(self.client("bedrock"))
        if backend is Backend.SAGEMAKER:
            from finetuning.backends.sagemaker import SageMakerBackend

            return SageMakerBackend(self.client("sagemaker"), self.client("s3"), self.region)
        from finetuning.backends.local import LocalBackend

        return LocalBackend(self.local_service)

    def open_weight_rft_backend(self) -> OpenWeightRftBackend:
        """RFT jobs of the open-weight models, through Bedrock's OpenAI-compatible API."""
        return OpenWeightRftBackend(
            self.region,
            self._read_data,
            api_key=self._bedrock_api_key,
            base_url=self._bedrock_openai_url,
        )

    def _read_data(self, uri: str) -> bytes:
        if is_s3_uri(uri):
            from finetuning.uris import parse_s3_uri

            location = parse_s3_uri(uri, "training_data_uri")
            return (
                self.client("s3")
                .get_object(Bucket=location.bucket, Key=location.key)["Body"]
                .read()
            )
        with open(uri, "rb") as handle:
            return handle.read()

    def _job_backend(self, job: FinetuningJobConfig) -> JobBackend:
        if job.backend is Backend.BEDROCK and _is_open_weight(job):
            return self.open_weight_rft_backend()
        return self.backend(job.backend)

    def _backend_for_identifier(self, identifier: str, backend: Backend | str | None) -> JobBackend:
        which = self.backend_of(identifier, backend)
        if which is Backend.BEDROCK and is_open_weight_job(identifier):
            return self.open_weight_rft_backend()
        return self.backend(which)

    def platform(self) -> PlatformResources | None:
        """The deployed platform's resources (looked up once, on first need)."""
        if not self._platform_looked_up:
            self._platform_looked_up = True
            project, environment = platform_coordinates(
                self.settings.platform_project, self.settings.platform_environment
            )
            self._platform = discover_platform(self.client("ssm"), project, environment)
        return self._platform

    def close(self) -> None:
        """Stop the embedded local service, if this object started one."""
        if self._local is not None:
            self._local.stop()

    def __enter__(self) -> ModelFinetuningService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------

    def prepare_job(
        self, config: FinetuningJobConfig | Mapping[str, Any]
    ) -> tuple[FinetuningJobConfig, dict[str, str]]:
        """Resolve a job config from the service config alone and validate it, with no AWS
        call. Returns the resolved config and where each hyperparameter came from."""
        job = FinetuningJobConfig.from_dict(config)
        job.check_static()
        job = self._apply_base_models(job)
        job = job.replace(backend=self._infer_backend(job))
        if job.base_model is None and job.backend is Backend.BEDROCK:
            job = job.replace(base_model=DEFAULT_BEDROCK_BASE_MODEL)
        job, sources = self._apply_hyperparameter_presets(job)
        if job.job_name is None:
            job = job.replace(job_name=_default_job_name(job))
        if job.backend is Backend.SAGEMAKER and not job.instance_type:
            job = job.replace(instance_type=DEFAULT_INSTANCE_TYPE)
        backend = self._job_backend(job)
        if isinstance(backend, OpenWeightRftBackend):  # takes no role or output location
            return job, {**sources, **backend.check(job, sources)}
        # Everything the user gave is checked now; fields a platform may still supply are
        # stood in for by placeholders that pass validation.
        placeholders = {
            name: value
            for name, value in _DISCOVERED_LATER.items()
            if job.backend is not Backend.LOCAL and not getattr(job, name)
        }
        backend.check(job.replace(**placeholders), sources)
        return job, sources

    def create_finetuning_job(
        self,
        config: FinetuningJobConfig | Mapping[str, Any],
        *,
        create_role: bool = False,
    ) -> FinetuningJobResult:
        """Validate, fill from the platform, split the data if asked, and submit the job.

        ``create_role``: when no role is given or discovered, create a least-privilege one
        (Bedrock and SageMaker only).
        """
        job, sources = self.prepare_job(config)
        backend = self._job_backend(job)
        if isinstance(backend, OpenWeightRftBackend):
            if create_role:
                raise InvalidJobConfigError(
                    "create_role",
                    "no role for an open-weight RFT job (Bedrock's OpenAI-compatible API runs "
                    "it as the API key's identity)",
                    create_role,
                )
            return backend.create(job, backend.check(job, sources))
        role_created = False
        if job.backend is not Backend.LOCAL:
            job = self._apply_platform(job, create_role)
            if not job.role_arn:
                job = self._create_role(job)
                role_created = True
        if (
            job.validation_data_uri is None
            and job.validation_split is not None
            and _splits_validation(job)
        ):
            job = self._split(job)
        hyperparameters = backend.check(job, sources)
        if not role_created:
            return backend.create(job, hyperparameters)
        deadline = self._clock() + NEW_ROLE_RETRY_SECONDS
        while True:
            try:
                return backend.create(job, hyperparameters)
            except ClientError as exc:
                from finetuning.backends.roles import is_role_not_ready

                if not is_role_not_ready(exc) or self._clock() >= deadline:
                    raise
                logger.info("waiting for the new role to propagate: %s", exc)
                self._sleep(5.0)

    def get_job_status(
        self,
        job_identifier: str,
        model_type: str | None = "nova",
        *,
        backend: Backend | str | None = None,
    ) -> FinetuningJobResult:
        """The job's current state. ``job_identifier`` is a Bedrock or SageMaker ARN, a local
        job id, or a job name (then ``backend`` says where, default Bedrock).
        ``model_type`` is accepted for compatibility; the backend knows the model."""
        return self._backend_for_identifier(job_identifier, backend).get(job_identifier)

    def wait_for_job_completion(
        self,
        job_identifier: str,
        model_type: str | None = "nova",
        polling_interval: float = 60,
        max_wait_time: float | None = None,
        *,
        backend: Backend | str | None = None,
        on_update: Callable[[FinetuningJobResult], None] | None = None,
    ) -> FinetuningJobResult:
        """Poll until the job completes, fails or is cancelled; return its final state.

        Waits start at 2 seconds and double, with jitter, up to ``polling_interval``. Raises
        :class:`WaitTimeoutError` (carrying the last state) once ``max_wait_time`` seconds
        have passed. A local job is run by this process when no local service is serving.
        """
        which = self.backend_of(job_identifier, backend)
        if which is Backend.LOCAL and not self.local_service.is_served():
            self.local_service.start()
        return self._wait(
            f"job {job_identifier}",
            lambda: self.get_job_status(job_identifier, backend=which),
            lambda result: result.status.is_terminal,
            polling_interval,
            max_wait_time,
            on_update,
        )

    def list_jobs(
        self,
        status_filter: JobStatus | str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
        *,
        backend: Backend | str = Backend.BEDROCK,
    ) -> JobPage:
        """One page of jobs, newest first; pass the page's ``next_token`` for the next."""
        status = JobStatus(status_filter) if status_filter is not None else None
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidJobConfigError("limit", "a positive integer", limit)
        return self.backend(backend).list(status, limit, next_token)

    def stop_job(
        self, job_identifier: str, *, backend: Backend | str | None = None
    ) -> FinetuningJobResult:
        """Stop a running job (cancel a queued or running local job)."""
        return self._backend_for_identifier(job_identifier, backend).stop(job_identifier)

    def model_id_for_job(self, job_identifier: str) -> str:
        """The custom model ARN a completed Bedrock job produced."""
        result = self.get_job_status(job_identifier)
        if result.status is not JobStatus.COMPLETED or not result.model_id:
            raise InvalidJobConfigError(
                "job_arn",
                "a completed job with an output model",
                job_identifier,
                hint=f"status {result.status.value}",
            )
        return result.model_id

    # -- Provisioned Throughput -------------------------------------------------------------

    def create_provisioned_throughput(
        self, config: ProvisionedThroughputConfig | Mapping[str, Any]
    ) -> ProvisionedThroughputResult:
        """Create Provisioned Throughput; no commitment unless ``commitment_duration`` says."""
        throughput = ProvisionedThroughputConfig.from_dict(config)
        return self._bedrock_inference().create_throughput(throughput)

    def get_provisioned_throughput_status(
        self, provisioned_model_id: str, model_type: str | None = "nova"
    ) -> ProvisionedThroughputResult:
        return self._bedrock_inference().get_throughput(provisioned_model_id)

    def wait_for_provisioning_completion(
        self,
        provisioned_model_id: str,
        model_type: str | None = "nova",
        polling_interval: float = 60,
        max_wait_time: float | None = None,
        *,
        on_update: Callable[[ProvisionedThroughputResult], None] | None = None,
    ) -> ProvisionedThroughputResult:
        """Poll until the throughput is ``InService`` or ``Failed``."""
        return self._wait(
            f"provisioned throughput {provisioned_model_id}",
            lambda: self.get_provisioned_throughput_status(provisioned_model_id),
            lambda result: result.is_terminal,
            polling_interval,
            max_wait_time,
            on_update,
        )

    def delete_provisioned_throughput(
        self, provisioned_model_id: str, model_type: str | None = "nova"
    ) -> dict[str, Any]:
        return self._bedrock_inference().delete_throughput(provisioned_model_id)

    def list_provisioned_throughputs(
        self, status_filter: str | None = None
    ) -> list[ProvisionedThroughputResult]:
        return self._bedrock_inference().list_throughputs(status_filter)

    # -- on-demand custom model deployments ---------------------------------------------------

    def create_custom_model_deployment(
        self, config: CustomModelDeploymentConfig | Mapping[str, Any]
    ) -> CustomModelDeploymentResult:
        """Deploy a custom model for on-demand inference (Nova custom models)."""
        if isinstance(config, Mapping):
            config = CustomModelDeploymentConfig(**config)
        return self._bedrock_inference().create_deployment(config)

    def get_custom_model_deployment_status(self, identifier: str) -> CustomModelDeploymentResult:
        return self._bedrock_inference().get_deployment(identifier)

    def wait_for_deployment_completion(
        self,
        identifier: str,
        polling_interval: float = 60,
        max_wait_time: float | None = None,
        *,
        on_update: Callable[[CustomModelDeploymentResult], None] | None = None,
    ) -> CustomModelDeploymentResult:
        return self._wait(
            f"custom model deployment {identifier}",
            lambda: self.get_custom_model_deployment_status(identifier),
            lambda result: result.is_terminal,
            polling_interval,
            max_wait_time,
            on_update,
        )

    def delete_custom_model_deployment(self, identifier: str) -> dict[str, Any]:
        return self._bedrock_inference().delete_deployment(identifier)

    @staticmethod
    def is_deployment_arn(identifier: str) -> bool:
        return DEPLOYMENT_ARN_MARKER in identifier

    # -- internals --------------------------------------------------------------------------

    def _bedrock_inference(self) -> BedrockInference:
        return BedrockInference(self.client("bedrock"))

    def _wait(
        self,
        what: str,
        poll: Callable[[], Any],
        done: Callable[[Any], bool],
        polling_interval: float,
        max_wait_time: float | None,
        on_update: Callable[[Any], None] | None,
    ) -> Any:
        if not polling_interval or polling_interval <= 0:
            raise InvalidJobConfigError(
                "polling_interval", "a positive number of seconds", polling_interval
            )
        if max_wait_time is not None and max_wait_time < 0:
            raise InvalidJobConfigError(
                "max_wait_time", "a non-negative number of seconds", max_wait_time
            )
        started = self._clock()
        delay = min(INITIAL_POLL_SECONDS, polling_interval)
        while True:
            result = poll()
            if on_update is not None:
                on_update(result)
            if done(result):
                return result
            elapsed = self._clock() - started
            if max_wait_time is not None and elapsed >= max_wait_time:
                raise WaitTimeoutError(what, elapsed, result)
            # Equal jitter: between half and all of the current delay.
            pause = random.uniform(delay / 2, delay)
            if max_wait_time is not None:
                pause = min(pause, max(0.0, max_wait_time - elapsed))
            self._sleep(pause)
            delay = min(delay * 2, polling_interval)

    def backend_of(self, identifier: str, backend: Backend | str | None) -> Backend:
        if not identifier:
            raise InvalidJobConfigError(
                "job_identifier", "a job ARN, local job id or job name", identifier
            )
        if backend is not None:
            return Backend(backend)
        if JOB_ARN_MARKER in identifier:
            return Backend.BEDROCK
        if SAGEMAKER_JOB_ARN_MARKER in identifier:
            return Backend.SAGEMAKER
        if is_local_job_id(identifier):
            return Backend.LOCAL
        return Backend.BEDROCK

    def _apply_base_models(self, job: FinetuningJobConfig) -> FinetuningJobConfig:
        names = self.settings.base_models
        if job.base_model is None:
            if "default" in names:
                return job.replace(base_model=names["default"])
            if len(names) == 1:
                return job.replace(base_model=next(iter(names.values())))
            if names:
                raise InvalidJobConfigError(
                    "base_model",
                    f"a model id, ARN or one of the configured names ({', '.join(names)})",
                    None,
                    hint="several base_models are configured and none is named default",
                )
            return job
        return job.replace(base_model=names.get(job.base_model, job.base_model))

    def _infer_backend(self, job: FinetuningJobConfig) -> Backend:
        if job.backend is not None:
            try:
                return Backend(job.backend)
            except ValueError:
                raise InvalidJobConfigError(
                    "backend", f"one of {', '.join(b.value for b in Backend)}", job.backend
                ) from None
        if _is_open_weight(job):
            return Backend.BEDROCK  # local data is uploaded to Bedrock's Files API
        if job.training_data_uri and not is_s3_uri(job.training_data_uri):
            return Backend.LOCAL
        if job.base_model is None or family_for_model(job.base_model) is not None:
            return Backend.BEDROCK
        return Backend.SAGEMAKER

    def _apply_hyperparameter_presets(
        self, job: FinetuningJobConfig
    ) -> tuple[FinetuningJobConfig, dict[str, str]]:
        presets = self.settings.hyperparameters
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}

        def add(values: Mapping[str, Any], source: str) -> None:
            for name, value in values.items():
                merged[name] = value
                sources[name] = source

        add(presets.get("default", {}), "config model_finetuning.hyperparameters.default")
        if isinstance(job.hyperparameters, str):
            if job.hyperparameters not in presets:
                raise InvalidJobConfigError(
                    "hyperparameters",
                    "a mapping or the name of a configured preset "
                    f"({', '.join(presets) or 'none configured'})",
                    job.hyperparameters,
                )
            add(
                presets[job.hyperparameters],
                f"config model_finetuning.hyperparameters.{job.hyperparameters}",
            )
        elif job.hyperparameters:
            add(job.hyperparameters, "")
        return job.replace(hyperparameters=merged), sources

    def _apply_platform(self, job: FinetuningJobConfig, create_role: bool) -> FinetuningJobConfig:
        """Fill a missing role or output location (and with the output location, the
        platform's key and network) from the deployed platform."""
        if job.role_arn and job.output_uri:
            return job
        platform = self.platform()
        changes: dict[str, Any] = {}
        if platform is not None:
            role = (
                platform.bedrock_role_arn
                if job.backend is Backend.BEDROCK
                else platform.sagemaker_role_arn
            )
            if not job.role_arn and role:
                changes["role_arn"] = role
            if not job.output_uri and platform.output_uri(job.job_name):
                changes["output_uri"] = platform.output_uri(job.job_name)
                if not job.kms_key_id and platform.kms_key_arn:
                    changes["kms_key_id"] = platform.kms_key_arn
                if not job.subnet_ids and platform.subnet_ids and platform.security_group_ids:
                    changes["subnet_ids"] = list(platform.subnet_ids)
                    changes["security_group_ids"] = list(platform.security_group_ids)
                if job.use_spot_instances and not job.checkpoint_uri:
                    changes["checkpoint_uri"] = platform.checkpoint_uri(job.job_name)
        job = job.replace(**changes)
        project, environment = platform_coordinates(
            self.settings.platform_project, self.settings.platform_environment
        )
        where = f"no deployed platform found under /{project}/{environment}/ in {self.region}"
        if not job.output_uri:
            raise InvalidJobConfigError(
                "output_uri", "an s3:// location for the job's outputs", None, hint=where
            )
        if not job.role_arn and not create_role:
            raise InvalidJobConfigError(
                "role_arn",
                "an IAM role ARN for the service to assume (or create_role / --create-role)",
                None,
                hint=where,
            )
        return job

    def _create_role(self, job: FinetuningJobConfig) -> FinetuningJobConfig:
        from finetuning.backends.roles import ensure_role

        role_arn = ensure_role(self.client("iam"), self.client("sts"), job, self.region)
        return job.replace(role_arn=role_arn)

    def _split(self, job: FinetuningJobConfig) -> FinetuningJobConfig:
        from finetuning.backends.data_split import split_beside

        s3 = self.client("s3") if is_s3_uri(job.training_data_uri) else None
        # Local jobs keep their parts in the service home: the user's data folder stays as is.
        local = job.backend is Backend.LOCAL and not is_s3_uri(job.training_data_uri)
        parts = split_beside(
            job.training_data_uri,
            job.validation_split,
            job.split_seed,
            s3_client=s3,
            directory=self.local_service.home / "splits" if local else None,
        )
        if parts is None:
            return job
        logger.info(
            "validation split: %d training and %d validation records in %s and %s",
            parts.training_records,
            parts.validation_records,
            parts.training_uri,
            parts.validation_uri,
        )
        return job.replace(
            training_data_uri=parts.training_uri, validation_data_uri=parts.validation_uri
        )


def _is_open_weight(job: FinetuningJobConfig) -> bool:
    """A job of gpt-oss-20b or Qwen3 32B, which Bedrock customizes only by RFT through its
    OpenAI-compatible API (that backend's check refuses any other customization type)."""
    return open_weight_rft_model(job.base_model or "") is not None


def _splits_validation(job: FinetuningJobConfig) -> bool:
    """Whether the automatic validation split applies: supervised types only (RFT prompts
    and distillation prompts are not split), and models whose training takes a validation
    file (not Nova 2 Lite; see docs/bedrock.md)."""
    if not job.training_data_uri or job.customization_type not in (
        "FINE_TUNING",
        "CONTINUED_PRE_TRAINING",
    ):
        return False
    from finetuning.data.models import resolve_model

    try:
        return resolve_model(job.base_model or "").accepts_validation_file
    except ValueError:
        return True  # no dataset rules here: the backend's own checks decide


def _default_job_name(job: FinetuningJobConfig) -> str:
    """``ft-<digest of the spec>``: the same spec gets the same name, so a repeated call
    finds the job it already made instead of making another."""
    spec = {
        "base_model": job.base_model,
        "training_data_uri": job.training_data_uri,
        "validation_data_uri": job.validation_data_uri,
        "hyperparameters": job.hyperparameters,
        "backend": str(job.backend),
        "method": job.method,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return f"ft-{digest[:16]}"

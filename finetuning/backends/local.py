"""The local backend: the same job config, run by :class:`finetuning.local.LocalJobService`."""

from __future__ import annotations

from pathlib import Path

from finetuning.errors import InvalidJobConfigError
from finetuning.hyperparameters import validate_train_hyperparameters
from finetuning.jobs import Backend, FinetuningJobConfig, FinetuningJobResult, JobPage, JobStatus
from finetuning.local.service import LocalJobService
from finetuning.uris import is_s3_uri, parse_s3_uri


class LocalBackend:
    name = Backend.LOCAL

    def __init__(self, service: LocalJobService) -> None:
        self.service = service

    def check(
        self, config: FinetuningJobConfig, sources: dict[str, str] | None = None
    ) -> dict[str, str]:
        for name in ("base_model", "training_data_uri", "job_name"):
            if not getattr(config, name):
                raise InvalidJobConfigError(
                    name,
                    "a value (local jobs need base_model, training_data_uri and job_name)",
                    getattr(config, name),
                )
        for name in ("training_data_uri", "validation_data_uri"):
            value = getattr(config, name)
            if value and is_s3_uri(value):
                parse_s3_uri(value, name)
            elif value and not Path(value).expanduser().exists():
                raise InvalidJobConfigError(name, "an existing local file or directory", value)
        if config.output_uri and is_s3_uri(config.output_uri):
            raise InvalidJobConfigError(
                "output_uri", "a local directory for the local backend", config.output_uri
            )
        if len(config.job_name) > 128 or not config.job_name.isprintable():
            raise InvalidJobConfigError(
                "job_name", "at most 128 printable characters", config.job_name
            )
        hyperparameters = validate_train_hyperparameters(config.hyperparameters or {}, sources)
        # Before anything is written (the validation split): a missing model fails here.
        self.service.registry.resolve_base_model(config.base_model)
        return hyperparameters

    def create(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> FinetuningJobResult:
        return self.service.submit(
            job_name=config.job_name,
            base_model=config.base_model,
            train_file=config.training_data_uri,
            validation_file=config.validation_data_uri,
            method=config.method,
            hyperparameters=hyperparameters,
            model_name=config.model_name,
            output_dir=config.output_uri,
        )

    def get(self, identifier: str) -> FinetuningJobResult:
        return self.service.get(identifier)

    def list(
        self,
        status_filter: JobStatus | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> JobPage:
        return self.service.list(status_filter, limit if limit is not None else 50, next_token)

    def stop(self, identifier: str) -> FinetuningJobResult:
        self.service.cancel(identifier)
        return self.service.get(identifier)

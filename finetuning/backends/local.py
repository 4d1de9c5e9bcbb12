"""The local backend: the same job config, run by :class:`finetuning.local.LocalJobService`."""

from __future__ import annotations

from pathlib import Path

from finetuning.errors import InvalidJobConfigError
from finetuning.hyperparameters import validate_train_hyperparameters
from finetuning.jobs import Backend, FinetuningJobConfig, FinetuningJobResult, JobPage, JobStatus
from finetuning.local.runner import check_records, train_arguments
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
        base_model = self.service.registry.resolve_base_model(config.base_model)
        # What train.py would refuse only once the job runs is refused now, at submission.
        for name in ("training_data_uri", "validation_data_uri"):
            value = getattr(config, name)
            if value and not is_s3_uri(value):
                _check_data(Path(value).expanduser(), name)
        _check_train_command_line(config, base_model, hyperparameters)
        if config.method == "qlora":
            _check_qlora_runs_here()
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


def _check_data(path: Path, field: str) -> None:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
        if not files:
            raise InvalidJobConfigError(field, "a folder with .jsonl or .json files", str(path))
        path = files[0]

    def error(message: str) -> InvalidJobConfigError:
        return InvalidJobConfigError(field, "JSON Lines with one object per line", hint=message)

    check_records(path, error)


def _check_train_command_line(
    config: FinetuningJobConfig, base_model: str, hyperparameters: dict[str, str]
) -> None:
    """Parse the command line the job will run with train.py's own parser (standard library
    only, no torch): an epoch count of 0 or a bad combination fails here, not in the queue."""
    from training_scripts.arguments import UsageError, parse_args

    argv = train_arguments(
        base_model=base_model,
        train_file=config.training_data_uri,
        validation_file=config.validation_data_uri,
        output_dir=config.output_uri or "output",
        method=config.method,
        hyperparameters=hyperparameters,
    )
    try:
        parse_args(argv)
    except UsageError as exc:
        raise InvalidJobConfigError(
            "hyperparameters", "values train.py accepts", hint=f"train.py: {exc}"
        ) from None


def _check_qlora_runs_here() -> None:
    """QLoRA's 4-bit layers (bitsandbytes) need CUDA: the local backend is this machine."""
    import importlib.util

    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        raise InvalidJobConfigError(
            "method",
            "full or lora on a machine without an NVIDIA GPU",
            "qlora",
            hint="QLoRA's 4-bit quantization (bitsandbytes) needs CUDA; use --method lora",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidJobConfigError(
            "method",
            "full or lora where bitsandbytes is not installed",
            "qlora",
            hint="pip install -r training_scripts/requirements.txt for QLoRA",
        )

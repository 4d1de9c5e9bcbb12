"""The fine-tuning platform's Python library.

Public API (imported lazily, so ``import finetuning.data`` inside a training container and the
CLI's start-up stay light)::

    from finetuning import (
        ModelFinetuningService, FinetuningJobConfig, FinetuningJobResult,
        ProvisionedThroughputConfig, ProvisionedThroughputResult, JobStatus,
    )

Submodules:
- ``finetuning.service``: ``ModelFinetuningService``, one job API over three backends.
- ``finetuning.jobs``: job, throughput and deployment specs and results; ``JobStatus``.
- ``finetuning.errors``: the library's exceptions.
- ``finetuning.hyperparameters``: per-model-family hyperparameter tables and checks.
- ``finetuning.backends``: Bedrock, SageMaker and local backends.
- ``finetuning.local``: the local job service (queue, SQLite state, model registry).
- ``finetuning.discovery``: finding a deployed platform through SSM.
- ``finetuning.platform``: names of the SSM parameters the CDK app publishes, shared by
  the stacks (writers) and the CLI (readers).
- ``finetuning.cli``: the ``finetune`` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelFinetuningService": "finetuning.service",
    "FinetuningJobConfig": "finetuning.jobs",
    "FinetuningJobResult": "finetuning.jobs",
    "ProvisionedThroughputConfig": "finetuning.jobs",
    "ProvisionedThroughputResult": "finetuning.jobs",
    "CustomModelDeploymentConfig": "finetuning.jobs",
    "CustomModelDeploymentResult": "finetuning.jobs",
    "JobStatus": "finetuning.jobs",
    "JobPage": "finetuning.jobs",
    "Backend": "finetuning.jobs",
    "FinetuningError": "finetuning.errors",
    "InvalidJobConfigError": "finetuning.errors",
    "HyperparameterError": "finetuning.errors",
    "ModelNotFoundError": "finetuning.errors",
    "JobExecutionError": "finetuning.errors",
    "JobNotFoundError": "finetuning.errors",
    "WaitTimeoutError": "finetuning.errors",
    "LocalJobService": "finetuning.local.service",
}

__all__ = [
    "Backend",
    "CustomModelDeploymentConfig",
    "CustomModelDeploymentResult",
    "FinetuningError",
    "FinetuningJobConfig",
    "FinetuningJobResult",
    "HyperparameterError",
    "InvalidJobConfigError",
    "JobExecutionError",
    "JobNotFoundError",
    "JobPage",
    "JobStatus",
    "LocalJobService",
    "ModelFinetuningService",
    "ModelNotFoundError",
    "ProvisionedThroughputConfig",
    "ProvisionedThroughputResult",
    "WaitTimeoutError",
    "__version__",
]

if TYPE_CHECKING:
    from finetuning.errors import (
        FinetuningError,
        HyperparameterError,
        InvalidJobConfigError,
        JobExecutionError,
        JobNotFoundError,
        ModelNotFoundError,
        WaitTimeoutError,
    )
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
    from finetuning.local.service import LocalJobService
    from finetuning.service import ModelFinetuningService


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'finetuning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

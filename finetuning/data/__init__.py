"""The dataset toolkit: formats, validation, conversion, splitting and preparation.

Importing this package is cheap and needs only the standard library: ``train.py`` imports
``finetuning.data.formats`` inside the training container. Heavier parts (boto3 for S3,
pyarrow for Parquet, Pillow for images) load only when the function that needs them is
first used; the names below resolve lazily.

Modules:
- ``formats``: the record formats, ``detect_format`` and ``to_messages``.
- ``split``: deterministic train/validation splits.
- ``models``: model families and their documented dataset limits.
- ``validate``: streaming validation (``validate_path``) and its report; the checks are
  in ``validation``, one module each.
- ``convert``: format conversion from JSONL, CSV and Parquet.
- ``images``: image-classification datasets to ``bedrock-conversation-2024``.
- ``estimate``: token counts and training cost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages
from finetuning.data.split import SplitError, split_file, split_lines

if TYPE_CHECKING:
    from finetuning.data.models import ModelFamily, UnknownModelError, resolve_model
    from finetuning.data.validate import (
        Problem,
        ValidationReport,
        validate_job_files,
        validate_lines,
        validate_path,
    )

__all__ = [
    "DataFormat",
    "FormatError",
    "ModelFamily",
    "Problem",
    "SplitError",
    "UnknownModelError",
    "ValidationReport",
    "detect_format",
    "resolve_model",
    "split_file",
    "split_lines",
    "to_messages",
    "validate_job_files",
    "validate_lines",
    "validate_path",
]

# Public names defined in submodules that are imported on first use.
_LAZY = {
    "ModelFamily": "finetuning.data.models",
    "UnknownModelError": "finetuning.data.models",
    "resolve_model": "finetuning.data.models",
    "Problem": "finetuning.data.validate",
    "ValidationReport": "finetuning.data.validate",
    "validate_job_files": "finetuning.data.validate",
    "validate_lines": "finetuning.data.validate",
    "validate_path": "finetuning.data.validate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

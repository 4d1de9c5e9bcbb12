"""Streaming validation of JSONL training data against a model family's rules.

``validate_path`` reads a local file or an S3 object once, line by line, in constant memory,
and returns a ``ValidationReport``: record, error, warning and token counts plus the
problems found, each naming its line, field, what was expected and what was found.

Checks, in the order they run on each line: the line parses as one JSON object (UTF-8);
it has the schema of the family's format; roles start with user, alternate, and end with
assistant (system only first); no turn is empty; no reserved keyword of the family appears;
images and videos have supported formats, counts and well-formed S3 locations in the right
bucket, and the dataset does not mix images and videos where the family forbids it; the
record is within the family's token/character limits. Across the file: duplicates
(warning), blank lines (warning), record counts and file size against the family's limits.

The entry points are here; the checks live in ``finetuning.data.validation`` (one module
per check, composed by its ``Validator``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from finetuning.data.models import ModelFamily, UnknownModelError, resolve_model
from finetuning.data.sources import S3Uri, is_s3_uri, open_lines, source_size
from finetuning.data.validation.report import (
    DatasetRole,
    Problem,
    Severity,
    ValidationReport,
)
from finetuning.data.validation.validator import Validator

__all__ = [
    "DatasetRole",
    "Problem",
    "Severity",
    "ValidationReport",
    "validate_job_files",
    "validate_lines",
    "validate_path",
]

DEFAULT_MAX_PROBLEMS = 1000
# Exact duplicate detection keeps one 64-bit hash and a line number per distinct record,
# about 100 bytes each; past this many records the check stops tracking new ones so memory
# stays bounded (every Bedrock family's record limit is far below it).
MAX_TRACKED_RECORDS = 500_000


def validate_path(
    path: str | os.PathLike[str],
    model_id: str,
    *,
    role: DatasetRole | str = DatasetRole.TRAIN,
    dataset_uri: str | None = None,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
    token_counter: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    s3_client: Any = None,
    customization: str | None = None,
) -> ValidationReport:
    """Validate one JSONL file (local path or ``s3://bucket/key``) for ``model_id``.

    Args:
        path: the file to read; read once, streaming, whatever its size.
        model_id: Bedrock model id or ARN, or a Hugging Face id / path for SageMaker;
            picks the format and limits (see ``finetuning.data.models``).
        role: ``train`` or ``validation``; record-count and file-size limits differ.
        dataset_uri: where a local file will be uploaded (``s3://bucket/key``), so that
            media can be checked against the dataset's bucket before the upload.
        max_problems: how many errors, and how many warnings, the report keeps (all are
            counted).
        token_counter: exact token counting (e.g. a Hugging Face tokenizer) instead of the
            characters-per-token estimate.
        max_tokens: for open models, warn about records longer than this (train.py's
            ``max_seq_length``); Bedrock families use their documented limits.
        s3_client: a boto3 S3 client to use for ``s3://`` paths.
        customization: ``REINFORCEMENT_FINE_TUNING`` or ``DISTILLATION`` checks the records
            of that customization type (``finetuning.data.customization_records``) instead
            of supervised records.

    Raises:
        UnknownModelError: ``model_id`` is a Bedrock model without dataset rules.
        OSError / botocore errors: the file cannot be read.
    """
    family = _family_for(model_id, customization)
    text_path = str(path)
    bucket = None
    for candidate in (dataset_uri, text_path if is_s3_uri(text_path) else None):
        if candidate:
            bucket = S3Uri.parse(candidate).bucket
            break
    validator = Validator(
        family=family,
        model_id=model_id,
        path=text_path,
        role=DatasetRole(role),
        dataset_bucket=bucket,
        max_problems=max_problems,
        token_counter=token_counter,
        max_tokens=max_tokens,
        max_tracked_records=MAX_TRACKED_RECORDS,
    )
    with open_lines(path, client=s3_client) as lines:
        if customization in _CUSTOMIZATION_TYPES:
            return _finish_customization(validator, lines, customization, path, s3_client)
        validator.feed(lines)
    size = source_size(path, client=s3_client)
    return validator.finish(file_bytes=size, file_name=dataset_uri or text_path)


def _family_for(model_id: str, customization: str | None) -> ModelFamily:
    """The model's rules; refused where Bedrock offers the model only for another
    customization type (the open-weight models: reinforcement fine-tuning only)."""
    family = resolve_model(model_id)
    only = family.only_customization
    if only is not None and (customization or "FINE_TUNING") != only:
        raise UnknownModelError(
            f"{model_id!r}: Bedrock customizes {family.display_name} only by {only}; "
            f"validate with --customization-type {only} (see {family.source_url})"
        )
    return family


_CUSTOMIZATION_FORMATS = {
    "REINFORCEMENT_FINE_TUNING": "rft-prompts",
    "DISTILLATION": "distillation-prompts",
}
_CUSTOMIZATION_TYPES = tuple(_CUSTOMIZATION_FORMATS)


def _finish_customization(
    validator: Validator, lines: Iterable[bytes], customization: str, path: Any, s3: Any
) -> ValidationReport:
    from finetuning.data.customization_records import feed_customization_records

    validator.report.format = _CUSTOMIZATION_FORMATS[customization]
    feed_customization_records(validator.log, lines, customization, validator.family)
    report = validator.report
    report.bytes = source_size(path, client=s3)
    if report.records == 0:
        validator.log.error("no-records", "no records: the file has no JSON object lines", None)
    return report


def validate_job_files(
    train_path: str | os.PathLike[str],
    model_id: str,
    validation_path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> list[ValidationReport]:
    """Validate a job's training file and, when given, its validation file.

    Each file is checked with ``validate_path`` under its role; limits that apply to both
    files together (training plus validation records, for Claude 3 Haiku and Llama) are
    checked too, and reported on the validation file. ``options`` are passed on to
    ``validate_path`` (``dataset_uri`` applies to the training file only).
    """
    train = validate_path(train_path, model_id, role=DatasetRole.TRAIN, **options)
    if validation_path is None:
        return [train]
    options.pop("dataset_uri", None)
    validation = validate_path(validation_path, model_id, role=DatasetRole.VALIDATION, **options)
    family = resolve_model(model_id)
    limit = family.max_total_records
    total = train.records + validation.records
    if limit is not None and total > limit:
        validation.errors += 1
        validation.counts_by_code["record-count"] = (
            validation.counts_by_code.get("record-count", 0) + 1
        )
        validation.problems.append(
            Problem(
                Severity.ERROR,
                "record-count",
                f"{train.records:,} training + {validation.records:,} validation records = "
                f"{total:,}; {family.display_name} accepts at most {limit:,} together",
            )
        )
    return [train, validation]


def validate_lines(
    lines: Iterable[bytes],
    model_id: str,
    *,
    path: str = "<lines>",
    role: DatasetRole | str = DatasetRole.TRAIN,
    dataset_uri: str | None = None,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
    token_counter: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    customization: str | None = None,
) -> ValidationReport:
    """Validate JSONL lines already in hand (each with or without its line ending);
    ``customization`` as for :func:`validate_path`."""
    validator = Validator(
        family=_family_for(model_id, customization),
        model_id=model_id,
        path=path,
        role=DatasetRole(role),
        dataset_bucket=S3Uri.parse(dataset_uri).bucket if dataset_uri else None,
        max_problems=max_problems,
        token_counter=token_counter,
        max_tokens=max_tokens,
        max_tracked_records=MAX_TRACKED_RECORDS,
    )
    size = 0

    def measure(items: Iterable[bytes]) -> Iterable[bytes]:
        nonlocal size
        for item in items:
            size += len(item)
            yield item

    if customization in _CUSTOMIZATION_TYPES:
        from finetuning.data.customization_records import feed_customization_records

        feed_customization_records(validator.log, measure(lines), customization, validator.family)
        validator.report.format = _CUSTOMIZATION_FORMATS[customization]
        validator.report.bytes = size
        if validator.report.records == 0:
            validator.log.error("no-records", "no records: the file has no JSON object lines", None)
        return validator.report
    validator.feed(measure(lines))
    return validator.finish(file_bytes=size, file_name=dataset_uri)

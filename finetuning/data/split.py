"""Deterministic train/validation splits of JSONL records.

The assignment of each record depends only on its position, the seed and (when
stratifying) the records' labels: never on the Python version, the platform or hash
randomisation, so one input and one seed give byte-identical outputs everywhere. Each
record's rank is the SHA-256 of ``seed:index``; the lowest-ranked records of each stratum
go to validation. Both outputs keep the input's order.

Standard library only (the library's automatic split runs inside the training container).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetuning.data.files import atomic_writer

__all__ = [
    "DEFAULT_VALIDATION_SPLIT",
    "MIN_RECORDS",
    "SplitError",
    "SplitResult",
    "check_jsonl_lines",
    "json_line_problem",
    "split_file",
    "split_lines",
    "validation_indices",
]

# The one default fraction: `finetune data split`, `data prepare-images` and the automatic
# split of `finetune job create` (FinetuningJobConfig.validation_split).
DEFAULT_VALIDATION_SPLIT = 0.2
# Fewer records leave one side empty.
MIN_RECORDS = 2
TRAIN_FILE_NAME = "train.jsonl"
VALIDATION_FILE_NAME = "validation.jsonl"


class SplitError(ValueError):
    """A split cannot be made as asked (bad fraction, missing stratum field, unsafe output)."""


@dataclass(frozen=True)
class SplitResult:
    """What ``split_file`` wrote."""

    train_path: Path
    validation_path: Path
    train_records: int
    validation_records: int
    # Records per stratum value as (train, validation); empty when not stratified.
    strata: dict[str, tuple[int, int]]


def split_lines(
    lines: Sequence[bytes],
    validation_split: float,
    seed: int = 42,
    stratify_by: str | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """Split JSONL lines into ``(train, validation)``, deterministically.

    ``validation_split`` is the fraction of records for validation (0 < f < 1); at least one
    record goes to each side when there are two or more. ``stratify_by`` names a field
    (dotted for nested objects, e.g. ``metadata.label``) whose value keeps its share in both
    sides. Lines are returned unchanged and in their original order.

    Raises:
        SplitError: bad fraction, a line that is not a JSON object while stratifying, or a
            record without the stratum field.
    """
    keys = (
        [_stratum_key(line, stratify_by, index + 1) for index, line in enumerate(lines)]
        if stratify_by
        else None
    )
    chosen = validation_indices(len(lines), validation_split, seed, keys)
    train = [line for index, line in enumerate(lines) if index not in chosen]
    validation = [line for index, line in enumerate(lines) if index in chosen]
    return train, validation


def validation_indices(
    count: int,
    validation_split: float,
    seed: int = 42,
    strata: Sequence[str] | None = None,
) -> frozenset[int]:
    """Positions (0-based) of the records that go to validation.

    With ``strata`` (one label per record), each label's records are split on their own and
    the total is shared among labels by largest remainder, so the overall count is the same
    as without stratification and every label gets its proportional share.
    """
    _check_fraction(validation_split)
    if strata is not None and len(strata) != count:
        raise SplitError(f"expected {count} stratum labels, found {len(strata)}")
    if count < 2:
        return frozenset()
    total = min(max(1, _round_half_up(count * validation_split)), count - 1)
    groups: dict[str, list[int]] = {}
    for index in range(count):
        groups.setdefault(strata[index] if strata is not None else "", []).append(index)
    quotas = _apportion(total, {label: len(members) for label, members in groups.items()})
    chosen: set[int] = set()
    for label, members in groups.items():
        ranked = sorted(members, key=lambda index: _rank(seed, index))
        chosen.update(ranked[: quotas[label]])
    return frozenset(chosen)


def split_file(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    validation_split: float,
    seed: int = 42,
    stratify_by: str | None = None,
    overwrite: bool = False,
) -> SplitResult:
    """Split a JSONL file into ``train.jsonl`` and ``validation.jsonl`` in ``output_dir``.

    Streams the input twice (labels, then writing), so memory grows with the number of
    records, not their size. Blank lines are dropped; every written line ends with ``\\n``
    (Windows line endings are normalised). The input is never modified: an output path
    that is the input itself is refused, and existing outputs are replaced only with
    ``overwrite``. Outputs are written to temporary files and renamed into place, so an
    interrupted split leaves no half-written file.
    """
    source = Path(input_path)
    if not source.is_file():
        raise SplitError(f"{source}: no such file")
    _check_fraction(validation_split)
    # Every line a JSON object, before anything is written (a binary file is not "split").
    with source.open("rb") as handle:
        records = check_jsonl_lines(handle, str(source))
    if records < MIN_RECORDS:
        raise SplitError(
            f"{source}: expected at least {MIN_RECORDS} records to split, found {records}"
        )
    target_dir = Path(output_dir) if output_dir is not None else source.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    train_path = target_dir / TRAIN_FILE_NAME
    validation_path = target_dir / VALIDATION_FILE_NAME
    for out in (train_path, validation_path):
        if out.exists() and out.resolve() == source.resolve():
            raise SplitError(
                f"{out}: the output would overwrite the input; choose another output directory"
            )
        if out.exists() and not overwrite:
            raise SplitError(f"{out}: already exists; pass overwrite (--force) to replace it")

    labels: list[str] | None = None
    count = 0
    if stratify_by:
        labels = [
            _stratum_key(line, stratify_by, number, source) for number, line in _records(source)
        ]
        count = len(labels)
    else:
        count = sum(1 for _ in _records(source))
    chosen = validation_indices(count, validation_split, seed, labels)

    strata: dict[str, list[int]] = {}
    with (
        atomic_writer(train_path) as train_out,
        atomic_writer(validation_path) as validation_out,
    ):
        for index, (_, line) in enumerate(_records(source)):
            is_validation = index in chosen
            (validation_out if is_validation else train_out).write(line + b"\n")
            if labels is not None:
                tally = strata.setdefault(labels[index], [0, 0])
                tally[1 if is_validation else 0] += 1
    return SplitResult(
        train_path=train_path,
        validation_path=validation_path,
        train_records=count - len(chosen),
        validation_records=len(chosen),
        strata={label: (tally[0], tally[1]) for label, tally in sorted(strata.items())},
    )


def json_line_problem(raw: bytes) -> str | None:
    """What is wrong with one JSONL line (``None``: a JSON object). One wording for every
    reader of JSONL in the library: ``not UTF-8 text``, ``not valid JSON (...)``,
    ``expected a JSON object, found ...``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text (a binary file, or UTF-16?); expected JSON Lines in UTF-8"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(record, dict):
        kind = "array" if isinstance(record, list) else type(record).__name__
        return f"expected a JSON object, found {kind}"
    return None


def check_jsonl_lines(lines: Iterable[bytes], source: str) -> int:
    """Check that every non-blank line is a UTF-8 JSON object; return how many there are.

    Raises :class:`SplitError` naming ``source``, the line, what was expected and found.
    """
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        problem = json_line_problem(raw)
        if problem:
            raise SplitError(f"{source}: line {number}: {problem}")
        count += 1
    if count == 0:
        raise SplitError(f"{source}: no records (the file is empty)")
    return count


# -- helpers ----------------------------------------------------------------------------


def _check_fraction(validation_split: float) -> None:
    if not isinstance(validation_split, int | float) or not 0 < validation_split < 1:
        raise SplitError(
            f"validation split must be a fraction between 0 and 1 (exclusive), "
            f"found {validation_split!r}"
        )


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _rank(seed: int, index: int) -> bytes:
    return hashlib.sha256(f"{seed}:{index}".encode()).digest()


def _apportion(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """Share ``total`` among groups in proportion to their sizes (largest remainder)."""
    population = sum(sizes.values())
    exact = {label: total * size / population for label, size in sizes.items()}
    quotas = {label: math.floor(share) for label, share in exact.items()}
    leftover = total - sum(quotas.values())
    # Largest fractional part first; label order breaks ties so the result is stable.
    for label in sorted(exact, key=lambda label: (quotas[label] - exact[label], label))[:leftover]:
        quotas[label] += 1
    return quotas


def _stratum_key(line: bytes, field: str, number: int, source: Path | None = None) -> str:
    where = f"{source}:{number}" if source else f"line {number}"
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise SplitError(f"{where}: not valid JSON ({exc}); cannot stratify") from None
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SplitError(f'{where}: the record has no field "{field}" to stratify by')
        value = value[part]
    # JSON text of the value, so 1, "1" and true stay distinct strata.
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _records(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a file as ``(line number, bytes without the line ending)``."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield number, line

"""Training and validation loss curves from the files each backend writes.

- Bedrock model customization jobs write ``training_artifacts/step_wise_training_metrics.csv``
  (``step_number, epoch_number, training_loss, perplexity``) and, with validation data,
  ``validation_artifacts/post_fine_tuning_validation/validation_metrics.csv`` (the same columns
  with ``validation_loss``):
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-analyze.html
- ``training_scripts/train.py`` writes ``training_metrics.csv`` (``step, epoch, loss,
  learning_rate, tokens_per_second``) and, when it evaluates, ``eval_metrics.csv`` (``step,
  epoch, eval_loss, eval_perplexity``). An ``eval_loss`` column in the training file works too.

A path may be one of those files, a folder holding them (a Bedrock output prefix copied
locally, or a train.py output folder), or an ``s3://`` prefix of either.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BEDROCK_TRAINING_FILE = "step_wise_training_metrics.csv"
BEDROCK_VALIDATION_FILE = "validation_metrics.csv"
TRAIN_PY_FILE = "training_metrics.csv"
TRAIN_PY_EVAL_FILE = "eval_metrics.csv"
CURVE_FILES = (BEDROCK_TRAINING_FILE, BEDROCK_VALIDATION_FILE, TRAIN_PY_FILE, TRAIN_PY_EVAL_FILE)

_STEP_COLUMNS = ("step_number", "step", "global_step")
_EPOCH_COLUMNS = ("epoch_number", "epoch")
_TRAIN_COLUMNS = ("training_loss", "loss", "train_loss")
_VALIDATION_COLUMNS = ("validation_loss", "eval_loss", "val_loss")


class CurveError(ValueError):
    """A metrics file that cannot be read; names the file, line and column."""


@dataclass(frozen=True)
class Point:
    step: float
    loss: float
    epoch: float | None = None


@dataclass
class LossCurves:
    training: list[Point] = field(default_factory=list)
    validation: list[Point] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.training or self.validation)

    def as_dict(self) -> dict[str, Any]:
        def points(series: list[Point]) -> list[dict[str, float | None]]:
            return [{"step": p.step, "epoch": p.epoch, "loss": p.loss} for p in series]

        return {
            "training": points(self.training),
            "validation": points(self.validation),
            "sources": self.sources,
        }


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _float(value: str | None, path: Path, line: int, column: str) -> float | None:
    if value is None or not value.strip() or value.strip().lower() in ("nan", "none"):
        return None
    try:
        return float(value)
    except ValueError:
        raise CurveError(
            f"{path}: line {line}: column {column}: expected a number, got {value!r}"
        ) from None


def read_metrics_csv(path: Path, curves: LossCurves | None = None) -> LossCurves:
    """Add the loss series found in one CSV file to ``curves``."""
    curves = curves if curves is not None else LossCurves()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        step_col = _column(header, _STEP_COLUMNS)
        epoch_col = _column(header, _EPOCH_COLUMNS)
        train_col = _column(header, _TRAIN_COLUMNS)
        valid_col = _column(header, _VALIDATION_COLUMNS)
        if step_col is None or (train_col is None and valid_col is None):
            raise CurveError(
                f"{path}: line 1: expected a step column ({' or '.join(_STEP_COLUMNS)}) and a "
                f"loss column ({', '.join(_TRAIN_COLUMNS + _VALIDATION_COLUMNS)}); "
                f"found {', '.join(header) or 'no header'}"
            )
        for line, row in enumerate(reader, start=2):
            step = _float(row.get(step_col), path, line, step_col)
            if step is None:
                continue
            epoch = _float(row.get(epoch_col), path, line, epoch_col) if epoch_col else None
            for column, series in ((train_col, curves.training), (valid_col, curves.validation)):
                if column is None:
                    continue
                loss = _float(row.get(column), path, line, column)
                if loss is not None:
                    series.append(Point(step, loss, epoch))
    curves.training.sort(key=lambda p: p.step)
    curves.validation.sort(key=lambda p: p.step)
    curves.sources.append(str(path))
    return curves


def find_metric_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.csv") if p.name in CURVE_FILES)


def read_loss_curves(locations: list[str], *, s3_client: Any | None = None) -> LossCurves:
    """Loss curves from files, folders or ``s3://`` prefixes (downloaded to a temp folder)."""
    curves = LossCurves()
    for location in locations:
        if location.startswith("s3://"):
            with tempfile.TemporaryDirectory() as tmp:
                for path in _download_metric_files(location, Path(tmp), s3_client):
                    read_metrics_csv(path, curves)
                    curves.sources[-1] = _s3_source(location, path, Path(tmp))
            continue
        path = Path(location)
        if path.is_dir():
            files = find_metric_files(path)
            if not files:
                raise CurveError(
                    f"{path}: no training metrics found (looked for {', '.join(CURVE_FILES)})"
                )
            for file in files:
                read_metrics_csv(file, curves)
        elif path.is_file():
            read_metrics_csv(path, curves)
        else:
            raise CurveError(f"{path}: training metrics file or folder not found")
    return curves


def _s3_source(prefix: str, local: Path, root: Path) -> str:
    bucket = prefix.removeprefix("s3://").split("/", 1)[0]
    return f"s3://{bucket}/{local.relative_to(root).as_posix()}"


def _download_metric_files(uri: str, target: Path, s3_client: Any | None) -> list[Path]:
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    paginator = s3_client.get_paginator("list_objects_v2")
    files = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.rsplit("/", 1)[-1] in CURVE_FILES:
                local = target / key
                local.parent.mkdir(parents=True, exist_ok=True)
                s3_client.download_file(bucket, key, str(local))
                files.append(local)
    if not files:
        raise CurveError(f"{uri}: no training metrics found (looked for {', '.join(CURVE_FILES)})")
    return sorted(files)

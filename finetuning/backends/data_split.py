"""The automatic validation split, for jobs given training data but no validation data.

The old tool downloaded the training file, split it and uploaded the training part over the
original, so a second run split an already-split file and the data was lost. Here the input is
never written: both parts go to new files (local) or objects (S3) beside it, named with a
digest of the input's bytes, the fraction and the seed. The same input and settings always
give the same names, so a retried job reuses the parts instead of writing them again.

For ``s3://bucket/data/train.jsonl`` with a 0.2 split the parts are::

    s3://bucket/data/train.split-<digest>.train.jsonl
    s3://bucket/data/train.split-<digest>.validation.jsonl
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetuning.data.files import write_atomically
from finetuning.errors import InvalidJobConfigError
from finetuning.uris import is_s3_uri, parse_s3_uri

logger = logging.getLogger(__name__)

DIGEST_LENGTH = 16


@dataclass(frozen=True)
class SplitParts:
    training_uri: str
    validation_uri: str
    training_records: int
    validation_records: int
    # False when both parts already existed (a retry) and nothing was written.
    written: bool


def split_beside(
    training_uri: str,
    validation_split: float,
    seed: int = 42,
    *,
    s3_client: Any = None,
    directory: Path | None = None,
) -> SplitParts | None:
    """Split ``training_uri`` into new training and validation parts beside it, or in
    ``directory`` (a local folder the caller owns, for local jobs: the user's data folder
    stays as it was).

    Every line must be a JSON object: a binary file or a bad line is refused before
    anything is written. Returns ``None`` when the data has fewer than two records (nothing
    to hold out); the job then trains without validation data.
    """
    from finetuning.data.split import split_lines

    if is_s3_uri(training_uri):
        if s3_client is None:
            raise ValueError("an S3 client is needed to split S3 training data")
        location = parse_s3_uri(training_uri, "training_data_uri")
        if not location.key or location.key.endswith("/"):
            raise InvalidJobConfigError(
                "training_data_uri",
                "a single JSONL object when validation_split is used (or give validation_data_uri)",
                training_uri,
            )
        data = s3_client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    else:
        path = Path(training_uri)
        if not path.is_file():
            raise InvalidJobConfigError(
                "training_data_uri",
                "an existing JSONL file when validation_split is used",
                training_uri,
            )
        data = path.read_bytes()

    lines = [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]
    _check_lines(data, training_uri)
    if len(lines) < 2:
        logger.warning("%s has fewer than two records; no validation split", training_uri)
        return None
    train_lines, validation_lines = split_lines(lines, validation_split, seed)
    digest = hashlib.sha256(data + f"\0{validation_split!r}\0{seed}".encode()).hexdigest()[
        :DIGEST_LENGTH
    ]
    named = training_uri if directory is None else str(directory / Path(training_uri).name)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    train_uri, validation_uri = _part_names(named, digest)
    parts = {
        train_uri: b"".join(line + b"\n" for line in train_lines),
        validation_uri: b"".join(line + b"\n" for line in validation_lines),
    }
    written = False
    for uri, content in parts.items():
        if _exists(uri, s3_client):
            continue
        _write(uri, content, s3_client)
        written = True
    return SplitParts(train_uri, validation_uri, len(train_lines), len(validation_lines), written)


def _check_lines(data: bytes, uri: str) -> None:
    from finetuning.data.split import SplitError, check_jsonl_lines

    try:
        check_jsonl_lines(data.split(b"\n"), uri)
    except SplitError as exc:
        raise InvalidJobConfigError(
            "training_data_uri", "JSON Lines with one object per line", hint=str(exc)
        ) from None


def _part_names(uri: str, digest: str) -> tuple[str, str]:
    head, _, name = uri.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, "jsonl"
    base = f"{head}/{stem}" if head else stem
    return (f"{base}.split-{digest}.train.{suffix}", f"{base}.split-{digest}.validation.{suffix}")


def _exists(uri: str, s3_client: Any) -> bool:
    if not is_s3_uri(uri):
        return Path(uri).exists()
    from botocore.exceptions import ClientError

    location = parse_s3_uri(uri, "training_data_uri")
    try:
        s3_client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _write(uri: str, content: bytes, s3_client: Any) -> None:
    if is_s3_uri(uri):
        location = parse_s3_uri(uri, "training_data_uri")
        s3_client.put_object(Bucket=location.bucket, Key=location.key, Body=content)
        return
    # Temporary file and rename: an interrupted split never leaves half a file behind.
    write_atomically(Path(uri), content)

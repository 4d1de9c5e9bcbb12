"""Reading dataset files line by line from a local path or S3, and S3 URI parsing.

boto3 is imported only when an ``s3://`` path is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_LINE_BYTES",
    "OVERSIZED_LINE",
    "S3Uri",
    "S3UriError",
    "is_s3_uri",
    "open_lines",
    "source_size",
]

# Bucket naming rules: 3-63 characters; lowercase letters, digits, dots and hyphens; begins
# and ends with a letter or digit. https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# bucketnamingrules.html
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_READ_CHUNK = 1024 * 1024
# No training record of any supported family can be this long: the largest limit, 300,000
# tokens for Nova Lite/Pro, is 1.8 million characters at AWS's 6 characters per token, at
# most 7.2 MB of UTF-8. Longer lines are reported without being held in memory.
MAX_LINE_BYTES = 8 * 1024 * 1024


class _Oversized(bytes):
    """Stands in for a line longer than MAX_LINE_BYTES (which is skipped, not read)."""


OVERSIZED_LINE = _Oversized(b"")


class S3UriError(ValueError):
    """A string that is not a well-formed ``s3://bucket/key`` URI."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, require_key: bool = True) -> S3Uri:
        """Split ``s3://bucket/key``, checking the bucket name and (optionally) the key."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise S3UriError(f"expected an s3://bucket/key URI, found {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not _BUCKET_NAME.match(bucket) or ".." in bucket:
            raise S3UriError(
                f"{uri!r}: {bucket!r} is not a valid bucket name (3-63 lowercase letters, "
                "digits, dots or hyphens, starting and ending with a letter or digit)"
            )
        if require_key and (not key or key.endswith("/")):
            raise S3UriError(f"{uri!r}: expected an object key after the bucket name")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        prefix = self.key.rstrip("/")
        return S3Uri(self.bucket, f"{prefix}/{name}" if prefix else name)


def is_s3_uri(path: str | os.PathLike[str]) -> bool:
    return str(path).startswith("s3://")


def s3_client(client: Any = None) -> Any:
    """The given client, or a default boto3 S3 client (imported on first use)."""
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


@contextmanager
def open_lines(path: str | os.PathLike[str], *, client: Any = None) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over the raw lines of a local file or S3 object.

    Lines keep their ``\\n`` (and any ``\\r``), exactly as Python's binary file iteration
    returns them, whichever the source; memory stays at one read chunk plus one line. A line
    longer than ``MAX_LINE_BYTES`` is skipped and yields ``OVERSIZED_LINE`` in its place.
    """
    if is_s3_uri(path):
        uri = S3Uri.parse(str(path))
        body = s3_client(client).get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
        try:
            yield _split_lines(body.iter_chunks(_READ_CHUNK))
        finally:
            body.close()
    else:
        with open(path, "rb") as handle:
            yield _read_lines(handle)


def source_size(path: str | os.PathLike[str], *, client: Any = None) -> int:
    """Size in bytes of a local file or S3 object."""
    if is_s3_uri(path):
        uri = S3Uri.parse(str(path))
        return int(s3_client(client).head_object(Bucket=uri.bucket, Key=uri.key)["ContentLength"])
    return os.path.getsize(path)


def _read_lines(handle: Any) -> Iterator[bytes]:
    readline = handle.readline
    while True:
        line = readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of the oversized line
                rest = readline(_READ_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield OVERSIZED_LINE
            continue
        yield line


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut a stream of chunks into lines, exactly as ``_read_lines`` cuts a file."""
    parts: list[bytes] = []
    size = 0
    oversized = False
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                tail = chunk[start:]
                if tail and not oversized:
                    parts.append(tail)
                    size += len(tail)
                    if size >= MAX_LINE_BYTES:
                        parts, size, oversized = [], 0, True
                break
            head = chunk[start : end + 1]
            start = end + 1
            if oversized or size + len(head) > MAX_LINE_BYTES:
                yield OVERSIZED_LINE
            elif parts:
                parts.append(head)
                yield b"".join(parts)
            else:
                yield head
            parts, size, oversized = [], 0, False
    if oversized:
        yield OVERSIZED_LINE
    elif parts:
        yield b"".join(parts)

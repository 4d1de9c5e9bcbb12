"""S3 URIs: parsing and the forms each AWS API accepts."""

from __future__ import annotations

import re
from typing import NamedTuple

from finetuning.errors import InvalidJobConfigError

# Bucket naming rules: 3-63 characters, lowercase letters, digits, dots and hyphens, starting
# and ending with a letter or digit.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_S3_URI = re.compile(rf"^s3://(?P<bucket>{_BUCKET})(?:/(?P<key>.*))?$")

# The pattern CreateModelCustomizationJob applies to trainingDataConfig.s3Uri,
# validationDataConfig.validators[].s3Uri and outputDataConfig.s3Uri (max 1024 characters);
# it allows fewer key characters than S3 itself (no spaces, '=', '+', ...).
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_TrainingDataConfig.html
BEDROCK_S3_URI = re.compile(
    r"^s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?$"
)
BEDROCK_S3_URI_MAX_LENGTH = 1024


class S3Uri(NamedTuple):
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"


def is_s3_uri(value: str | None) -> bool:
    return bool(value) and str(value).startswith("s3://")


def parse_s3_uri(uri: str, field: str) -> S3Uri:
    """Split ``s3://bucket/key`` into its parts, or raise naming ``field``."""
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise InvalidJobConfigError(
            field,
            "an S3 URI such as s3://my-bucket/path/train.jsonl (bucket: 3-63 of a-z 0-9 . -)",
            uri,
        )
    return S3Uri(match["bucket"], match["key"] or "")


def check_bedrock_s3_uri(uri: str, field: str) -> S3Uri:
    """Parse ``uri`` and check it against the stricter form Bedrock accepts."""
    parsed = parse_s3_uri(uri, field)
    if len(uri) > BEDROCK_S3_URI_MAX_LENGTH or not BEDROCK_S3_URI.match(uri):
        raise InvalidJobConfigError(
            field,
            "an S3 URI Bedrock accepts: at most 1024 characters, key characters limited to "
            "letters, digits and - ! _ * ' ( ) . /",
            uri,
        )
    return parsed


def join_s3(prefix: str, *parts: str) -> str:
    """``join_s3("s3://b/out/", "job", "model")`` -> ``s3://b/out/job/model``."""
    joined = prefix.rstrip("/")
    for part in parts:
        joined += "/" + part.strip("/")
    return joined

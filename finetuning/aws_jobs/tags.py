"""The platform's tag vocabulary, and tags as the key/value lists the services take.

One vocabulary for everything the platform creates (jobs, throughputs, endpoints,
deployments), whichever function or library path creates it: the expiry cleanup and the
IAM conditions of the cleanup and failure functions read these same keys, so a resource
tagged otherwise is invisible to them.

- ``finetuning:platform``: the environment's resource prefix (``<project>-<env>``);
- ``finetuning:job-id``: the fine-tuning job that produced it, where one did;
- ``finetuning:expires-at``: when the expiry cleanup deletes it (UTC, ``...Z``);
- ``finetuning:keep``: ``true`` keeps it whatever its expiry.

Bedrock's Tag shape spells the fields ``key``/``value``, SageMaker's ``Key``/``Value``:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_Tag.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

PLATFORM = "finetuning:platform"
JOB_ID = "finetuning:job-id"
EXPIRES_AT = "finetuning:expires-at"
KEEP = "finetuning:keep"
KEEP_VALUE = "true"
# The format of EXPIRES_AT (ISO 8601 in UTC, to the second): sorts as text.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def platform_resource_tags(
    resource_prefix: str,
    *,
    job_id: str | None = None,
    expires_at: datetime | None = None,
    keep: bool = False,
    user_tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of anything the platform creates; the platform's keys win over user tags."""
    tags = {**(user_tags or {}), PLATFORM: resource_prefix}
    if job_id is not None:
        tags[JOB_ID] = job_id
    if expires_at is not None:
        tags[EXPIRES_AT] = expires_at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    if keep:
        tags[KEEP] = KEEP_VALUE
    return tags


def as_key_value_list(
    tags: Mapping[str, str], key: str = "key", value: str = "value"
) -> list[dict[str, str]]:
    """Sorted by key, so that the same tags always give the same request."""
    return [{key: k, value: v} for k, v in sorted(dict(tags).items())]


def from_key_value_list(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Either spelling back to a mapping."""
    result = {}
    for item in items:
        key = item.get("key", item.get("Key"))
        result[str(key)] = str(item.get("value", item.get("Value", "")))
    return result

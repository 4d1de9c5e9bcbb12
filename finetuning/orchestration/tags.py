"""Tags the platform puts on what it creates, and reads back to decide what to clean up.

IAM policies of the cleanup and failure functions are conditioned on these same keys
(``stacks/orchestration_stack.py``), so a resource without ``finetuning:platform`` set to
this environment's prefix, or with ``finetuning:keep`` set to ``true``, cannot be deleted
by the platform even if its code were wrong. Serving resources made elsewhere (endpoints of
the serving work) join the cleanup by carrying the same tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

# The key/value list forms of the services, re-exported for the steps that tag and read tags.
from finetuning.orchestration.aws_jobs.tags import as_key_value_list as as_key_value_list
from finetuning.orchestration.aws_jobs.tags import from_key_value_list as from_key_value_list
from finetuning.orchestration.records import parse_timestamp, timestamp

PLATFORM = "finetuning:platform"
JOB_ID = "finetuning:job-id"
EXPIRES_AT = "finetuning:expires-at"
KEEP = "finetuning:keep"
KEEP_VALUE = "true"


def platform_tags(
    resource_prefix: str, job_id: str, user_tags: Mapping[str, str] | None = None
) -> dict[str, str]:
    return {**(user_tags or {}), PLATFORM: resource_prefix, JOB_ID: job_id}


def serving_tags(
    resource_prefix: str,
    job_id: str,
    *,
    expires_at: datetime | None,
    keep: bool,
    user_tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    tags = platform_tags(resource_prefix, job_id, user_tags)
    if expires_at is not None:
        tags[EXPIRES_AT] = timestamp(expires_at)
    if keep:
        tags[KEEP] = KEEP_VALUE
    return tags


def expiry_of(tags: Mapping[str, str]) -> datetime | None:
    text = tags.get(EXPIRES_AT)
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def is_kept(tags: Mapping[str, str]) -> bool:
    return tags.get(KEEP, "").strip().lower() == KEEP_VALUE

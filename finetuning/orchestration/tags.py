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

# The vocabulary and the key/value list forms live in aws_jobs.tags (one vocabulary for the
# library, the functions and the serving code); re-exported for the steps that tag and read.
from finetuning.aws_jobs.tags import EXPIRES_AT as EXPIRES_AT
from finetuning.aws_jobs.tags import JOB_ID as JOB_ID
from finetuning.aws_jobs.tags import KEEP as KEEP
from finetuning.aws_jobs.tags import KEEP_VALUE as KEEP_VALUE
from finetuning.aws_jobs.tags import PLATFORM as PLATFORM
from finetuning.aws_jobs.tags import as_key_value_list as as_key_value_list
from finetuning.aws_jobs.tags import from_key_value_list as from_key_value_list
from finetuning.aws_jobs.tags import platform_resource_tags
from finetuning.orchestration.records import parse_timestamp


def platform_tags(
    resource_prefix: str, job_id: str, user_tags: Mapping[str, str] | None = None
) -> dict[str, str]:
    return platform_resource_tags(resource_prefix, job_id=job_id, user_tags=user_tags)


def serving_tags(
    resource_prefix: str,
    job_id: str,
    *,
    expires_at: datetime | None,
    keep: bool,
    user_tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    return platform_resource_tags(
        resource_prefix, job_id=job_id, expires_at=expires_at, keep=keep, user_tags=user_tags
    )


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

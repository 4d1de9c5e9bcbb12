"""The one strict settings base, and the field types more than one settings model checks.

Every typed settings or spec model derives from :class:`StrictModel`: the library's (the job
manifest, the serving settings, the quality gate) and the CDK app's (``stacks/settings/``
reuses this base, so imports run stacks -> finetuning and never back). The default SageMaker
instance type is ``finetuning.aws_jobs.instance_types.DEFAULT_INSTANCE_TYPE``, once for the
library and the stacks (there because the CLI reads it without loading pydantic).

Function bundles ship this module with ``orchestration/``; it imports nothing but pydantic and
:mod:`finetuning.aws_jobs.instance_types`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from finetuning.aws_jobs.instance_types import (
    DEFAULT_INSTANCE_TYPE,
    INSTANCE_TYPE,
    INSTANCE_TYPE_DESCRIPTION,
)

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "INSTANCE_TYPE_RULE",
    "InstanceType",
    "StrictModel",
    "check_instance_type",
]

INSTANCE_TYPE_RULE = f"expected {INSTANCE_TYPE_DESCRIPTION}"


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo never passes silently); values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_instance_type(value: str) -> str:
    """``value`` if it reads ``ml.<family>.<size>``; else a ``ValueError`` saying so."""
    if not INSTANCE_TYPE.match(value):
        raise ValueError(INSTANCE_TYPE_RULE)
    return value


# A SageMaker instance type field; pydantic adds the field name and the value to the error.
InstanceType = Annotated[str, AfterValidator(check_instance_type)]

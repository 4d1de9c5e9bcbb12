"""Tags as a mapping, and as the ``[{"key": ..., "value": ...}]`` lists the services take.

Bedrock's Tag shape spells the fields ``key``/``value``, SageMaker's ``Key``/``Value``:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_Tag.html
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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

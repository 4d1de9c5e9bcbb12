"""A backend job's state in backend-neutral terms (what describe calls and events yield)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from finetuning.orchestration.records import JobStatus


@dataclass(frozen=True)
class JobState:
    job_name: str
    status: JobStatus
    backend_status: str
    failure_reason: str | None = None
    job_arn: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


def finite_metrics(pairs: dict[str, Any]) -> dict[str, float]:
    """Keep numeric, finite metric values (DynamoDB and JSON have no NaN or infinity)."""
    clean = {}
    for name, value in pairs.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            clean[name] = float(value)
    return clean

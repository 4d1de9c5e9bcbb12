"""The contract every backend fulfils.

``check`` validates a fully resolved job config without touching AWS (or the local service)
and returns the hyperparameters in the backend's own names (``sources`` says where each value
came from, for error messages); ``create`` then submits it. The
service calls ``check`` before any AWS call, so every configuration mistake surfaces first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from finetuning.jobs import Backend, FinetuningJobConfig, FinetuningJobResult, JobPage, JobStatus


class JobBackend(Protocol):
    name: Backend

    def check(
        self, config: FinetuningJobConfig, sources: dict[str, str] | None = None
    ) -> dict[str, str]: ...

    def create(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> FinetuningJobResult: ...

    def get(self, identifier: str) -> FinetuningJobResult: ...

    def list(
        self, status_filter: JobStatus | None, limit: int | None, next_token: str | None
    ) -> JobPage: ...

    def stop(self, identifier: str) -> FinetuningJobResult: ...


def request_token(request: Mapping[str, Any], length: int = 64) -> str:
    """An idempotency token derived from the request itself.

    The same request (same job name, data, hyperparameters, ...) always gives the same token,
    so a retried call, in this process or a later one, cannot start a second job.
    """
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]

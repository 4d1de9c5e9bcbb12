"""One place that makes (and caches) the AWS clients a step needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finetuning.orchestration import aws


class Clients:
    """``clients("bedrock")`` returns the same client on every call.

    Tests pass a ``factory`` that returns moto-backed or stubbed clients.
    """

    def __init__(
        self,
        region: str | None = None,
        factory: Callable[[str, str | None], Any] = aws.client,
    ) -> None:
        self._region = region
        self._factory = factory
        self._cache: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self._factory(service, self._region)
        return self._cache[service]

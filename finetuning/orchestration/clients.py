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
        open_weight_rft: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self._region = region
        self._factory = factory
        self._open_weight_rft = open_weight_rft
        self._cache: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self._factory(service, self._region)
        return self._cache[service]

    def open_weight_rft(self, region: str) -> Any:
        """The open-weight RFT backend (Bedrock's OpenAI-compatible API) of ``region``, with
        a short-term API key made from this process's credentials, and S3 to read data with.
        Made on each call: a key lives no longer than the credentials it was made from."""
        if self._open_weight_rft is not None:
            return self._open_weight_rft(region, self("s3"))
        from finetuning.orchestration import open_weight

        return open_weight.backend(region, self("s3"))

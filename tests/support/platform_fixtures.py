"""The moto-backed platform and the Lambda handler runner, shared by the library's
orchestration tests, the handler tests and the workflow simulations (each folder's conftest
imports them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.support.platform_fakes import LambdaContext, Platform, create_platform, load_handler


@pytest.fixture
def platform(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    with mock_aws():
        resources = create_platform()
        for name, value in resources.environment.items():
            monkeypatch.setenv(name, value)
        yield resources


@pytest.fixture
def invoke(platform: Platform) -> Callable[..., Any]:
    """``invoke("register_job", event)`` runs a handler as Lambda would (fresh module)."""

    def run(name: str, event: dict[str, Any], *, module: Any = None) -> Any:
        handler = module or load_handler(name)
        return handler.handler(event, LambdaContext())

    return run

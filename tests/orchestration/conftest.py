"""Fixtures of the orchestration tests: a moto-backed platform and the function handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.orchestration.fakes import LambdaContext, Platform, create_platform, load_handler


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


# Modules that start the jsii runtime (CDK): kept on one xdist worker (`--dist loadgroup`)
# so the runtime starts once, beside the moto-only modules on the other worker.
_CDK_MODULES = ("test_stack.py", "test_simulation.py", "test_events.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == here and path.name in _CDK_MODULES:
            item.add_marker(pytest.mark.xdist_group("orchestration-cdk"))

"""Around every workflow simulation, the check that each AWS call a function made is allowed
by that function's role in the synthesized app; the moto-backed platform and the handler
runner come from ``tests/support/platform_fixtures.py``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import workflow_engine as engine
from tests.support.iam_policy import Templates
from tests.support.iam_recorder import AwsCallRecorder, aws_calls  # noqa: F401  (fixture)
from tests.support.platform_fakes import FUNCTIONS, Platform
from tests.support.synth import synth  # noqa: F401  (session fixture: synthesized once)


# The simulations start the jsii runtime (CDK): they stay on one xdist worker
# (`--dist loadgroup`) with the orchestration stack and event-rule tests, so the runtime
# starts once, beside the moto-only modules on the other worker.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.xdist_group("orchestration-cdk"))


# Whether a test's own call passed: the permission check reports only on passing scenarios.
_CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


@pytest.fixture(scope="session")
def app_as_tested(synth: Callable[..., Any]) -> dict[str, Any]:  # noqa: F811
    """The app as the fakes' environment would deploy it (prefix llm-finetuning-test): the
    same synthesis, cached on disk, as tests/contracts/test_iam_calls.py."""
    return synth("dev", as_environment="test").templates


@pytest.fixture(autouse=True)
def simulated_calls_allowed(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Records every AWS call each invoked function makes (the
    router's ``current_function``, on the engine's thread too), and after a passing test
    asserts each is allowed by that function's role, with what AWS authorizes on its behalf
    and what the jobs it starts do as their service role."""
    recorder: AwsCallRecorder = request.getfixturevalue("aws_calls")
    templates = request.getfixturevalue("app_as_tested")
    resources: Platform | None = (
        request.getfixturevalue("platform") if "platform" in request.fixturenames else None
    )
    recorder.actor_of = lambda: _construct(engine.current_function.get())
    invoked: set[str] = set()
    monkeypatch.setattr(
        engine, "ROUTER_OBSERVERS", [lambda invocation: invoked.add(invocation.function)]
    )
    yield
    if not invoked or not request.node.stash.get(_CALL_PASSED, False):
        return  # no workflow ran (definition checks), or the test already failed
    assert resources is not None, "a simulation ran functions without the moto platform"
    app = Templates(templates)
    functions = {}
    for name in sorted(invoked):
        construct = _construct(name)
        assert construct is not None
        stack, function_id = functions[construct] = app.function(construct)
        extra = FUNCTIONS.get(name, (name, {}))[1]
        # The run's environment: the platform's names, and what a test set on top.
        values = {**os.environ, **resources.environment, **extra}
        app.bind_environment(stack, function_id, values)
    recorder.assert_allowed(app, functions)


def _construct(function: str | None) -> str | None:
    return None if function is None else engine.FUNCTION_CONSTRUCTS.get(function, function)

"""Monitoring wired to the real platform stacks by ``PlatformStacks`` (stacks/platform_stacks.py):
the dev environment with a budget, with the nag gate over all of it."""

from __future__ import annotations

import json

import pytest

from stacks.compliance import add_compliance_gate
from stacks.platform_stacks import PlatformStacks, platform_environment
from stacks.settings import load_settings
from stacks.settings.monitoring import BudgetSettings, MonitoringSettings
from tests.support.delivery import cdk_app, one, resources

pytestmark = pytest.mark.xdist_group("delivery-monitoring")

SETTINGS = load_settings("dev")
PREFIX = SETTINGS.resource_prefix


@pytest.fixture(scope="module")
def assembly():
    app = cdk_app()
    monitoring = MonitoringSettings(budget=BudgetSettings(monthly_limit_usd=200))
    settings = SETTINGS.model_copy(update={"monitoring": monitoring})
    PlatformStacks(app, settings=settings, env=platform_environment(settings))
    add_compliance_gate(app)
    return app.synth()  # raises if any nag finding is left unacknowledged


def test_the_gate_passes_for_the_environment_with_monitoring(assembly) -> None:
    names = {stack.stack_name for stack in assembly.stacks}
    assert f"{PREFIX}-monitoring" in names and f"{PREFIX}-orchestration" in names


def test_every_platform_function_and_the_state_machine_have_alarms(assembly) -> None:
    template = assembly.get_stack_by_name(f"{PREFIX}-monitoring").template
    orchestration = assembly.get_stack_by_name(f"{PREFIX}-orchestration").template
    serving = assembly.get_stack_by_name(f"{PREFIX}-serving").template
    platform_functions = len(resources(orchestration, "AWS::Lambda::Function")) + len(
        resources(serving, "AWS::Lambda::Function")
    )
    names = [
        a["Properties"]["AlarmName"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    ]
    function_alarms = [n for n in names if n.startswith(f"{PREFIX}-function-errors-")]
    assert len(function_alarms) == platform_functions + 1  # and the gauge function
    assert f"{PREFIX}-failed-executions-0" in names


def test_the_gauge_lists_executions_of_the_deployed_state_machine(assembly) -> None:
    template = assembly.get_stack_by_name(f"{PREFIX}-monitoring").template
    variables = one(template, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert "Fn::ImportValue" in json.dumps(variables["STATE_MACHINE_ARNS"])
    assert variables["ENDPOINT_NAME_PREFIX"] == f"{PREFIX}-"


def test_the_orchestration_key_lets_budgets_publish_to_its_topic(assembly) -> None:
    orchestration = assembly.get_stack_by_name(f"{PREFIX}-orchestration").template
    keys = resources(orchestration, "AWS::KMS::Key")
    policy = json.dumps([k["Properties"]["KeyPolicy"] for k in keys.values()])
    assert "budgets.amazonaws.com" in policy

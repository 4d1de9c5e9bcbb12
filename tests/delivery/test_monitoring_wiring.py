"""Monitoring wired to the real platform stacks, exactly as proposed for stacks/stage.py.

Until ``PlatformStacks`` builds the monitoring stack itself, this test builds the dev
environment and adds ``MonitoringStack`` with the wiring the lead is asked to copy, then
runs the nag gate over all of it.
"""

from __future__ import annotations

import json

import pytest
from constructs import Construct

from stacks.compliance import add_compliance_gate
from stacks.delivery_settings import BudgetSettings, MonitoringSettings
from stacks.monitoring_stack import MonitoringStack
from stacks.settings import load_settings
from stacks.stage import PlatformStacks, platform_environment
from tests.delivery.support import cdk_app, one, resources

pytestmark = pytest.mark.xdist_group("delivery-monitoring")

SETTINGS = load_settings("dev")
PREFIX = SETTINGS.resource_prefix


def add_monitoring(
    scope: Construct, platform: PlatformStacks, monitoring: MonitoringSettings
) -> MonitoringStack:
    """The lines proposed for PlatformStacks.__init__ (monitoring=settings.monitoring)."""
    settings = SETTINGS
    env = platform_environment(settings)
    prefix = settings.resource_prefix
    serving = platform.serving
    return MonitoringStack(
        scope,
        f"{prefix}-monitoring",
        stack_name=f"{prefix}-monitoring",
        settings=settings,
        monitoring=monitoring,
        key=platform.storage.key,
        topic=platform.orchestration.topic,
        topic_key=platform.orchestration.key,
        state_machines=[platform.orchestration.state_machine],
        functions=[
            *platform.orchestration.lambda_functions,
            serving.evaluate_function,
            serving.register_function,
            serving.deploy_function,
        ],
        env=env,
    )


@pytest.fixture(scope="module")
def assembly():
    app = cdk_app()
    platform = PlatformStacks(app, settings=SETTINGS, env=platform_environment(SETTINGS))
    add_monitoring(app, platform, MonitoringSettings(budget=BudgetSettings(monthly_limit_usd=200)))
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
    assert variables["ENDPOINT_PREFIX"] == f"{PREFIX}-"


def test_the_orchestration_key_lets_budgets_publish_to_its_topic(assembly) -> None:
    orchestration = assembly.get_stack_by_name(f"{PREFIX}-orchestration").template
    keys = resources(orchestration, "AWS::KMS::Key")
    policy = json.dumps([k["Properties"]["KeyPolicy"] for k in keys.values()])
    assert "budgets.amazonaws.com" in policy

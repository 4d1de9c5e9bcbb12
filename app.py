#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c env=dev|prod` builds one environment of the platform."""

import sys

from aws_cdk import App

from stacks.compliance import add_compliance_gate
from stacks.platform_stacks import PlatformStacks, platform_environment
from stacks.settings import SettingsError, load_settings


def main() -> None:
    app = App()
    environment = app.node.try_get_context("env") or "dev"
    try:
        settings = load_settings(environment)
    except SettingsError as exc:
        sys.exit(f"error: {exc}")
    PlatformStacks(app, settings=settings, env=platform_environment(settings))
    add_compliance_gate(app)
    app.synth()


if __name__ == "__main__":
    main()

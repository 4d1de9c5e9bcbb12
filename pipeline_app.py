#!/usr/bin/env python3
"""CDK entry point of the deployment pipeline (CDK Pipelines).

    cdk deploy --app "python3 pipeline_app.py"        # once, from a workstation
    cdk synth --app "python3 pipeline_app.py"         # what the pipeline's Build step runs

Reads ``config/pipeline.yaml`` (or ``-c pipeline_config=<path>``) and the settings of every
environment it deploys (``config/<env>.yaml``). After the first deployment the pipeline
updates itself from the repository on every change.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App, Environment

from stacks.compliance import add_compliance_gate
from stacks.pipeline_stack import PipelineStack, StageFactory, platform_stage
from stacks.settings import CONFIG_DIR, SettingsError, load_settings
from stacks.settings.pipeline import (
    PIPELINE_SETTINGS_FILE,
    check_topology,
    load_pipeline_settings,
)


def build(
    app: App,
    config: Path,
    config_dir: Path = CONFIG_DIR,
    stage_factory: StageFactory = platform_stage,
) -> PipelineStack:
    """Validate the settings and add the pipeline stack to ``app``.

    ``stage_factory`` builds one environment's Stage; the default deploys every platform
    stack (``FineTuningPlatformStage``).
    """
    pipeline = load_pipeline_settings(config)
    environments = [load_settings(t.environment, config_dir) for t in pipeline.stages]
    check_topology(pipeline, environments)
    return PipelineStack(
        app,
        pipeline.name,
        stack_name=pipeline.name,
        settings=pipeline,
        environments=environments,
        stage_factory=stage_factory,
        env=Environment(account=pipeline.account, region=pipeline.region),
    )


def main() -> None:
    app = App()
    config = Path(
        app.node.try_get_context("pipeline_config") or CONFIG_DIR / PIPELINE_SETTINGS_FILE
    )
    try:
        build(app, config)
    except SettingsError as exc:
        sys.exit(f"error: {exc}")
    add_compliance_gate(app)
    app.synth()


if __name__ == "__main__":
    main()

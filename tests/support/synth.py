"""Synthesize the platform in-process, with the cdk-nag gate on, and hand out templates.

Synth takes seconds, so each distinct settings variant is synthesized once per test run,
shared by every xdist worker.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from filelock import FileLock

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]


def cdk_context() -> dict[str, Any]:
    """The feature flags and defaults of cdk.json, as the CDK CLI would pass them.

    Asset bundling is skipped (templates are what these tests check; the function bundles
    have tests of their own), which also keeps synth offline and fast."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": []}


def settings_dict(
    environment: str = "dev", *, as_environment: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """config/<environment>.yaml with dotted-key overrides, e.g. {"network.nat_gateways": 2};
    ``as_environment`` renames the environment (its resource prefix follows)."""
    data = yaml.safe_load((ROOT / "config" / f"{environment}.yaml").read_text())
    if as_environment is not None:
        data["environment"] = as_environment
    for dotted, value in overrides.items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return data


@dataclass
class SynthResult:
    templates: dict[str, dict[str, Any]]  # stack name -> template JSON

    def template(self, suffix: str):
        """An aws_cdk.assertions.Template for the stack whose name ends with ``suffix``."""
        from aws_cdk.assertions import Template

        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return Template.from_json(self.templates[name])

    def resources(self, cfn_type: str | None = None) -> Iterator[tuple[str, str, dict]]:
        """(stack name, logical id, resource) over every template."""
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if cfn_type is None or resource["Type"] == cfn_type:
                    yield stack, logical_id, resource


def synth_platform(data: dict[str, Any], outdir: Path) -> SynthResult:
    from aws_cdk import App

    from stacks.compliance import add_compliance_gate
    from stacks.platform_stacks import PlatformStacks, platform_environment
    from stacks.settings import settings_from_mapping

    settings = settings_from_mapping(copy.deepcopy(data), Path("test-settings.yaml"))
    app = App(context=cdk_context(), outdir=str(outdir))
    platform = PlatformStacks(app, settings=settings, env=platform_environment(settings))
    add_compliance_gate(app)
    assembly = app.synth()  # raises if any nag rule fails
    templates = {
        stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template
        for stack in platform.stacks
    }
    return SynthResult(templates=templates)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory):
    """synth(environment="dev", as_environment=None, **overrides) -> SynthResult, synthesized
    once per variant.

    The templates are cached on disk, under a lock, in the run's temporary folder that every
    xdist worker shares, so two workers never synthesize the same variant."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = shared / "cdk-synth-cache"
    cache.mkdir(exist_ok=True)
    memo: dict[str, SynthResult] = {}

    def build(
        environment: str = "dev", *, as_environment: str | None = None, **overrides: Any
    ) -> SynthResult:
        key = hashlib.sha256(
            json.dumps([environment, as_environment, overrides], sort_keys=True).encode()
        )
        name = key.hexdigest()[:16]
        if name not in memo:
            path = cache / f"{name}.json"
            with FileLock(f"{path}.lock"):
                if not path.exists():
                    outdir = tmp_path_factory.mktemp(f"cdk-{environment}")
                    data = settings_dict(environment, as_environment=as_environment, **overrides)
                    result = synth_platform(data, outdir)
                    path.write_text(json.dumps(result.templates))
            memo[name] = SynthResult(templates=json.loads(path.read_text()))
        return memo[name]

    return build


@pytest.fixture(scope="session")
def dev(synth) -> SynthResult:
    return synth("dev")


@pytest.fixture(scope="session")
def prod(synth) -> SynthResult:
    return synth("prod")

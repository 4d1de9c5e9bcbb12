"""Helpers for the delivery tests: a test App with the repository's CDK context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aws_cdk import App

REPO = Path(__file__).resolve().parents[2]


def cdk_app() -> App:
    """An App with cdk.json's context (feature flags), as `cdk synth` would build it."""
    return App(context=json.loads((REPO / "cdk.json").read_text())["context"])


def resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def one(template: dict, resource_type: str) -> dict:
    found = list(resources(template, resource_type).values())
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


def statements(template: dict) -> Iterator[dict[str, Any]]:
    """Every statement of every IAM policy and managed policy in ``template``."""
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for resource in resources(template, kind).values():
            yield from resource["Properties"]["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]

"""Physical names that two stacks must agree on without a cross-stack reference.

The pipeline cannot reference resources of another stage's stacks, so the orchestration
stack names them deterministically and the pipeline rebuilds their ARNs from these helpers.
"""

from __future__ import annotations

from stacks.settings.platform import PlatformSettings


def default_state_machine_name(settings: PlatformSettings) -> str:
    """The orchestration state machine's physical name in one environment.

    The pipeline cannot reference a state machine in another stage's stack, so the
    orchestration stack names it deterministically and the pipeline builds its ARN.
    """
    return f"{settings.resource_prefix}-finetuning"


def orchestration_key_alias(settings: PlatformSettings) -> str:
    """Alias of the key that encrypts the orchestration state machine (orchestration_stack)."""
    return f"alias/{settings.resource_prefix}-orchestration"

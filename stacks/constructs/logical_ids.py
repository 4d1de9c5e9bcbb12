"""Keep a stack's logical ids when resources move into a construct of their own.

CDK derives a resource's logical id from its construct path, so moving resources one level
down (stack -> construct -> resource) gives them new ids, and CloudFormation would replace
them: for resources with physical names (alarms, dashboards, budgets, functions) the update
fails. :func:`keep_stack_logical_ids` gives them the ids they had before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from aws_cdk import CfnElement, Stack
from constructs import Construct


def keep_stack_logical_ids(construct: Construct, *, except_under: Sequence[Construct] = ()) -> None:
    """Give every resource under ``construct`` the logical id CDK would compute if the
    construct's children sat directly in its stack. Call it before anything resolves those
    ids (a nag suppression naming a resource's ARN resolves it at once).

    ``except_under``: constructs whose resources keep the ids they have (a
    ``PlatformFunction`` that was given its resources' former ids itself)."""
    stack = Stack.of(construct)
    for element in construct.node.find_all():
        if isinstance(element, CfnElement):
            scopes = element.node.scopes
            if any(scope in except_under for scope in scopes):
                continue
            path = [scope.node.id for scope in scopes[scopes.index(stack) + 1 :]]
            path.remove(construct.node.id)
            element.override_logical_id(unique_id(path))


def unique_id(components: list[str]) -> str:
    """CDK's ``makeUniqueId`` (aws-cdk-lib core/lib/private/uniqueid.ts), not exported: the
    readable path (without ``Default``, ``Resource`` and repeated components) plus the
    first 8 hex digits of the MD5 of the path without ``Default``."""
    components = [c for c in components if c != "Default"]
    if len(components) == 1:
        return re.sub(r"[^A-Za-z0-9]", "", components[0])
    digest = hashlib.md5("/".join(components).encode()).hexdigest()[:8].upper()
    human: list[str] = []
    for component in components:
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "".join(re.sub(r"[^A-Za-z0-9]", "", c) for c in human if c != "Resource")
    return readable[:240] + digest


class StackLevelConstruct(Construct):
    """A construct that groups resources of its stack without moving them: every resource
    below it keeps the logical id it had as a direct child of the stack (its own id, and
    that of any other ``StackLevelConstruct`` above it, are left out of the path). Call
    :func:`keep_flat_logical_ids` on it at the end of its constructor, and on any construct
    below it that resolves its own resources' ids early (a nag suppression naming an ARN)."""


def keep_flat_logical_ids(construct: Construct) -> None:
    """Give every resource under ``construct`` the logical id it would have if no
    :class:`StackLevelConstruct` sat between it and its stack; a no-op where none does."""
    stack = Stack.of(construct)
    for element in construct.node.find_all():
        if isinstance(element, CfnElement):
            scopes = element.node.scopes
            below_stack = scopes[scopes.index(stack) + 1 :]
            if not any(isinstance(scope, StackLevelConstruct) for scope in below_stack):
                continue
            path = [s.node.id for s in below_stack if not isinstance(s, StackLevelConstruct)]
            element.override_logical_id(unique_id(path))

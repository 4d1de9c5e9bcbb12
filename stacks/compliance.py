"""Cross-cutting rules applied to the whole app: the cdk-nag gate, tags, boundaries.

The gate runs the AwsSolutions, HIPAA Security, NIST 800-53 rev 5 and Serverless packs as
CDK policy-validation plugins, so an unacknowledged finding fails ``cdk synth``.
Acknowledgements go through :func:`suppress`, next to the resource they concern, each
with a reason about that resource; docs/compliance.md lists them all and a test keeps
that list in step with the code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Stack, Tags, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks
from constructs import Construct, IConstruct

from stacks.settings import PlatformSettings

NAG_PACKS = (AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, ServerlessChecks)

# Validation-plugin names, which prefix acknowledgement ids ("AwsSolutions::AwsSolutions-S1").
PACK_NAMES = ("AwsSolutions", "HIPAA.Security", "NIST.800.53.R5", "Serverless")
SUPPRESSION_METADATA = "finetuning:nag-suppression"
MIN_REASON_LENGTH = 40


@dataclass(frozen=True)
class Suppression:
    path: str
    rule: str
    reason: str


def add_compliance_gate(scope: Construct) -> None:
    """Run every nag pack over ``scope`` (normally the App) at synth time."""
    Validations.of(scope).add_plugins(*(pack(scope) for pack in NAG_PACKS))


def suppress(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one nag rule on one construct (and its children), with a reason.

    ``rule`` is a rule id (``AwsSolutions-IAM5``) or a single finding
    (``AwsSolutions-IAM5[Resource::*]``). The reason must say why the finding is
    acceptable for this resource, so boilerplate is refused.
    """
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"suppression of {rule} on {construct.node.path}: the reason must explain why "
            f"this resource is acceptable (at least {MIN_REASON_LENGTH} characters), "
            f"got {reason!r}"
        )
    pack = rule.split("-", 1)[0] if not rule.startswith("NIST") else "NIST.800.53.R5"
    if pack not in PACK_NAMES:
        raise ValueError(f"unknown nag rule {rule!r}: expected a rule of {', '.join(PACK_NAMES)}")
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{pack}::{rule}", reason=reason))
    construct.node.add_metadata(SUPPRESSION_METADATA, {"rule": rule, "reason": reason})


def suppress_wildcards(
    construct: IConstruct,
    reason: str,
    *,
    actions: Sequence[str] = (),
    resources: Sequence[str] = (),
) -> None:
    """Acknowledge AwsSolutions-IAM5 for exactly these wildcard actions and resources.

    cdk-nag reports one IAM5 finding per wildcard; each needs its own acknowledgement
    ("evidence"), so a new wildcard added later still fails synth until it is reviewed.
    ``resources`` are the strings given to the policy statement (tokens allowed).
    """
    stack = Stack.of(construct)
    for action in actions:
        suppress(construct, f"AwsSolutions-IAM5[Action::{action}]", reason)
    for resource in resources:
        rendered = _render_for_nag(stack.resolve(resource))
        suppress(construct, f"AwsSolutions-IAM5[Resource::{rendered}]", reason)


def _render_for_nag(value: object) -> str:
    """Render a resolved CloudFormation value the way cdk-nag prints it in finding ids."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((intrinsic, argument),) = value.items()
        if intrinsic == "Ref":
            return f"<{argument}>"
        if intrinsic == "Fn::Join":
            separator, parts = argument
            return separator.join(_render_for_nag(part) for part in parts)
        if intrinsic == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
    raise ValueError(f"cannot render {value!r} as a cdk-nag finding id")


def suppressions(scope: IConstruct) -> Iterator[Suppression]:
    """Every suppression made with :func:`suppress` below ``scope``."""
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == SUPPRESSION_METADATA:
                yield Suppression(construct.node.path, entry.data["rule"], entry.data["reason"])


# CloudFormation's current schema accepts Tags on dashboards, but cfn-lint's (1.51) does
# not yet and reports E3002; dashboards carry no cost that tags would allocate anyway.
UNTAGGED_RESOURCE_TYPES = ["AWS::CloudWatch::Dashboard"]


def apply_tags(scope: Construct, settings: PlatformSettings) -> None:
    """Tag every taggable resource (CDK's Tag aspect) for cost allocation and ownership."""
    for key, value in {
        "project": settings.project,
        "environment": settings.environment,
        "cost-centre": settings.cost_centre,
    }.items():
        Tags.of(scope).add(key, value, exclude_resource_types=UNTAGGED_RESOURCE_TYPES)


def apply_permissions_boundary(stack: Stack, policy_arn: str) -> None:
    """Attach the organisation's permissions boundary to every role of ``stack``."""
    boundary = iam.ManagedPolicy.from_managed_policy_arn(stack, "PermissionsBoundary", policy_arn)
    iam.PermissionsBoundary.of(stack).apply(boundary)

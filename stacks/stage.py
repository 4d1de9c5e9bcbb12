"""One environment of the platform: every stack, wired together, as a CDK Stage.

``app.py`` builds one stage for the environment chosen with ``-c env=...``; the
deployment pipeline builds one per environment it deploys.
"""

from __future__ import annotations

from aws_cdk import Environment, Stage
from constructs import Construct

from stacks.compliance import apply_permissions_boundary, apply_tags
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack
from stacks.settings import PlatformSettings
from stacks.storage_stack import StorageStack


class FineTuningPlatformStage(Stage):
    """Storage, network and security stacks of one environment."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PlatformSettings, **kwargs
    ) -> None:
        kwargs.setdefault("env", Environment(account=settings.account, region=settings.region))
        super().__init__(scope, construct_id, **kwargs)
        prefix = settings.resource_prefix

        self.storage = StorageStack(
            self, "Storage", stack_name=f"{prefix}-storage", settings=settings
        )
        self.network = NetworkStack(
            self, "Network", stack_name=f"{prefix}-network", settings=settings, key=self.storage.key
        )
        self.security = SecurityStack(
            self,
            "Security",
            stack_name=f"{prefix}-security",
            settings=settings,
            key=self.storage.key,
            vpc=self.network.vpc,
            training_subnets=self.network.training_subnets,
            training_security_group=self.network.training_security_group,
        )

        # Policies name the buckets by their deterministic names, not by reference.
        self.security.add_stack_dependency(self.storage)

        apply_tags(self, settings)
        if settings.security.permissions_boundary_arn:
            for stack in self.stacks:
                apply_permissions_boundary(stack, settings.security.permissions_boundary_arn)

    @property
    def stacks(self) -> list:
        return [self.storage, self.network, self.security]

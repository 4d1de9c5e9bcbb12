"""One environment of the platform: every stack, wired together.

:class:`PlatformStacks` builds the stacks into any scope. ``app.py`` builds them at the
top level of the app, because ``cdk deploy --all`` selects only top-level stacks; the
deployment pipeline wraps them in :class:`FineTuningPlatformStage`, one per environment.
Either way the stacks, their names and their wiring are the same.
"""

from __future__ import annotations

from aws_cdk import Environment, Stack, Stage
from constructs import Construct

from finetuning.orchestration.workflow import States
from stacks.compliance import apply_permissions_boundary, apply_tags
from stacks.monitoring_stack import MonitoringStack
from stacks.network_stack import NetworkStack
from stacks.orchestration_stack import OrchestrationStack
from stacks.security_stack import SecurityStack
from stacks.serving_stack import ServingStack
from stacks.settings import PlatformSettings
from stacks.storage_stack import StorageStack


class PlatformStacks:
    """Every stack of one environment, built into ``scope``."""

    def __init__(
        self, scope: Construct, *, settings: PlatformSettings, env: Environment | None = None
    ) -> None:
        prefix = settings.resource_prefix
        # Stack ids equal stack names, so `cdk deploy llm-finetuning-dev-storage` works.
        self.storage = StorageStack(
            scope, f"{prefix}-storage", stack_name=f"{prefix}-storage", settings=settings, env=env
        )
        self.network = NetworkStack(
            scope,
            f"{prefix}-network",
            stack_name=f"{prefix}-network",
            settings=settings,
            key=self.storage.key,
            env=env,
        )
        self.security = SecurityStack(
            scope,
            f"{prefix}-security",
            stack_name=f"{prefix}-security",
            settings=settings,
            key=self.storage.key,
            vpc=self.network.vpc,
            training_subnets=self.network.training_subnets,
            training_security_group=self.network.training_security_group,
            env=env,
        )
        self.serving = ServingStack(
            scope,
            f"{prefix}-serving",
            stack_name=f"{prefix}-serving",
            settings=settings,
            key=self.storage.key,
            vpc=self.network.vpc,
            endpoint_subnets=self.network.endpoint_subnets,
            security=self.security,
            serving=settings.serving,
            env=env,
        )
        self.orchestration = OrchestrationStack(
            scope,
            f"{prefix}-orchestration",
            stack_name=f"{prefix}-orchestration",
            settings=settings,
            platform_key=self.storage.key,
            network=self.network,
            security=self.security,
            # The workflow's evaluation and registration steps are the serving stack's.
            serving_functions={
                States.EVALUATE_BEDROCK: self.serving.evaluate_function,
                States.REGISTER_MODEL: self.serving.register_function,
            },
            orchestration=settings.orchestration,
            env=env,
        )
        self.monitoring = MonitoringStack(
            scope,
            f"{prefix}-monitoring",
            stack_name=f"{prefix}-monitoring",
            settings=settings,
            monitoring=settings.monitoring,
            key=self.storage.key,
            topic=self.orchestration.topic,
            topic_key=self.orchestration.key,
            state_machines=[self.orchestration.state_machine],
            functions=[
                *self.orchestration.lambda_functions,
                self.serving.evaluate_function,
                self.serving.register_function,
                self.serving.deploy_function,
            ],
            env=env,
        )
        # Policies name the buckets by their deterministic names, not by reference.
        for stack in (self.security, self.orchestration, self.serving):
            stack.add_stack_dependency(self.storage)

        for stack in self.stacks:
            apply_tags(stack, settings)
            if settings.security.permissions_boundary_arn:
                apply_permissions_boundary(stack, settings.security.permissions_boundary_arn)

    @property
    def stacks(self) -> list[Stack]:
        return [
            self.storage,
            self.network,
            self.security,
            self.serving,
            self.orchestration,
            self.monitoring,
        ]


class FineTuningPlatformStage(Stage):
    """Every platform stack for one environment, as a deployable unit for pipelines."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PlatformSettings, **kwargs
    ) -> None:
        kwargs.setdefault("env", platform_environment(settings))
        super().__init__(scope, construct_id, **kwargs)
        self.platform = PlatformStacks(self, settings=settings)


def platform_environment(settings: PlatformSettings) -> Environment:
    """Account (None: any account, resolved at deploy time) and region from settings."""
    return Environment(account=settings.account, region=settings.region)

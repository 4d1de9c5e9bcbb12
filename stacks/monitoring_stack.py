"""Monitoring: one dashboard, alarms to the platform's SNS topic, and a monthly budget.

CloudWatch measures most of what matters by itself (Step Functions executions, function
errors, endpoint traffic, estimated charges). It does not measure three things a
fine-tuning platform is judged by, so a small gauge function samples them every few
minutes and publishes them under ``FineTuningPlatform`` (dimension ``Environment``):

- executions still running, the oldest one's age and how many run past the expected
  job time (there is no "running executions" metric, and ``ExecutionTime`` arrives only
  when an execution ends);
- Bedrock provisioned throughput and SageMaker endpoints in service (they bill by the
  hour whether or not anyone calls them);
- the platform's endpoints' traffic, errors and latency summed over the endpoints whose
  names start with the environment's prefix (endpoints are created at run time, so no
  alarm can name them at synth time).

The stack composes four constructs (``stacks/constructs/``): :class:`OperationsGauges` (the
function, code in ``lambda/operations_gauges``), :class:`OperationsAlarms`,
:class:`OperationsDashboard` and :class:`CostBudget`; it owns the topic and key policies that
let CloudWatch and Budgets publish.

Metric references (names, units, dimensions):
https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/monitor_estimated_charges_with_cloudwatch.html
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.constructs.cost_budget import CostBudget, CostBudgetProps
from stacks.constructs.operations_alarms import OperationsAlarms, OperationsAlarmsProps
from stacks.constructs.operations_dashboard import (
    OperationsDashboard,
    OperationsDashboardProps,
)
from stacks.constructs.operations_gauges import (
    GAUGE_NAMESPACE,
    OperationsGauges,
    OperationsGaugesProps,
)
from stacks.settings import PlatformSettings
from stacks.settings.monitoring import MonitoringSettings

__all__ = ["GAUGE_NAMESPACE", "MonitoringStack"]


class MonitoringStack(Stack):
    """Dashboard, alarms, gauge function and budget of one environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        monitoring: MonitoringSettings,
        key: kms.IKey,
        topic: sns.ITopic,
        topic_key: kms.IKey | None = None,
        state_machines: Sequence[sfn.IStateMachine] = (),
        functions: Sequence[lambda_.IFunction] = (),
        endpoint_name_prefix: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings
        self._prefix = settings.resource_prefix
        period = Duration.minutes(monitoring.alarms.period_minutes)
        self.state_machines = list(state_machines)
        # Serving names endpoints "<project>-<env>-<model>" (serving_stack's endpoint rule).
        self.endpoint_name_prefix = endpoint_name_prefix or f"{self._prefix}-"

        self._allow_publishing(topic, topic_key)
        self.gauges = OperationsGauges(
            self,
            "Gauges",
            props=OperationsGaugesProps(
                prefix=self._prefix,
                environment=settings.environment,
                key=key,
                log_retention_days=settings.logs.retention_days,
                interval=Duration.minutes(monitoring.gauge_interval_minutes),
                period=period,
                expected_job_hours=monitoring.alarms.expected_job_hours,
                state_machines=self.state_machines,
                endpoint_name_prefix=self.endpoint_name_prefix,
                reserved_concurrency=monitoring.reserved_concurrency,
                # Resources keep the logical ids they had before the split.
                keep_stack_logical_ids=True,
            ),
        )
        self.gauge_function = self.gauges.function
        self.functions = [*functions, self.gauge_function]

        self.alarms = OperationsAlarms(
            self,
            "Alarms",
            props=OperationsAlarmsProps(
                prefix=self._prefix,
                thresholds=monitoring.alarms,
                period=period,
                topic=topic,
                state_machines=self.state_machines,
                functions=self.functions,
                gauge=self.gauge,
                endpoint_name_prefix=self.endpoint_name_prefix,
                # Resources keep the logical ids they had before the split.
                keep_stack_logical_ids=True,
            ),
        ).alarms
        self.dashboard = OperationsDashboard(
            self,
            "OperationsDashboard",
            props=OperationsDashboardProps(
                prefix=self._prefix,
                environment=settings.environment,
                period=period,
                state_machines=self.state_machines,
                functions=self.functions,
                gauge=self.gauge,
                endpoint_name_prefix=self.endpoint_name_prefix,
                alarms=self.alarms,
                # Resources keep the logical ids they had before the split.
                keep_stack_logical_ids=True,
            ),
        ).dashboard
        self.budget: budgets.CfnBudget | None = None
        if monitoring.budget:
            self.budget = CostBudget(
                self,
                "CostBudget",
                props=CostBudgetProps(
                    prefix=self._prefix,
                    project=settings.project,
                    environment=settings.environment,
                    budget=monitoring.budget,
                    topic=topic,
                    # Resources keep the logical ids they had before the split.
                    keep_stack_logical_ids=True,
                ),
            ).budget

    def gauge(self, name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
        """One of the gauge function's metrics for this environment."""
        return self.gauges.metric(name, statistic)

    # -- notifications --------------------------------------------------------------

    def _allow_publishing(self, topic: sns.ITopic, topic_key: kms.IKey | None) -> None:
        """Let CloudWatch alarms and AWS Budgets publish to the (encrypted) topic.

        Topic policy for Budgets, see
        https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html
        and the key grant for AWS services publishing to an encrypted topic, see
        https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
        """
        account = Aws.ACCOUNT_ID
        sources = {
            "cloudwatch.amazonaws.com": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{account}:"
            f"alarm:{self._prefix}-*",
            "budgets.amazonaws.com": f"arn:{Aws.PARTITION}:budgets::{account}:*",
        }
        for service, source_arn in sources.items():
            conditions = {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": source_arn},
            }
            sid = "".join(part.title() for part in service.split(".")[0].split("-"))
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Allow{sid}Publish{self._prefix.replace('-', '')}",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions=conditions,
                )
            )
            if topic_key is not None:
                topic_key.add_to_resource_policy(
                    iam.PolicyStatement(
                        sid=f"Allow{sid}UseForTopic{self._prefix.replace('-', '')}",
                        principals=[iam.ServicePrincipal(service)],
                        actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                        resources=["*"],
                        conditions=conditions,
                    )
                )

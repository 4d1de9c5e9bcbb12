"""The operations dashboard of one environment: executions, functions, endpoints and spend.

Endpoint graphs use a live SEARCH (endpoints are created at run time); spend comes from the
billing metrics, which exist only in us-east-1 and once billing alerts are enabled, see
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/monitor_estimated_charges_with_cloudwatch.html
https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.constructs.logical_ids import keep_stack_logical_ids

# Billing metrics exist only in us-east-1 and only once billing alerts are enabled.
BILLING_REGION = "us-east-1"
BILLED_SERVICES = ("AmazonSageMaker", "AmazonBedrock", "AWSLambda", "AmazonS3")
DASHBOARD_WIDTH = 24


@dataclass(frozen=True)
class OperationsDashboardProps:
    """What the dashboard shows.

    - ``prefix``: ``<project>-<environment>``; the dashboard is ``<prefix>-operations``.
    - ``environment``: the environment's name, in the title text.
    - ``period``: the period of every graph but the billing ones (6 hours).
    - ``state_machines``, ``functions``: graphed one line each.
    - ``gauge``: reads a gauge function metric by name (``OperationsGauges.metric``).
    - ``endpoint_name_prefix``: the SEARCH for this environment's endpoints.
    - ``alarms``: shown in the alarm status widget.
    - ``keep_stack_logical_ids``: give the resources the logical ids they would have as
      direct children of the stack (for stacks that built them so before).
    """

    prefix: str
    environment: str
    period: Duration
    state_machines: Sequence[sfn.IStateMachine]
    functions: Sequence[lambda_.IFunction]
    gauge: Callable[[str], cloudwatch.IMetric]
    endpoint_name_prefix: str
    alarms: Sequence[cloudwatch.IAlarm]
    keep_stack_logical_ids: bool = False


class OperationsDashboard(Construct):
    """One CloudWatch dashboard (:attr:`dashboard`)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OperationsDashboardProps):
        super().__init__(scope, construct_id)
        self._props = props
        self.dashboard = self._dashboard()
        if props.keep_stack_logical_ids:
            keep_stack_logical_ids(self)

    def _endpoint_search(self, metric: str, statistic: str, label: str) -> cloudwatch.IMetric:
        """Every endpoint of this environment, live.

        An unquoted dimension value is a partial match on consecutive name tokens, so
        ``llm-finetuning-dev`` finds ``llm-finetuning-dev-<model>``, see
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/search-expression-syntax.html
        """
        period = self._props.period
        return cloudwatch.SearchExpression(
            expression=(
                "SEARCH('{AWS/SageMaker,EndpointName,VariantName} "
                f'MetricName="{metric}" EndpointName={self._props.endpoint_name_prefix}\', '
                f"'{statistic}', {int(period.to_seconds())})"
            ),
            label=label,
            period=period,
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{self._props.prefix}-operations",
            default_interval=Duration.days(7),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {self._props.prefix}: fine-tuning operations\n"
                f"Executions, functions, endpoints and spend of the `{self._props.environment}` "
                "environment. Gauges come from the operations-gauges function.",
                width=DASHBOARD_WIDTH,
                height=2,
            )
        )
        dashboard.add_widgets(*self._execution_widgets())
        dashboard.add_widgets(*self._function_widgets())
        dashboard.add_widgets(*self._endpoint_widgets())
        dashboard.add_widgets(*self._cost_widgets())
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self._props.alarms), width=DASHBOARD_WIDTH, height=4
            )
        )
        return dashboard

    def _execution_widgets(self) -> list[cloudwatch.IWidget]:
        period = self._props.period
        outcomes, durations = [], []
        for index, machine in enumerate(self._props.state_machines):
            outcomes.extend(
                [
                    machine.metric_started(period=period, statistic="Sum", label="Started"),
                    machine.metric_succeeded(period=period, statistic="Sum", label="Succeeded"),
                    machine.metric_failed(period=period, statistic="Sum", label="Failed"),
                    machine.metric_timed_out(period=period, statistic="Sum", label="Timed out"),
                    machine.metric_aborted(period=period, statistic="Sum", label="Aborted"),
                ]
            )
            for statistic, label in (("p50", "p50"), ("p90", "p90"), ("Maximum", "max")):
                # Ids must be unique within a graph: one per machine and statistic.
                milliseconds = f"ms_{index}_{label}"
                durations.append(
                    cloudwatch.MathExpression(
                        expression=f"{milliseconds} / 60000",
                        using_metrics={
                            milliseconds: machine.metric_time(period=period, statistic=statistic)
                        },
                        label=f"Job duration {label} (minutes)",
                        period=period,
                    )
                )
        return [
            cloudwatch.GraphWidget(
                title="Executions started, succeeded and failed",
                left=outcomes,
                width=8,
                stacked=False,
            ),
            cloudwatch.GraphWidget(
                title="Job duration (minutes, finished executions)", left=durations, width=8
            ),
            cloudwatch.GraphWidget(
                title="Running jobs",
                left=[
                    self._props.gauge("RunningExecutions"),
                    self._props.gauge("OverdueExecutions"),
                ],
                right=[self._props.gauge("OldestRunningExecutionMinutes")],
                width=8,
            ),
        ]

    def _function_widgets(self) -> list[cloudwatch.IWidget]:
        period = self._props.period
        errors, throttles = [], []
        for function in self._props.functions:
            errors.append(function.metric_errors(period=period, statistic="Sum"))
            throttles.append(function.metric_throttles(period=period, statistic="Sum"))
        return [
            cloudwatch.GraphWidget(title="Function errors", left=errors, width=12),
            cloudwatch.GraphWidget(title="Function throttles", left=throttles, width=12),
        ]

    def _endpoint_widgets(self) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="Endpoint invocations",
                left=[self._endpoint_search("Invocations", "Sum", "Invocations")],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint model latency (microseconds)",
                left=[self._endpoint_search("ModelLatency", "p90", "ModelLatency p90")],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint 4xx and 5xx errors",
                left=[
                    self._endpoint_search("Invocation4XXErrors", "Sum", "4xx"),
                    self._endpoint_search("Invocation5XXErrors", "Sum", "5xx"),
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Endpoints in service",
                left=[self._props.gauge("EndpointsInService")],
                width=6,
            ),
        ]

    def _cost_widgets(self) -> list[cloudwatch.IWidget]:
        billing_period = Duration.hours(6)

        def charges(service: str | None) -> cloudwatch.Metric:
            dimensions = {"Currency": "USD"}
            if service:
                dimensions["ServiceName"] = service
            return cloudwatch.Metric(
                namespace="AWS/Billing",
                metric_name="EstimatedCharges",
                dimensions_map=dimensions,
                statistic="Maximum",
                period=billing_period,
                region=BILLING_REGION,
                label=service or "Total",
            )

        return [
            cloudwatch.GraphWidget(
                title="Provisioned throughput in service",
                left=[self._props.gauge("ProvisionedThroughputInService")],
                right=[self._props.gauge("ProvisionedModelUnitsInService")],
                width=8,
            ),
            cloudwatch.SingleValueWidget(
                title="Estimated charges this month (account, USD)",
                metrics=[charges(None)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Estimated charges by service (USD)",
                left=[charges(service) for service in BILLED_SERVICES],
                width=8,
            ),
        ]

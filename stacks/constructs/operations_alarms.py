"""The alarms of one environment, each notifying the platform's SNS topic (alarm and OK).

Failed executions per state machine, errors per function, endpoint 5xx errors and latency
(summed by the gauge function over the environment's endpoints), and executions past the
expected job time. Metric references:
https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.constructs.logical_ids import keep_stack_logical_ids
from stacks.settings.monitoring import AlarmSettings


@dataclass(frozen=True)
class OperationsAlarmsProps:
    """What the alarms watch and whom they tell.

    - ``prefix``: ``<project>-<environment>``; every alarm is named ``<prefix>-<what>``.
    - ``thresholds``: ``monitoring.alarms`` of the environment's settings.
    - ``period``: the period of every alarm metric.
    - ``topic``: notified when an alarm fires and when it clears.
    - ``state_machines``: one failed-executions alarm each.
    - ``functions``: one errors alarm each.
    - ``gauge``: reads a gauge function metric by name (``OperationsGauges.metric``).
    - ``endpoint_name_prefix``: named in the endpoint alarms' descriptions.
    - ``keep_stack_logical_ids``: give the resources the logical ids they would have as
      direct children of the stack (for stacks that built them so before).
    """

    prefix: str
    thresholds: AlarmSettings
    period: Duration
    topic: sns.ITopic
    state_machines: Sequence[sfn.IStateMachine]
    functions: Sequence[lambda_.IFunction]
    gauge: Callable[[str], cloudwatch.IMetric]
    endpoint_name_prefix: str
    keep_stack_logical_ids: bool = False


class OperationsAlarms(Construct):
    """All alarms of one environment; :attr:`alarms` lists them in creation order."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OperationsAlarmsProps):
        super().__init__(scope, construct_id)
        self._props = props
        self.alarms: list[cloudwatch.Alarm] = []
        self._execution_alarms()
        self._function_alarms()
        self._endpoint_alarms()
        self._overdue_alarm()
        if props.keep_stack_logical_ids:
            keep_stack_logical_ids(self)

    def _alarm(
        self,
        construct_id: str,
        *,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarms = self._props.thresholds
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self._props.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=alarms.evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=treat_missing_data,
        )
        action = cloudwatch_actions.SnsAction(self._props.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _execution_alarms(self) -> None:
        period = self._props.period
        for index, machine in enumerate(self._props.state_machines):
            failed = cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
                using_metrics={
                    "failed": machine.metric_failed(period=period, statistic="Sum"),
                    "timedOut": machine.metric_timed_out(period=period, statistic="Sum"),
                    "aborted": machine.metric_aborted(period=period, statistic="Sum"),
                },
                label="Failed, timed out or aborted executions",
                period=self._props.period,
            )
            self._alarm(
                f"FailedExecutions{index}",
                name=f"failed-executions-{index}",
                description=f"Fine-tuning executions of {machine.state_machine_arn} failed, "
                "timed out or were aborted",
                metric=failed,
                threshold=self._props.thresholds.failed_executions,
            )

    def _function_alarms(self) -> None:
        for index, function in enumerate(self._props.functions):
            self._alarm(
                f"FunctionErrors{index}",
                name=f"function-errors-{index}",
                description=f"Lambda function {function.function_name} returned errors",
                metric=function.metric_errors(period=self._props.period, statistic="Sum"),
                threshold=self._props.thresholds.function_errors,
            )

    def _endpoint_alarms(self) -> None:
        alarms = self._props.thresholds
        prefix = self._props.endpoint_name_prefix
        self._alarm(
            "Endpoint5xx",
            name="endpoint-5xx",
            description=f"SageMaker endpoints named {prefix}* answered with 5xx errors",
            metric=self._props.gauge("EndpointInvocation5XXErrors"),
            threshold=alarms.endpoint_5xx_errors,
        )
        self._alarm(
            "EndpointLatency",
            name="endpoint-latency",
            description=f"Average model latency of an endpoint named {prefix}* "
            f"reached {alarms.endpoint_model_latency_ms:g} ms",
            metric=self._props.gauge("EndpointModelLatencyMs"),
            threshold=alarms.endpoint_model_latency_ms,
        )

    def _overdue_alarm(self) -> None:
        hours = self._props.thresholds.expected_job_hours
        self._alarm(
            "OverdueJobs",
            name="jobs-past-expected-time",
            description=f"A fine-tuning execution has been running for more than {hours:g} h "
            "(the expected job time); or the gauge function stopped reporting",
            metric=self._props.gauge("OverdueExecutions"),
            threshold=1,
            # No data means the gauge function is not running: that hides overdue jobs.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

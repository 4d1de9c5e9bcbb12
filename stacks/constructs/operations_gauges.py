"""The operations gauge function (a :class:`PlatformFunction`), its schedule and its
dead-letter queue.

CloudWatch does not measure running executions, capacity in service or the traffic of
endpoints created at run time; the function in ``lambda/operations_gauges`` samples them on
a schedule and publishes them under :data:`GAUGE_NAMESPACE` (dimension ``Environment``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from finetuning.orchestration.environment import Var
from stacks.compliance import suppress
from stacks.constructs.logical_ids import keep_stack_logical_ids, unique_id
from stacks.constructs.platform_function import PlatformFunction, PlatformFunctionProps

GAUGE_NAMESPACE = "FineTuningPlatform"
GAUGE_FOLDER = "operations_gauges"


@dataclass(frozen=True)
class OperationsGaugesProps:
    """What the gauge function watches and how it is run.

    - ``prefix``: ``<project>-<environment>``; names the function, its schedule and the
      metrics' ``Environment`` dimension.
    - ``environment``: the environment's name (the key policy statement's sid).
    - ``key``: encrypts the log group and the dead-letter queue.
    - ``log_retention_days``: the platform's log retention.
    - ``interval``: how often the schedule runs the function.
    - ``period``: the alarm period; endpoint traffic is summed over the last full one.
    - ``expected_job_hours``: executions running longer count as overdue.
    - ``state_machines``: whose running executions are counted (may be empty).
    - ``endpoint_name_prefix``: endpoints whose names start with it are this environment's.
    - ``reserved_concurrency``: None leaves the function on the unreserved pool.
    - ``keep_stack_logical_ids``: give the resources the logical ids they would have as
      direct children of the stack (for stacks that built them so before).
    """

    prefix: str
    environment: str
    key: kms.IKey
    log_retention_days: int
    interval: Duration
    period: Duration
    expected_job_hours: float
    state_machines: Sequence[sfn.IStateMachine]
    endpoint_name_prefix: str
    reserved_concurrency: int | None = None
    keep_stack_logical_ids: bool = False


class OperationsGauges(Construct):
    """Samples the gauges every ``interval``; :meth:`metric` reads one of them.
    :attr:`function` is the Lambda function, :attr:`platform_function` the construct with
    its role, managed policy and log group."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OperationsGaugesProps):
        super().__init__(scope, construct_id)
        self._props = props
        self.function = self._function()
        if props.keep_stack_logical_ids:
            # The function's own resources got their former ids from PlatformFunction.
            keep_stack_logical_ids(self, except_under=[self.platform_function])

    def metric(self, name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
        """One of the gauge function's metrics for this environment."""
        return cloudwatch.Metric(
            namespace=GAUGE_NAMESPACE,
            metric_name=name,
            dimensions_map={"Environment": self._props.prefix},
            statistic=statistic,
            period=self._props.period,
        )

    def _function(self) -> lambda_.Function:
        props = self._props
        interval = props.interval
        name = f"{props.prefix}-operations-gauges"
        dead_letters = sqs.Queue(
            self,
            "GaugeDeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=props.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        suppress(
            dead_letters,
            "Serverless-SQSRedrivePolicy",
            "This queue is itself the dead-letter queue of the gauge function and of its "
            "schedule; messages wait here 14 days for a person to look at them.",
        )
        state_machine_arns = [m.state_machine_arn for m in props.state_machines]
        self.platform_function = gauge = PlatformFunction(
            self,
            "GaugeFunction",
            props=PlatformFunctionProps(
                folder=GAUGE_FOLDER,
                family="monitoring",
                description="Samples running executions, capacity in service and endpoint traffic",
                function_name=name,
                # The log group was created before under a generated name.
                name_log_group=False,
                key=props.key,
                # The key encrypts the log group (CloudWatch Logs' own key grant) and the
                # dead-letter queue; the function itself decrypts nothing.
                key_only_for_dead_letters=True,
                dead_letter_queue=dead_letters,
                log_retention_days=props.log_retention_days,
                # Only boto3 and the standard library: no Powertools, no part of the library.
                powertools=False,
                library_paths=(),
                memory_mb=256,
                timeout=Duration.minutes(2),
                # Opt-in: a reservation fails deployment in accounts at the default quota.
                reserved_concurrency=props.reserved_concurrency,
                environment={
                    Var.RESOURCE_PREFIX: props.prefix,
                    Var.METRICS_NAMESPACE: GAUGE_NAMESPACE,
                    Var.STATE_MACHINE_ARNS: ",".join(state_machine_arns),
                    Var.EXPECTED_JOB_MINUTES: str(props.expected_job_hours * 60),
                    Var.ENDPOINT_NAME_PREFIX: props.endpoint_name_prefix,
                    Var.GAUGE_PERIOD_SECONDS: str(int(props.period.to_seconds())),
                },
                vpc_reason="The gauge function calls only AWS control-plane APIs (Step "
                "Functions, Bedrock and SageMaker List calls, CloudWatch metrics); it reaches no "
                "VPC resource and no data, and the VPC has no route to those APIs without "
                "interface endpoints.",
                concurrency_reason="The gauge function runs once per gauge interval; reserving "
                "concurrency fails deployment in accounts with a low concurrency quota (Lambda "
                "keeps 100 unreserved). Set monitoring.reserved_concurrency to reserve it.",
                wildcard_reason="PutMetricData, GetMetricData and the Bedrock and SageMaker "
                "List calls support no resource scoping; PutMetricData is bounded to the "
                f"{GAUGE_NAMESPACE} namespace.",
                # The ids the function, log group, role and policy had as the stack's own
                # children (the function is named: a new id would fail to replace it).
                keep_logical_ids=(
                    {
                        "Function": unique_id(["GaugeFunction", "Resource"]),
                        "LogGroup": unique_id(["GaugeLogs", "Resource"]),
                        "Role": unique_id(["GaugeRole", "Resource"]),
                        "Policy": unique_id(["GaugePolicy", "Resource"]),
                    }
                    if props.keep_stack_logical_ids
                    else {}
                ),
            ),
        )
        # PutMetricData takes resource "*", narrowed by the cloudwatch:namespace key, see
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html
        gauge.allow(
            "PublishGauges",
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringEquals": {"cloudwatch:namespace": GAUGE_NAMESPACE}},
        )
        gauge.allow("ReadEndpointTraffic", ["cloudwatch:GetMetricData"], ["*"])
        gauge.allow(
            "ListInServiceCapacity",
            ["bedrock:ListProvisionedModelThroughputs", "sagemaker:ListEndpoints"],
            ["*"],
        )
        if state_machine_arns:
            gauge.allow("ListRunningExecutions", ["states:ListExecutions"], state_machine_arns)
        function = gauge.function

        rule = events.Rule(
            self,
            "GaugeSchedule",
            rule_name=f"{props.prefix}-operations-gauges",
            description="Samples the operations gauges",
            schedule=events.Schedule.rate(interval),
        )
        rule.add_target(
            targets.LambdaFunction(
                function,
                dead_letter_queue=dead_letters,
                retry_attempts=2,
                max_event_age=interval,
            )
        )
        # EventBridge sends undeliverable events to the encrypted queue with this key, see
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
        props.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"EventBridgeDeadLetters{props.environment.title().replace('-', '')}",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "ArnEquals": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:events:{Stack.of(self).region}:"
                        f"{Stack.of(self).account}:rule/{props.prefix}-operations-gauges"
                    }
                },
            )
        )
        return function

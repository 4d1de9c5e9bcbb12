"""The operations gauge function, its schedule, role, log group and dead-letter queue.

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

from stacks.compliance import suppress, suppress_wildcards
from stacks.constructs.logical_ids import keep_stack_logical_ids
from stacks.lambda_bundling import function_code
from stacks.log_groups import encrypted_log_group

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
    """Samples the gauges every ``interval``; :meth:`metric` reads one of them."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OperationsGaugesProps):
        super().__init__(scope, construct_id)
        self._props = props
        self.function = self._function()
        if props.keep_stack_logical_ids:
            keep_stack_logical_ids(self)

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
        log_group = encrypted_log_group(
            self, "GaugeLogs", key=props.key, retention_days=props.log_retention_days
        )
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
        role = iam.Role(
            self,
            "GaugeRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Reads running executions, provisioned throughput and endpoints; "
            "publishes the platform's operations gauges",
        )
        state_machine_arns = [m.state_machine_arn for m in props.state_machines]
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:*"],
            ),
            iam.PolicyStatement(
                sid="PublishGauges",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": GAUGE_NAMESPACE}},
            ),
            iam.PolicyStatement(
                sid="ReadEndpointTraffic",
                actions=["cloudwatch:GetMetricData"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ListInServiceCapacity",
                actions=["bedrock:ListProvisionedModelThroughputs", "sagemaker:ListEndpoints"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="Tracing",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="DeadLetters",
                actions=["sqs:SendMessage"],
                resources=[dead_letters.queue_arn],
            ),
            iam.PolicyStatement(
                sid="EncryptDeadLetters",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[props.key.key_arn],
            ),
        ]
        if state_machine_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="ListRunningExecutions",
                    actions=["states:ListExecutions"],
                    resources=state_machine_arns,
                )
            )
        policy = iam.ManagedPolicy(
            self,
            "GaugePolicy",
            description="Everything the operations gauge function does, and nothing else",
            roles=[role],
            statements=statements,
        )
        if props.keep_stack_logical_ids:
            # Before the suppression below resolves the log group's ARN to its logical id.
            keep_stack_logical_ids(self)
        suppress_wildcards(
            policy,
            "PutMetricData, GetMetricData, the Bedrock and SageMaker List calls and the X-Ray "
            "writes support no resource scoping; PutMetricData is bounded to the "
            f"{GAUGE_NAMESPACE} namespace. The log-stream wildcard stays in the function's "
            "own log group.",
            resources=["*", f"{log_group.log_group_arn}:*"],
        )

        function = lambda_.Function(
            self,
            "GaugeFunction",
            function_name=name,
            description="Samples running executions, capacity in service and endpoint traffic",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            # Only boto3 and the standard library: the bundle needs no part of the library.
            handler="index.handler",
            code=function_code(GAUGE_FOLDER, library_paths=()),
            memory_size=256,
            timeout=Duration.minutes(2),
            # Opt-in: a reservation fails deployment in accounts at the default quota.
            reserved_concurrent_executions=props.reserved_concurrency,
            role=role.without_policy_updates(),
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letters,
            environment={
                "ENVIRONMENT": props.prefix,
                "NAMESPACE": GAUGE_NAMESPACE,
                "STATE_MACHINE_ARNS": ",".join(state_machine_arns),
                "EXPECTED_JOB_MINUTES": str(props.expected_job_hours * 60),
                "ENDPOINT_PREFIX": props.endpoint_name_prefix,
                "PERIOD_SECONDS": str(int(props.period.to_seconds())),
            },
        )
        function.node.add_dependency(policy)
        # The function's GetAtt on the role already orders them; the DependsOn that CDK adds
        # as well is redundant (cfn-lint W3005).
        function_resource = function.node.default_child
        function_resource.add_override("DependsOn", [policy.node.default_child.logical_id])
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            if props.reserved_concurrency is None:
                suppress(
                    function,
                    f"{pack}-LambdaConcurrency",
                    "The gauge function runs once per gauge interval; reserving concurrency "
                    "fails deployment in accounts with a low concurrency quota (Lambda keeps 100 "
                    "unreserved). Set monitoring.reserved_concurrency to reserve it.",
                )
            suppress(
                function,
                f"{pack}-LambdaInsideVPC",
                "The gauge function calls only AWS control-plane APIs (Step Functions, Bedrock "
                "and SageMaker List calls, CloudWatch metrics); it reaches no VPC resource and "
                "no data, and the VPC has no route to those APIs without interface endpoints.",
            )

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

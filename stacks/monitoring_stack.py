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

Metric references (names, units, dimensions):
https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/monitor_estimated_charges_with_cloudwatch.html
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.compliance import suppress, suppress_wildcards
from stacks.delivery_settings import BudgetSettings, MonitoringSettings
from stacks.log_groups import encrypted_log_group
from stacks.settings import PlatformSettings

GAUGE_NAMESPACE = "FineTuningPlatform"
# Billing metrics exist only in us-east-1 and only once billing alerts are enabled.
BILLING_REGION = "us-east-1"
BILLED_SERVICES = ("AmazonSageMaker", "AmazonBedrock", "AWSLambda", "AmazonS3")
DASHBOARD_WIDTH = 24


# -- the gauge function ---------------------------------------------------------------------
# These functions are the gauge Lambda's source (shipped inline by ``gauge_source``): they
# use boto3 and the standard library only, and nothing else from this module.


def running_execution_minutes(states: Any, state_machine_arn: str, now: datetime) -> list:
    """Minutes each RUNNING execution of one state machine has been running."""
    ages = []
    paginator = states.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"):
        for execution in page["executions"]:
            ages.append((now - execution["startDate"]).total_seconds() / 60)
    return ages


def provisioned_throughput_in_service(bedrock: Any) -> tuple:
    """(count, model units) of Bedrock provisioned throughput InService in this region."""
    count = units = 0
    paginator = bedrock.get_paginator("list_provisioned_model_throughputs")
    for page in paginator.paginate(statusEquals="InService"):
        for summary in page["provisionedModelSummaries"]:
            count += 1
            units += summary.get("modelUnits", 0)
    return count, units


def endpoints_in_service(sagemaker: Any, prefix: str) -> list:
    """Names of InService SageMaker endpoints whose names start with ``prefix``."""
    names = []
    paginator = sagemaker.get_paginator("list_endpoints")
    for page in paginator.paginate(NameContains=prefix, StatusEquals="InService"):
        names.extend(
            e["EndpointName"] for e in page["Endpoints"] if e["EndpointName"].startswith(prefix)
        )
    return names


def endpoint_traffic(cloudwatch: Any, names: list, start: datetime, end: datetime) -> dict:
    """Invocations, 4xx and 5xx summed, and the worst average model latency (ms)."""
    totals = {"Invocations": 0.0, "Invocation4XXErrors": 0.0, "Invocation5XXErrors": 0.0}
    worst_latency_ms = 0.0
    queries, meaning = [], {}
    for index, name in enumerate(names):
        for metric, stat in (*((m, "Sum") for m in totals), ("ModelLatency", "Average")):
            query_id = f"q{index}_{len(queries)}"
            meaning[query_id] = metric
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SageMaker",
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": name},
                                {"Name": "VariantName", "Value": "AllTraffic"},
                            ],
                        },
                        "Period": max(60, int((end - start).total_seconds())),
                        "Stat": stat,
                    },
                }
            )
    for offset in range(0, len(queries), 500):  # GetMetricData takes up to 500 queries
        paginator = cloudwatch.get_paginator("get_metric_data")
        batch = queries[offset : offset + 500]
        for page in paginator.paginate(MetricDataQueries=batch, StartTime=start, EndTime=end):
            for result in page["MetricDataResults"]:
                metric, values = meaning[result["Id"]], result["Values"]
                if metric == "ModelLatency":  # microseconds
                    worst_latency_ms = max([worst_latency_ms, *(v / 1000 for v in values)])
                else:
                    totals[metric] += sum(values)
    return {**totals, "ModelLatencyMs": worst_latency_ms}


def collect_gauges(client: Any, config: dict, now: datetime) -> tuple:
    """Read every gauge; returns ({name: (value, unit)}, [failures]).

    ``client(service_name)`` makes a boto3 client; ``config`` holds state_machine_arns,
    expected_minutes, endpoint_prefix and period_seconds.
    """
    gauges, failures = {}, []
    try:
        ages = []
        states = client("stepfunctions")
        for arn in config["state_machine_arns"]:
            ages.extend(running_execution_minutes(states, arn, now))
        overdue = sum(age > config["expected_minutes"] for age in ages)
        gauges["RunningExecutions"] = (len(ages), "Count")
        gauges["OverdueExecutions"] = (overdue, "Count")
        gauges["OldestRunningExecutionMinutes"] = (max(ages, default=0.0), "None")
    except Exception as exc:  # one gauge failing must not hide the others
        failures.append(f"executions: {exc!r}")
    try:
        count, units = provisioned_throughput_in_service(client("bedrock"))
        gauges["ProvisionedThroughputInService"] = (count, "Count")
        gauges["ProvisionedModelUnitsInService"] = (units, "Count")
    except Exception as exc:
        failures.append(f"provisioned throughput: {exc!r}")
    try:
        names = endpoints_in_service(client("sagemaker"), config["endpoint_prefix"])
        gauges["EndpointsInService"] = (len(names), "Count")
        # The previous full period: CloudWatch may still be filling the current one.
        period = timedelta(seconds=config["period_seconds"])
        end = now.replace(second=0, microsecond=0) - period
        for metric, value in endpoint_traffic(
            client("cloudwatch"), names, end - period, end
        ).items():
            unit = "Milliseconds" if metric == "ModelLatencyMs" else "Count"
            gauges[f"Endpoint{metric}"] = (value, unit)
    except Exception as exc:
        failures.append(f"endpoints: {exc!r}")
    return gauges, failures


def publish_gauges(
    cloudwatch: Any, namespace: str, environment: str, gauges: dict, now: datetime
) -> None:
    """One PutMetricData call (at most 1000 metrics; there are 11 gauges)."""
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "Environment", "Value": environment}],
                "Timestamp": now,
                "Value": float(value),
                "Unit": unit,
            }
            for name, (value, unit) in gauges.items()
        ],
    )


def gauge_handler(event: Any, context: Any) -> dict:
    """Lambda entry point: sample, publish, and fail loudly if any gauge was unreadable."""
    import boto3

    now = datetime.now(UTC)
    config = {
        "state_machine_arns": [a for a in os.environ["STATE_MACHINE_ARNS"].split(",") if a],
        "expected_minutes": float(os.environ["EXPECTED_JOB_MINUTES"]),
        "endpoint_prefix": os.environ["ENDPOINT_PREFIX"],
        "period_seconds": int(os.environ["PERIOD_SECONDS"]),
    }
    gauges, failures = collect_gauges(boto3.client, config, now)
    if gauges:
        publish_gauges(
            boto3.client("cloudwatch"),
            os.environ["NAMESPACE"],
            os.environ["ENVIRONMENT"],
            gauges,
            now,
        )
    values = {name: value for name, (value, _) in gauges.items()}
    print({"gauges": values, "failures": failures})
    if failures:
        raise RuntimeError("; ".join(failures))
    return values


GAUGE_FUNCTIONS = (
    running_execution_minutes,
    provisioned_throughput_in_service,
    endpoints_in_service,
    endpoint_traffic,
    collect_gauges,
    publish_gauges,
    gauge_handler,
)


def gauge_source() -> str:
    """The gauge function's module (``index.py``), built from the functions above."""
    body = "\n\n".join(inspect.getsource(function) for function in GAUGE_FUNCTIONS)
    return (
        '"""Operations gauges of the fine-tuning platform (generated by '
        'stacks/monitoring_stack.py)."""\n\n'
        "import os\nfrom datetime import UTC, datetime, timedelta\nfrom typing import Any\n\n"
        f"{body}"
    )


# -- the stack --------------------------------------------------------------------------------


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
        self._monitoring = monitoring
        self._prefix = settings.resource_prefix
        self._topic = topic
        self._key = key
        self._period = Duration.minutes(monitoring.alarms.period_minutes)
        self.state_machines = list(state_machines)
        # Serving names endpoints "<project>-<env>-<model>" (serving_stack's endpoint rule).
        self.endpoint_name_prefix = endpoint_name_prefix or f"{self._prefix}-"

        self._allow_publishing(topic, topic_key)
        self.gauge_function = self._gauge_function()
        self.functions = [*functions, self.gauge_function]

        self.alarms: list[cloudwatch.Alarm] = []
        self._execution_alarms()
        self._function_alarms()
        self._endpoint_alarms()
        self._overdue_alarm()

        self.dashboard = self._dashboard()
        self.budget = self._budget(monitoring.budget) if monitoring.budget else None

    # -- metrics ------------------------------------------------------------------------

    def gauge(self, name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
        """One of the gauge function's metrics for this environment."""
        return cloudwatch.Metric(
            namespace=GAUGE_NAMESPACE,
            metric_name=name,
            dimensions_map={"Environment": self._prefix},
            statistic=statistic,
            period=self._period,
        )

    def _endpoint_search(self, metric: str, statistic: str, label: str) -> cloudwatch.IMetric:
        """Every endpoint of this environment, live.

        An unquoted dimension value is a partial match on consecutive name tokens, so
        ``llm-finetuning-dev`` finds ``llm-finetuning-dev-<model>``, see
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/search-expression-syntax.html
        """
        return cloudwatch.SearchExpression(
            expression=(
                "SEARCH('{AWS/SageMaker,EndpointName,VariantName} "
                f'MetricName="{metric}" EndpointName={self.endpoint_name_prefix}\', '
                f"'{statistic}', {int(self._period.to_seconds())})"
            ),
            label=label,
            period=self._period,
        )

    # -- alarms -------------------------------------------------------------------------

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
        alarms = self._monitoring.alarms
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self._prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=alarms.evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=treat_missing_data,
        )
        action = cloudwatch_actions.SnsAction(self._topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _execution_alarms(self) -> None:
        for index, machine in enumerate(self.state_machines):
            failed = cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
                using_metrics={
                    "failed": machine.metric_failed(period=self._period, statistic="Sum"),
                    "timedOut": machine.metric_timed_out(period=self._period, statistic="Sum"),
                    "aborted": machine.metric_aborted(period=self._period, statistic="Sum"),
                },
                label="Failed, timed out or aborted executions",
                period=self._period,
            )
            self._alarm(
                f"FailedExecutions{index}",
                name=f"failed-executions-{index}",
                description=f"Fine-tuning executions of {machine.state_machine_arn} failed, "
                "timed out or were aborted",
                metric=failed,
                threshold=self._monitoring.alarms.failed_executions,
            )

    def _function_alarms(self) -> None:
        for index, function in enumerate(self.functions):
            self._alarm(
                f"FunctionErrors{index}",
                name=f"function-errors-{index}",
                description=f"Lambda function {function.function_name} returned errors",
                metric=function.metric_errors(period=self._period, statistic="Sum"),
                threshold=self._monitoring.alarms.function_errors,
            )

    def _endpoint_alarms(self) -> None:
        alarms = self._monitoring.alarms
        self._alarm(
            "Endpoint5xx",
            name="endpoint-5xx",
            description=f"SageMaker endpoints named {self.endpoint_name_prefix}* answered "
            "with 5xx errors",
            metric=self.gauge("EndpointInvocation5XXErrors"),
            threshold=alarms.endpoint_5xx_errors,
        )
        self._alarm(
            "EndpointLatency",
            name="endpoint-latency",
            description=f"Average model latency of an endpoint named {self.endpoint_name_prefix}* "
            f"reached {alarms.endpoint_model_latency_ms:g} ms",
            metric=self.gauge("EndpointModelLatencyMs"),
            threshold=alarms.endpoint_model_latency_ms,
        )

    def _overdue_alarm(self) -> None:
        hours = self._monitoring.alarms.expected_job_hours
        self._alarm(
            "OverdueJobs",
            name="jobs-past-expected-time",
            description=f"A fine-tuning execution has been running for more than {hours:g} h "
            "(the expected job time); or the gauge function stopped reporting",
            metric=self.gauge("OverdueExecutions"),
            threshold=1,
            # No data means the gauge function is not running: that hides overdue jobs.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

    # -- the gauge function ---------------------------------------------------------------

    def _gauge_function(self) -> lambda_.Function:
        interval = Duration.minutes(self._monitoring.gauge_interval_minutes)
        name = f"{self._prefix}-operations-gauges"
        log_group = encrypted_log_group(
            self, "GaugeLogs", key=self._key, retention_days=self._settings.logs.retention_days
        )
        dead_letters = sqs.Queue(
            self,
            "GaugeDeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self._key,
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
        state_machine_arns = [m.state_machine_arn for m in self.state_machines]
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
                resources=[self._key.key_arn],
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
            handler="index.gauge_handler",
            code=lambda_.Code.from_inline(gauge_source()),
            memory_size=256,
            timeout=Duration.minutes(2),
            # Opt-in: a reservation fails deployment in accounts at the default quota.
            reserved_concurrent_executions=self._monitoring.reserved_concurrency,
            role=role.without_policy_updates(),
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letters,
            environment={
                "ENVIRONMENT": self._prefix,
                "NAMESPACE": GAUGE_NAMESPACE,
                "STATE_MACHINE_ARNS": ",".join(state_machine_arns),
                "EXPECTED_JOB_MINUTES": str(self._monitoring.alarms.expected_job_hours * 60),
                "ENDPOINT_PREFIX": self.endpoint_name_prefix,
                "PERIOD_SECONDS": str(int(self._period.to_seconds())),
            },
        )
        function.node.add_dependency(policy)
        # The function's GetAtt on the role already orders them; the DependsOn that CDK adds
        # as well is redundant (cfn-lint W3005).
        function_resource = function.node.default_child
        function_resource.add_override("DependsOn", [policy.node.default_child.logical_id])
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            if self._monitoring.reserved_concurrency is None:
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
            rule_name=f"{self._prefix}-operations-gauges",
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
        self._key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"EventBridgeDeadLetters{self._settings.environment.title().replace('-', '')}",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "ArnEquals": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:events:{self.region}:"
                        f"{self.account}:rule/{self._prefix}-operations-gauges"
                    }
                },
            )
        )
        return function

    # -- notifications --------------------------------------------------------------------

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

    # -- dashboard ------------------------------------------------------------------------

    def _dashboard(self) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{self._prefix}-operations",
            default_interval=Duration.days(7),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {self._prefix}: fine-tuning operations\n"
                f"Executions, functions, endpoints and spend of the `{self._settings.environment}` "
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
                title="Alarms", alarms=self.alarms, width=DASHBOARD_WIDTH, height=4
            )
        )
        return dashboard

    def _execution_widgets(self) -> list[cloudwatch.IWidget]:
        period = self._period
        outcomes, durations = [], []
        for index, machine in enumerate(self.state_machines):
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
                    self.gauge("RunningExecutions"),
                    self.gauge("OverdueExecutions"),
                ],
                right=[self.gauge("OldestRunningExecutionMinutes")],
                width=8,
            ),
        ]

    def _function_widgets(self) -> list[cloudwatch.IWidget]:
        period = self._period
        errors, throttles = [], []
        for function in self.functions:
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
                left=[self.gauge("EndpointsInService")],
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
                left=[self.gauge("ProvisionedThroughputInService")],
                right=[self.gauge("ProvisionedModelUnitsInService")],
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

    # -- budget ---------------------------------------------------------------------------

    def _budget(self, budget: BudgetSettings) -> budgets.CfnBudget:
        settings = self._settings
        filter_expression = None
        if budget.scope == "tags":
            # The tags apply_tags puts on every resource; activate them as cost allocation
            # tags, see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html
            filter_expression = budgets.CfnBudget.ExpressionProperty(
                and_=[
                    budgets.CfnBudget.ExpressionProperty(
                        tags=budgets.CfnBudget.TagValuesProperty(
                            key=key, values=[value], match_options=["EQUALS"]
                        )
                    )
                    for key, value in (
                        ("project", settings.project),
                        ("environment", settings.environment),
                    )
                ]
            )
        subscribers = [
            budgets.CfnBudget.SubscriberProperty(
                subscription_type="SNS", address=self._topic.topic_arn
            ),
            *(
                budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=address)
                for address in budget.email_subscribers
            ),
        ]
        return budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{self._prefix}-monthly",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(
                    amount=budget.monthly_limit_usd, unit="USD"
                ),
                filter_expression=filter_expression,
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type=threshold.type.value,
                        comparison_operator="GREATER_THAN",
                        threshold=threshold.percent,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=subscribers,
                )
                for threshold in budget.thresholds
            ],
        )

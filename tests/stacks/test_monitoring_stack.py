"""The monitoring stack over stand-ins for the orchestration stack, with the nag gate on.

The orchestration stack (state machine, functions, SNS topic) is built by another part of
the project; a small stand-in with the same kinds of resources is enough to check the
dashboard, the alarms, the budget and the grants the monitoring stack adds.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.compliance import add_compliance_gate, suppress
from stacks.monitoring_stack import GAUGE_NAMESPACE, MonitoringStack
from stacks.platform_stacks import platform_environment
from stacks.settings import load_settings
from stacks.settings.monitoring import (
    AlarmSettings,
    BudgetNotificationType,
    BudgetSettings,
    BudgetThreshold,
    MonitoringSettings,
)
from stacks.storage_stack import StorageStack
from tests.support.delivery import as_list, cdk_app, one, resources, statements

pytestmark = pytest.mark.xdist_group("delivery-monitoring")

DEV = load_settings("dev")
PREFIX = DEV.resource_prefix
MONITORING = MonitoringSettings(
    alarms=AlarmSettings(failed_executions=2, endpoint_model_latency_ms=1500, expected_job_hours=6),
    budget=BudgetSettings(
        monthly_limit_usd=750,
        thresholds=(
            BudgetThreshold(percent=80),
            BudgetThreshold(percent=100, type=BudgetNotificationType.FORECASTED),
        ),
        email_subscribers=("finops@example.com",),
    ),
)
STAND_IN_RULES = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaBasicExecutionRole]", "AwsSolutions-L1", "AwsSolutions-SF1",
    "AwsSolutions-SF2", "HIPAA.Security-LambdaConcurrency", "HIPAA.Security-LambdaDLQ",
    "HIPAA.Security-LambdaInsideVPC", "NIST.800.53.R5-LambdaConcurrency",
    "NIST.800.53.R5-LambdaDLQ", "NIST.800.53.R5-LambdaInsideVPC", "Serverless-LambdaDLQ",
    "Serverless-LambdaDefaultMemorySize", "Serverless-LambdaDefaultTimeout",
    "Serverless-LambdaLatestVersion", "Serverless-LambdaTracing",
    "Serverless-StepFunctionStateMachineXray",
)  # fmt: skip


class OrchestrationStandIn(Stack):
    """What monitoring needs from orchestration: a topic, a state machine, functions."""

    def __init__(self, scope: Construct, construct_id: str, *, storage: StorageStack, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        self.topic = sns.Topic(self, "Notifications", master_key=storage.key, enforce_ssl=True)
        self.state_machine = sfn.StateMachine(
            self,
            "FineTuning",
            state_machine_name=f"{PREFIX}-finetuning",
            definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(self, "Start")),
        )
        self.function = lambda_.Function(
            self,
            "StartJob",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
        )
        for rule in STAND_IN_RULES:
            suppress(self, rule, "Test stand-in for the orchestration stack, never deployed.")


@pytest.fixture(scope="module")
def assembly():
    app = cdk_app()
    env = platform_environment(DEV)
    storage = StorageStack(app, "Storage", settings=DEV, env=env)
    orchestration = OrchestrationStandIn(app, "Orchestration", storage=storage, env=env)
    MonitoringStack(
        app,
        "Monitoring",
        settings=DEV,
        monitoring=MONITORING,
        key=storage.key,
        topic=orchestration.topic,
        topic_key=storage.key,
        state_machines=[orchestration.state_machine],
        functions=[orchestration.function],
        env=env,
    )
    # Another environment: no state machine yet, a budget over the whole account.
    prod = load_settings("prod")
    MonitoringStack(
        app,
        "MonitoringAccountBudget",
        settings=prod,
        monitoring=MonitoringSettings(
            budget=BudgetSettings(monthly_limit_usd=5000, scope="account")
        ),
        key=storage.key,
        topic=orchestration.topic,
        endpoint_name_prefix="serving-",
        env=env,
    )
    add_compliance_gate(app)
    return app.synth()  # raises if any nag finding is left unacknowledged


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.get_stack_by_name("Monitoring").template


@pytest.fixture(scope="module")
def dashboard(template) -> dict:
    body = one(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    return json.loads(_render(body))


@pytest.fixture(scope="module")
def alarms(template) -> dict[str, dict]:
    return {
        alarm["Properties"]["AlarmName"]: alarm["Properties"]
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def _render(value) -> str:
    """A CloudFormation string value with its tokens written as ${...}."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return "${" + next(iter(value)) + "}"


def _metrics(widget: dict) -> str:
    return json.dumps(widget["properties"].get("metrics", []))


def test_the_gate_passes(assembly) -> None:
    assert {s.stack_name for s in assembly.stacks} >= {"Monitoring", "MonitoringAccountBudget"}


def test_dashboard_shows_every_signal_the_issue_asks_for(dashboard) -> None:
    widgets = {w["properties"].get("title"): w for w in dashboard["widgets"]}
    executions = _metrics(widgets["Executions started, succeeded and failed"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed",
                   "ExecutionsTimedOut", "ExecutionsAborted"):  # fmt: skip
        assert metric in executions
    durations = _metrics(widgets["Job duration (minutes, finished executions)"])
    assert "ExecutionTime" in durations and "/ 60000" in durations
    assert "RunningExecutions" in _metrics(widgets["Running jobs"])
    assert "OverdueExecutions" in _metrics(widgets["Running jobs"])
    assert '"Errors"' in _metrics(widgets["Function errors"])
    assert '"Throttles"' in _metrics(widgets["Function throttles"])
    searches = {
        "Endpoint invocations": ['MetricName=\\"Invocations\\"'],
        "Endpoint model latency (microseconds)": ['MetricName=\\"ModelLatency\\"', "'p90'"],
        "Endpoint 4xx and 5xx errors": ["Invocation4XXErrors", "Invocation5XXErrors"],
    }
    for title, needles in searches.items():
        shown = _metrics(widgets[title])
        assert f"EndpointName={PREFIX}-" in shown and "SEARCH(" in shown
        for needle in needles:
            assert needle in shown, (title, needle)
    assert "EndpointsInService" in _metrics(widgets["Endpoints in service"])
    throughput = _metrics(widgets["Provisioned throughput in service"])
    assert "ProvisionedThroughputInService" in throughput
    assert "ProvisionedModelUnitsInService" in throughput


def test_estimated_spend_comes_from_billing_metrics_in_us_east_1(dashboard) -> None:
    widgets = {w["properties"].get("title"): w for w in dashboard["widgets"]}
    total = widgets["Estimated charges this month (account, USD)"]["properties"]["metrics"]
    by_service = _metrics(widgets["Estimated charges by service (USD)"])
    assert total[0][:4] == ["AWS/Billing", "EstimatedCharges", "Currency", "USD"]
    assert total[0][-1]["region"] == "us-east-1"
    assert "AmazonSageMaker" in by_service and "AmazonBedrock" in by_service


def test_dashboard_lists_every_alarm(dashboard, alarms) -> None:
    status = next(w for w in dashboard["widgets"] if w["type"] == "alarm")
    assert len(status["properties"]["alarms"]) == len(alarms)


def test_alarms_cover_failures_errors_endpoints_and_overdue_jobs(alarms) -> None:
    assert set(alarms) == {
        f"{PREFIX}-failed-executions-0",
        f"{PREFIX}-function-errors-0",
        f"{PREFIX}-function-errors-1",
        f"{PREFIX}-endpoint-5xx",
        f"{PREFIX}-endpoint-latency",
        f"{PREFIX}-jobs-past-expected-time",
    }


def test_every_alarm_notifies_the_topic_when_raised_and_cleared(alarms) -> None:
    for name, alarm in alarms.items():
        assert len(alarm["AlarmActions"]) == 1, name
        assert alarm["AlarmActions"] == alarm["OKActions"], name
        assert "Fn::ImportValue" in alarm["AlarmActions"][0], name  # the stand-in's topic


def test_thresholds_come_from_settings(alarms) -> None:
    failed = alarms[f"{PREFIX}-failed-executions-0"]
    assert failed["Threshold"] == 2
    expression = next(m["Expression"] for m in failed["Metrics"] if "Expression" in m)
    assert expression == "FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)"
    assert alarms[f"{PREFIX}-endpoint-latency"]["Threshold"] == 1500
    assert alarms[f"{PREFIX}-endpoint-latency"]["MetricName"] == "EndpointModelLatencyMs"
    assert alarms[f"{PREFIX}-endpoint-5xx"]["MetricName"] == "EndpointInvocation5XXErrors"
    overdue = alarms[f"{PREFIX}-jobs-past-expected-time"]
    assert overdue["Namespace"] == GAUGE_NAMESPACE
    assert overdue["Dimensions"] == [{"Name": "Environment", "Value": PREFIX}]
    assert overdue["TreatMissingData"] == "breaching"
    assert "more than 6 h" in overdue["AlarmDescription"]


def test_budget_is_monthly_tag_filtered_and_notifies_topic_and_email(template) -> None:
    budget = one(template, "AWS::Budgets::Budget")["Properties"]
    data = budget["Budget"]
    assert data["BudgetName"] == f"{PREFIX}-monthly"
    assert (data["BudgetType"], data["TimeUnit"]) == ("COST", "MONTHLY")
    assert data["BudgetLimit"] == {"Amount": 750, "Unit": "USD"}
    assert data["FilterExpression"] == {
        "And": [
            {"Tags": {"Key": "project", "MatchOptions": ["EQUALS"], "Values": ["llm-finetuning"]}},
            {"Tags": {"Key": "environment", "MatchOptions": ["EQUALS"], "Values": ["dev"]}},
        ]
    }
    notifications = budget["NotificationsWithSubscribers"]
    assert [(n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
            for n in notifications] == [("ACTUAL", 80), ("FORECASTED", 100)]  # fmt: skip
    for notification in notifications:
        assert notification["Notification"]["ThresholdType"] == "PERCENTAGE"
        kinds = [s["SubscriptionType"] for s in notification["Subscribers"]]
        assert kinds == ["SNS", "EMAIL"]
        assert notification["Subscribers"][1]["Address"] == "finops@example.com"


def test_account_scoped_budget_has_no_filter(assembly) -> None:
    template = assembly.get_stack_by_name("MonitoringAccountBudget").template
    data = one(template, "AWS::Budgets::Budget")["Properties"]["Budget"]
    assert "FilterExpression" not in data
    assert data["BudgetLimit"]["Amount"] == 5000


def test_budgets_and_alarms_may_publish_to_the_encrypted_topic(assembly) -> None:
    orchestration = assembly.get_stack_by_name("Orchestration").template
    policy = one(orchestration, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    mine = PREFIX.replace("-", "")
    by_service = {
        s["Principal"]["Service"]: s for s in policy["Statement"] if mine in s.get("Sid", "")
    }
    budgets, alarms = by_service["budgets.amazonaws.com"], by_service["cloudwatch.amazonaws.com"]
    assert budgets["Action"] == alarms["Action"] == "sns:Publish"
    assert "budgets::" in _render(budgets["Condition"]["ArnLike"]["aws:SourceArn"])
    alarm_sources = _render(alarms["Condition"]["ArnLike"]["aws:SourceArn"])
    assert alarm_sources.endswith(f":alarm:{PREFIX}-*")
    for statement in (budgets, alarms):
        assert statement["Condition"]["StringEquals"] == {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"}
        }

    storage = assembly.get_stack_by_name("Storage").template
    key_policy = one(storage, "AWS::KMS::Key")["Properties"]["KeyPolicy"]["Statement"]
    granted = {s["Principal"]["Service"] for s in key_policy if mine in s.get("Sid", "").lower()}
    assert granted == {"budgets.amazonaws.com", "cloudwatch.amazonaws.com"}
    dead_letters = next(s for s in key_policy if s.get("Sid") == "EventBridgeDeadLettersDev")
    assert _render(dead_letters["Condition"]["ArnEquals"]["aws:SourceArn"]).endswith(
        f":rule/{PREFIX}-operations-gauges"
    )


def test_gauge_function_is_small_traced_and_arm(template) -> None:
    function = one(template, "AWS::Lambda::Function")["Properties"]
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    # Opt-in (monitoring.reserved_concurrency): a reservation fails low-quota accounts.
    assert "ReservedConcurrentExecutions" not in function
    # The code is lambda/operations_gauges, bundled like every other function.
    assert function["Handler"] == "index.handler"
    assert set(function["Code"]) == {"S3Bucket", "S3Key"}
    assert "TargetArn" in function["DeadLetterConfig"]
    variables = function["Environment"]["Variables"]
    assert variables["EXPECTED_JOB_MINUTES"] == "360.0"
    assert variables["ENDPOINT_NAME_PREFIX"] == f"{PREFIX}-"
    assert variables["METRICS_NAMESPACE"] == GAUGE_NAMESPACE
    assert "Fn::ImportValue" in variables["STATE_MACHINE_ARNS"]


def test_gauge_schedule_retries_into_the_encrypted_dead_letter_queue(template) -> None:
    rule = one(template, "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["Name"] == f"{PREFIX}-operations-gauges"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert "Arn" in target["DeadLetterConfig"]
    queue = one(template, "AWS::SQS::Queue")["Properties"]
    assert "KmsMasterKeyId" in queue


def test_gauge_role_has_one_managed_policy_and_no_wildcard_action(template) -> None:
    role = one(template, "AWS::IAM::Role")["Properties"]
    assert "Policies" not in role
    assert not resources(template, "AWS::IAM::Policy")
    granted = list(statements(template))
    assert all("*" not in str(s["Action"]).split(":")[-1:] for s in granted)
    put = next(s for s in granted if s["Action"] == "cloudwatch:PutMetricData")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": GAUGE_NAMESPACE}}
    listing = next(s for s in granted if s["Action"] == "states:ListExecutions")
    assert "Fn::ImportValue" in json.dumps(listing["Resource"])


# The logical ids the gauge's resources had as the monitoring stack's own children, before
# the monitoring split and before the function moved into PlatformFunction: the function is
# named (a new id would fail to replace it), the log group and queue hold data.
GAUGE_LOGICAL_IDS = {
    "GaugeFunction20741EDB": "AWS::Lambda::Function",
    "GaugeLogsA3010CAE": "AWS::Logs::LogGroup",
    "GaugeRoleC908D67B": "AWS::IAM::Role",
    "GaugePolicy3187E233": "AWS::IAM::ManagedPolicy",
    "GaugeDeadLetters5F3DC45F": "AWS::SQS::Queue",
    "GaugeDeadLettersPolicy83D51955": "AWS::SQS::QueuePolicy",
    "GaugeSchedule59456E90": "AWS::Events::Rule",
}


def test_gauge_resources_keep_their_logical_ids(template) -> None:
    found = {
        logical_id: template["Resources"].get(logical_id, {}).get("Type")
        for logical_id in GAUGE_LOGICAL_IDS
    }
    assert found == GAUGE_LOGICAL_IDS


def test_gauge_function_is_a_platform_function_without_powertools(template) -> None:
    function = template["Resources"]["GaugeFunction20741EDB"]
    role = template["Resources"]["GaugeRoleC908D67B"]["Properties"]
    assert role["Description"] == "Runs the operations_gauges monitoring function"
    properties = function["Properties"]
    assert properties["FunctionName"] == f"{PREFIX}-operations-gauges"
    assert properties["MemorySize"] == 256
    assert properties["Timeout"] == 120
    assert properties["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": {"Ref": "GaugeLogsA3010CAE"},
    }
    assert "Layers" not in properties
    # Plain boto3: no Powertools variables.
    assert not [name for name in properties["Environment"]["Variables"] if "POWERTOOLS" in name]
    # Created after its policy only (the role is implied by the GetAtt).
    assert function["DependsOn"] == ["GaugePolicy3187E233"]
    logs = template["Resources"]["GaugeLogsA3010CAE"]
    assert logs["Properties"]["RetentionInDays"] == DEV.logs.retention_days
    assert "KmsKeyId" in logs["Properties"]
    # The generated name it had: a named log group would be a new one.
    assert "LogGroupName" not in logs["Properties"]
    assert logs["DeletionPolicy"] == "Retain"


def test_gauge_policy_is_the_platform_functions_plus_its_reads(template) -> None:
    policy = template["Resources"]["GaugePolicy3187E233"]["Properties"]
    assert policy["Roles"] == [{"Ref": "GaugeRoleC908D67B"}]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    actions = {sid: sorted(as_list(s["Action"])) for sid, s in by_sid.items()}
    assert actions == {
        "WriteOwnLogs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "WriteTraces": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "SendToDeadLetterQueue": ["sqs:SendMessage"],
        "EncryptDeadLetters": ["kms:Decrypt", "kms:GenerateDataKey"],
        "PublishGauges": ["cloudwatch:PutMetricData"],
        "ReadEndpointTraffic": ["cloudwatch:GetMetricData"],
        "ListInServiceCapacity": [
            "bedrock:ListProvisionedModelThroughputs",
            "sagemaker:ListEndpoints",
        ],
        "ListRunningExecutions": ["states:ListExecutions"],
    }
    # The log group's Arn attribute ends in ":*" and covers its streams.
    assert by_sid["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": ["GaugeLogsA3010CAE", "Arn"]}
    assert by_sid["SendToDeadLetterQueue"]["Resource"] == {
        "Fn::GetAtt": ["GaugeDeadLetters5F3DC45F", "Arn"]
    }
    # The function encrypts nothing itself: the key only through SQS, for its dead letters.
    assert by_sid["EncryptDeadLetters"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"sqs.{DEV.region}.amazonaws.com"}
    }


def test_without_state_machines_the_environment_still_gets_endpoint_and_gauge_alarms(
    assembly,
) -> None:
    template = assembly.get_stack_by_name("MonitoringAccountBudget").template
    names = {
        a["Properties"]["AlarmName"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    prod = "llm-finetuning-prod"
    assert names == {
        f"{prod}-function-errors-0",
        f"{prod}-endpoint-5xx",
        f"{prod}-endpoint-latency",
        f"{prod}-jobs-past-expected-time",
    }
    function = one(template, "AWS::Lambda::Function")["Properties"]
    assert function["Environment"]["Variables"]["ENDPOINT_NAME_PREFIX"] == "serving-"
    assert function["Environment"]["Variables"]["STATE_MACHINE_ARNS"] == ""

"""The operations gauge function (``lambda/operations_gauges/index.py``, imported directly)
against moto (Step Functions, SageMaker, CloudWatch) and a ``Stubber`` for Bedrock
provisioned throughput, which moto does not implement; the stub validates every request
against the real Bedrock service model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from stacks.constructs.operations_gauges import GAUGE_FOLDER, GAUGE_NAMESPACE
from stacks.lambda_bundling import LAMBDA_ROOT
from tests.support.lambda_handlers import load_handler

gauges_module = load_handler(GAUGE_FOLDER)
collect_gauges = gauges_module.collect_gauges
endpoint_traffic = gauges_module.endpoint_traffic
endpoints_in_service = gauges_module.endpoints_in_service
provisioned_throughput_in_service = gauges_module.provisioned_throughput_in_service
running_execution_minutes = gauges_module.running_execution_minutes

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/test"
PREFIX = "llm-finetuning-dev"


@pytest.fixture
def aws(fake_aws_credentials) -> Iterator[None]:
    with mock_aws():
        yield


def state_machine_with_running_executions(count: int) -> str:
    states = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
    arn = states.create_state_machine(
        name=f"{PREFIX}-finetuning", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    for _ in range(count):
        states.start_execution(stateMachineArn=arn)
    return arn


def endpoints(*names: str) -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(
        ModelName="model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    for name in names:
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="config")


def endpoint_metric(name: str, metric: str, value: float, at: datetime) -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def stubbed_bedrock(*pages: list[dict], error: str | None = None) -> Any:
    bedrock = boto3.client("bedrock", region_name=REGION)
    stubber = Stubber(bedrock)
    if error:
        stubber.add_client_error("list_provisioned_model_throughputs", service_error_code=error)
    for index, summaries in enumerate(pages):
        request = {"statusEquals": "InService"}
        if index:
            request["nextToken"] = f"page-{index}"
        response: dict[str, Any] = {"provisionedModelSummaries": summaries}
        if index + 1 < len(pages):
            response["nextToken"] = f"page-{index + 1}"
        stubber.add_response("list_provisioned_model_throughputs", response, request)
    stubber.activate()
    return bedrock


def throughput(name: str, units: int) -> dict:
    arn = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/{name}"
    model = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/{name}"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "provisionedModelName": name,
        "provisionedModelArn": arn,
        "modelArn": model,
        "desiredModelArn": model,
        "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-micro-v1:0",
        "modelUnits": units,
        "desiredModelUnits": units,
        "status": "InService",
        "creationTime": now,
        "lastModifiedTime": now,
    }


def client_factory(bedrock: Any):
    def client(service: str) -> Any:
        return bedrock if service == "bedrock" else boto3.client(service, region_name=REGION)

    return client


def test_running_executions_are_aged_from_their_start(aws) -> None:
    arn = state_machine_with_running_executions(2)
    later = datetime.now(UTC) + timedelta(hours=7)
    ages = running_execution_minutes(boto3.client("stepfunctions", region_name=REGION), arn, later)
    assert len(ages) == 2
    assert all(419 < age < 421 for age in ages)


def test_only_endpoints_named_with_the_prefix_count(aws) -> None:
    endpoints(f"{PREFIX}-classifier", f"{PREFIX}-extractor", f"other-{PREFIX}-copy")
    names = endpoints_in_service(boto3.client("sagemaker", region_name=REGION), PREFIX)
    assert sorted(names) == [f"{PREFIX}-classifier", f"{PREFIX}-extractor"]


def test_provisioned_throughput_is_counted_across_pages(aws) -> None:
    bedrock = stubbed_bedrock([throughput("a", 1), throughput("b", 2)], [throughput("c", 4)])
    assert provisioned_throughput_in_service(bedrock) == (3, 7)


def test_endpoint_traffic_sums_counts_and_keeps_the_worst_latency(aws) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    at = end - timedelta(minutes=2)
    for name, errors, latency_us in ((f"{PREFIX}-a", 3, 800_000), (f"{PREFIX}-b", 2, 2_400_000)):
        endpoint_metric(name, "Invocations", 100, at)
        endpoint_metric(name, "Invocation5XXErrors", errors, at)
        endpoint_metric(name, "ModelLatency", latency_us, at)
    traffic = endpoint_traffic(
        boto3.client("cloudwatch", region_name=REGION),
        [f"{PREFIX}-a", f"{PREFIX}-b"],
        end - timedelta(minutes=5),
        end,
    )
    assert traffic == {
        "Invocations": 200.0,
        "Invocation4XXErrors": 0.0,
        "Invocation5XXErrors": 5.0,
        "ModelLatencyMs": 2400.0,
    }


def test_collect_counts_overdue_jobs_and_capacity(aws) -> None:
    arn = state_machine_with_running_executions(3)
    endpoints(f"{PREFIX}-classifier")
    config = {
        "state_machine_arns": [arn],
        "expected_minutes": 360.0,
        "endpoint_prefix": PREFIX,
        "period_seconds": 300,
    }
    now = datetime.now(UTC) + timedelta(hours=7)
    gauges, failures = collect_gauges(
        client_factory(stubbed_bedrock([throughput("a", 2)])), config, now
    )
    assert failures == []
    assert gauges["RunningExecutions"] == (3, "Count")
    assert gauges["OverdueExecutions"] == (3, "Count")
    assert 419 < gauges["OldestRunningExecutionMinutes"][0] < 421
    assert gauges["ProvisionedThroughputInService"] == (1, "Count")
    assert gauges["ProvisionedModelUnitsInService"] == (2, "Count")
    assert gauges["EndpointsInService"] == (1, "Count")
    assert gauges["EndpointModelLatencyMs"] == (0.0, "Milliseconds")

    not_yet = collect_gauges(
        client_factory(stubbed_bedrock([])), config, datetime.now(UTC) + timedelta(hours=1)
    )[0]
    assert not_yet["OverdueExecutions"] == (0, "Count")


def test_one_unreadable_gauge_does_not_hide_the_others(aws) -> None:
    config = {
        "state_machine_arns": [],
        "expected_minutes": 60.0,
        "endpoint_prefix": PREFIX,
        "period_seconds": 300,
    }
    gauges, failures = collect_gauges(
        client_factory(stubbed_bedrock(error="AccessDeniedException")), config, datetime.now(UTC)
    )
    assert len(failures) == 1 and failures[0].startswith("provisioned throughput:")
    assert "AccessDeniedException" in failures[0]
    assert gauges["RunningExecutions"] == (0, "Count")
    assert gauges["EndpointsInService"] == (0, "Count")
    assert "ProvisionedThroughputInService" not in gauges


def test_the_shipped_handler_publishes_every_gauge(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = state_machine_with_running_executions(1)
    index = load_handler(GAUGE_FOLDER)  # the Lambda's index.py
    bedrock = stubbed_bedrock([throughput("a", 1)])
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kw: bedrock if service == "bedrock" else real_client(service, **kw),
    )
    for name, value in {
        "PLATFORM_RESOURCE_PREFIX": PREFIX,
        "METRICS_NAMESPACE": GAUGE_NAMESPACE,
        "STATE_MACHINE_ARNS": arn,
        "EXPECTED_JOB_MINUTES": "720.0",
        "ENDPOINT_NAME_PREFIX": PREFIX,
        "GAUGE_PERIOD_SECONDS": "300",
    }.items():
        monkeypatch.setenv(name, value)

    values = index.handler({}, None)

    assert values["RunningExecutions"] == 1 and values["OverdueExecutions"] == 0
    published = boto3.client("cloudwatch", region_name=REGION).list_metrics(
        Namespace=GAUGE_NAMESPACE
    )["Metrics"]
    assert {m["MetricName"] for m in published} == set(values)
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": PREFIX}] for m in published)


def test_the_shipped_handler_fails_loudly_after_publishing_what_it_could(
    aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = load_handler(GAUGE_FOLDER)
    bedrock = stubbed_bedrock(error="ThrottlingException")
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, **kw: bedrock if service == "bedrock" else real_client(service, **kw),
    )
    for name, value in {
        "PLATFORM_RESOURCE_PREFIX": PREFIX,
        "METRICS_NAMESPACE": GAUGE_NAMESPACE,
        "STATE_MACHINE_ARNS": "",
        "EXPECTED_JOB_MINUTES": "720.0",
        "ENDPOINT_NAME_PREFIX": PREFIX,
        "GAUGE_PERIOD_SECONDS": "300",
    }.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(RuntimeError, match=r"provisioned throughput: .*ThrottlingException"):
        index.handler({}, None)
    published = boto3.client("cloudwatch", region_name=REGION).list_metrics(
        Namespace=GAUGE_NAMESPACE
    )["Metrics"]
    assert "RunningExecutions" in {m["MetricName"] for m in published}


def test_the_shipped_source_imports_only_what_the_lambda_runtime_has() -> None:
    source = (LAMBDA_ROOT / GAUGE_FOLDER / "index.py").read_text(encoding="utf-8")
    imports = {
        line.strip()
        for line in source.splitlines()
        if line.strip().startswith(("import ", "from "))
    }
    assert imports == {
        "import os",
        "from datetime import UTC, datetime, timedelta",
        "from typing import Any",
        "import boto3",
    }


def test_the_handler_reads_the_variables_the_construct_sets(dev) -> None:
    """One environment contract: the names the gauge function reads (as literals, it ships no
    library code) are exactly those the synthesized function is given, all from ``Var``."""
    import re

    from finetuning.orchestration.environment import Var

    source = (LAMBDA_ROOT / GAUGE_FOLDER / "index.py").read_text()
    read = set(re.findall(r'os\.environ\["([A-Z_]+)"\]', source))
    functions = [
        resource["Properties"]
        for _, _, resource in dev.resources("AWS::Lambda::Function")
        if "GAUGE_PERIOD_SECONDS"
        in resource["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(functions) == 1
    given = set(functions[0]["Environment"]["Variables"])
    assert read == given
    assert read <= {value for name, value in vars(Var).items() if name.isupper()}

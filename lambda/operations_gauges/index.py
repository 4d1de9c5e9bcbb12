"""Operations gauges of the fine-tuning platform: what CloudWatch does not measure itself.

Runs on a schedule (``stacks/constructs/operations_gauges.py``) and publishes, per
environment, running and overdue executions, Bedrock provisioned throughput and SageMaker
endpoints in service, and those endpoints' summed traffic. boto3 and the standard library
only: the function ships this file alone.

Environment (the platform's names, ``Var`` in ``finetuning/orchestration/environment.py``;
this function ships no library code, so it reads them as literals):
``PLATFORM_RESOURCE_PREFIX`` (the metric dimension), ``METRICS_NAMESPACE``,
``STATE_MACHINE_ARNS`` (comma-separated), ``EXPECTED_JOB_MINUTES``, ``ENDPOINT_NAME_PREFIX``,
``GAUGE_PERIOD_SECONDS``.
"""

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3


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


def handler(event: Any, context: Any) -> dict:
    """Lambda entry point: sample, publish, and fail loudly if any gauge was unreadable."""
    now = datetime.now(UTC)
    config = {
        "state_machine_arns": [a for a in os.environ["STATE_MACHINE_ARNS"].split(",") if a],
        "expected_minutes": float(os.environ["EXPECTED_JOB_MINUTES"]),
        "endpoint_prefix": os.environ["ENDPOINT_NAME_PREFIX"],
        "period_seconds": int(os.environ["GAUGE_PERIOD_SECONDS"]),
    }
    gauges, failures = collect_gauges(boto3.client, config, now)
    if gauges:
        publish_gauges(
            boto3.client("cloudwatch"),
            os.environ["METRICS_NAMESPACE"],
            os.environ["PLATFORM_RESOURCE_PREFIX"],
            gauges,
            now,
        )
    values = {name: value for name, (value, _) in gauges.items()}
    print({"gauges": values, "failures": failures})
    if failures:
        raise RuntimeError("; ".join(failures))
    return values

"""Starting and watching the evaluation's SageMaker Processing job.

SageMaker is a botocore Stubber (every request is validated against the service model; the
stub answers describe/create as SageMaker would); S3 is moto, where the job's request is
written and its outcome read.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from finetuning.evaluation.request import StepError
from finetuning.orchestration import names
from finetuning.orchestration.environment import Environment, Var
from finetuning.orchestration.errors import (
    ConfigurationError,
    EvaluationJobFailedError,
    RetryableServiceError,
)
from finetuning.orchestration.evaluation_job import (
    config_key,
    ensure_evaluation_job,
    processing_job_name,
    processing_job_request,
)
from tests.support.platform_fakes import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    EVALUATION_BUCKET,
    KEY_ARN,
    PREFIX,
    SAGEMAKER_ROLE,
    Platform,
    client,
)

JOB_ID = "open-model-0123456789"
NAME = f"{JOB_ID}-eval"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cdk-hnb659fds-container-assets:abc123"
MODEL = f"s3://{ARTIFACTS_BUCKET}/models/final/{JOB_ID}/output/model.tar.gz"
METRICS = f"s3://{ARTIFACTS_BUCKET}/models/final/{JOB_ID}/output/output.tar.gz"
BASE = f"s3://{ARTIFACTS_BUCKET}/models/base/smollm2/"
TEST_SET = f"s3://{DATA_BUCKET}/evaluation/chat/test.jsonl"
REPORTS = f"s3://{EVALUATION_BUCKET}/evaluation/reports/{JOB_ID}/"
CONFIG_URI = f"{REPORTS}evaluation-request.json"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{NAME}"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # ProcessingJobName


def make_plan(**processing: Any) -> dict[str, Any]:
    return {
        "route": "processing",
        "request": {
            "job_name": JOB_ID,
            "test_set_uri": TEST_SET,
            "quality_gate": {"min": {"token_f1": 0.5}},
            "inference": {"max_tokens": 64},
            "task": "text",
        },
        "processing": {
            "model_data_url": MODEL,
            "base_model_uri": None,
            "training_metrics_uri": METRICS,
            "instance_type": "ml.g5.2xlarge",
            "volume_size_gb": 50,
            "max_runtime_seconds": 7200,
            **processing,
        },
        "registration": {"model_package_group": "open-model"},
    }


@pytest.fixture
def env(platform: Platform) -> Environment:
    return Environment({**platform.environment, Var.EVALUATION_IMAGE_URI: IMAGE})


@pytest.fixture
def sagemaker() -> Any:
    return client("sagemaker")


def described(status: str, **extra: Any) -> dict[str, Any]:
    """A DescribeProcessingJob answer (the required members and what the code reads)."""
    return {
        "ProcessingJobName": NAME,
        "ProcessingJobArn": ARN,
        "ProcessingJobStatus": status,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.g5.2xlarge",
                "VolumeSizeInGB": 50,
            }
        },
        "AppSpecification": {"ImageUri": IMAGE},
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": REPORTS,
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": KEY_ARN,
        },
        **extra,
    }


def not_found(stubber: Stubber) -> None:
    # What SageMaker answers for a name without a job.
    stubber.add_client_error(
        "describe_processing_job",
        service_error_code="ValidationException",
        service_message=f"Could not find requested job with name {NAME}",
        expected_params={"ProcessingJobName": NAME},
    )


def stored_config(platform: Platform) -> dict[str, Any]:
    body = platform.s3.get_object(Bucket=EVALUATION_BUCKET, Key=config_key(JOB_ID))["Body"]
    return json.loads(body.read())


# --------------------------------------------------------------------------------------------
# The request


def test_request_is_valid_for_the_service_model(env: Environment, sagemaker: Any) -> None:
    plan = make_plan(base_model_uri=BASE)
    request = processing_job_request(JOB_ID, plan, env=env, config_uri=CONFIG_URI)
    with Stubber(sagemaker) as stub:
        stub.add_response("create_processing_job", {"ProcessingJobArn": ARN}, request)
        sagemaker.create_processing_job(**request)  # the stub validates the shape
        stub.assert_no_pending_responses()

    assert request["ProcessingJobName"] == NAME
    assert request["RoleArn"] == SAGEMAKER_ROLE
    assert request["AppSpecification"] == {"ImageUri": IMAGE}
    channels = {
        i["InputName"]: (i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"])
        for i in request["ProcessingInputs"]
    }
    assert channels == {
        "config": (CONFIG_URI, "/opt/ml/processing/input/config"),
        "model": (MODEL, "/opt/ml/processing/input/model"),
        "test": (TEST_SET, "/opt/ml/processing/input/test"),
        "base": (BASE, "/opt/ml/processing/input/base"),
        "training-metrics": (METRICS, "/opt/ml/processing/input/training-metrics"),
    }
    assert {i["S3Input"]["S3InputMode"] for i in request["ProcessingInputs"]} == {"File"}
    assert request["ProcessingOutputConfig"] == {
        "Outputs": [
            {
                "OutputName": "report",
                "S3Output": {
                    "S3Uri": REPORTS,
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ],
        "KmsKeyId": KEY_ARN,
    }
    # g5 instances have NVMe instance storage: SageMaker refuses a VolumeKmsKeyId for them
    assert request["ProcessingResources"] == {
        "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.g5.2xlarge", "VolumeSizeInGB": 50}
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert request["NetworkConfig"] == {
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": True,
        "VpcConfig": {"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-0a", "subnet-0b"]},
    }
    assert {t["Key"]: t["Value"] for t in request["Tags"]} == {
        "finetuning:platform": PREFIX,
        "finetuning:job-id": JOB_ID,
    }


def test_request_defaults_optional_channels_and_ebs_volume_key(env: Environment) -> None:
    plan = make_plan(training_metrics_uri=None, instance_type="ml.m5.xlarge")
    for name in ("volume_size_gb", "max_runtime_seconds"):
        del plan["processing"][name]
    request = processing_job_request(JOB_ID, plan, env=env, config_uri=CONFIG_URI)
    assert [i["InputName"] for i in request["ProcessingInputs"]] == ["config", "model", "test"]
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.xlarge",
        "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": KEY_ARN,  # an EBS volume: encrypted with the platform key
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["processing"].pop("model_data_url"), "model_data_url"),
        (lambda p: p["processing"].update(model_data_url="/local/model"), "model_data_url"),
        (lambda p: p["processing"].update(max_runtime_seconds=777601), "1 to 777600"),
        (lambda p: p["processing"].update(volume_size_gb=0), "1 to 16384"),
        (lambda p: p["request"].update(test_set_uri="test.jsonl"), "test_set_uri"),
        (lambda p: p.pop("processing"), "plan.processing"),
    ],
    ids=["no-model", "model-not-s3", "runtime", "volume", "test-set", "no-section"],
)
def test_request_refuses_a_bad_plan(env: Environment, change, expected: str) -> None:
    plan = make_plan()
    change(plan)
    with pytest.raises(StepError, match=expected):
        processing_job_request(JOB_ID, plan, env=env, config_uri=CONFIG_URI)


# --------------------------------------------------------------------------------------------
# ensure_evaluation_job


def test_starts_the_job_with_its_request_in_s3(
    env: Environment, sagemaker: Any, platform: Platform
) -> None:
    plan = make_plan()
    with Stubber(sagemaker) as stub:
        not_found(stub)
        stub.add_response(
            "create_processing_job",
            {"ProcessingJobArn": ARN},
            processing_job_request(JOB_ID, plan, env=env, config_uri=CONFIG_URI),
        )
        result = ensure_evaluation_job(JOB_ID, plan, env=env, sagemaker=sagemaker, s3=platform.s3)
        stub.assert_no_pending_responses()
    assert result == {"processing_job_name": NAME, "status": "InProgress", "done": False}

    config = stored_config(platform)
    assert config == {
        **plan["request"],
        "model_id": MODEL,  # the report names the model by its archive
        "output_uri": REPORTS,
    }
    head = platform.s3.head_object(Bucket=EVALUATION_BUCKET, Key=config_key(JOB_ID))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KEY_ARN


def test_an_existing_job_is_not_started_again(
    env: Environment, sagemaker: Any, platform: Platform
) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "describe_processing_job", described("InProgress"), {"ProcessingJobName": NAME}
        )
        result = ensure_evaluation_job(
            JOB_ID, make_plan(), env=env, sagemaker=sagemaker, s3=platform.s3
        )
        stub.assert_no_pending_responses()  # no create_processing_job
    assert result == {"processing_job_name": NAME, "status": "InProgress", "done": False}
    # the inputs of a job that exists are never written again
    listed = platform.s3.list_objects_v2(Bucket=EVALUATION_BUCKET)
    assert listed.get("KeyCount", 0) == 0


def test_a_create_that_lost_the_race_describes_the_winner(
    env: Environment, sagemaker: Any, platform: Platform
) -> None:
    plan = make_plan()
    with Stubber(sagemaker) as stub:
        not_found(stub)
        stub.add_client_error(
            "create_processing_job",
            service_error_code="ResourceInUse",
            service_message=f"Processing job {NAME} already exists",
            expected_params=processing_job_request(JOB_ID, plan, env=env, config_uri=CONFIG_URI),
        )
        stub.add_response("describe_processing_job", described("Stopping"))
        result = ensure_evaluation_job(JOB_ID, plan, env=env, sagemaker=sagemaker, s3=platform.s3)
        stub.assert_no_pending_responses()
    assert result == {"processing_job_name": NAME, "status": "Stopping", "done": False}


def test_completed_returns_the_outcome_from_s3(
    env: Environment, sagemaker: Any, platform: Platform
) -> None:
    outcome = {
        "job_name": JOB_ID,
        "evaluation_results_uri": f"{REPORTS}results.json",
        "report_uri": f"{REPORTS}report.html",
        "report_markdown_uri": f"{REPORTS}report.md",
        "quality_gate_passed": False,
        "quality_gate": {"passed": False, "checks": []},
        "metrics": {"token_f1": 0.31},
        "improvement": None,
        "reason": f"quality gate failed: token_f1 0.31 < 0.5; report: {REPORTS}report.html",
    }
    platform.put(f"{REPORTS}outcome.json", json.dumps(outcome))
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_processing_job", described("Completed"))
        result = ensure_evaluation_job(
            JOB_ID, make_plan(), env=env, sagemaker=sagemaker, s3=platform.s3
        )
    # a failed gate is a completed job: the verdict, not an error
    assert result == {**outcome, "processing_job_name": NAME, "status": "Completed", "done": True}


def test_completed_without_an_outcome_is_a_failure(
    env: Environment, sagemaker: Any, platform: Platform
) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_processing_job", described("Completed"))
        with pytest.raises(EvaluationJobFailedError, match=f"{NAME} completed but wrote no"):
            ensure_evaluation_job(JOB_ID, make_plan(), env=env, sagemaker=sagemaker, s3=platform.s3)


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        (
            "Failed",
            {
                "FailureReason": "AlgorithmError: See job logs for more information",
                "ExitMessage": "error: test set: line 3: not valid JSON",
            },
            f"SageMaker Processing job {NAME} Failed: AlgorithmError: See job logs for more "
            "information; error: test set: line 3: not valid JSON",
        ),
        (
            "Stopped",
            {},
            f"SageMaker Processing job {NAME} Stopped: stopped before it finished",
        ),
    ],
)
def test_failed_or_stopped_raises_with_the_reason(
    env: Environment, sagemaker: Any, platform: Platform, status: str, extra: dict, expected: str
) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_processing_job", described(status, **extra))
        with pytest.raises(EvaluationJobFailedError) as caught:
            ensure_evaluation_job(JOB_ID, make_plan(), env=env, sagemaker=sagemaker, s3=platform.s3)
    assert str(caught.value) == expected


def test_throttling_is_retryable(env: Environment, sagemaker: Any, platform: Platform) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_client_error(
            "describe_processing_job",
            service_error_code="ThrottlingException",
            http_status_code=400,
        )
        with pytest.raises(RetryableServiceError, match="describing SageMaker Processing job"):
            ensure_evaluation_job(JOB_ID, make_plan(), env=env, sagemaker=sagemaker, s3=platform.s3)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda p: p["request"].update(quality_gate={"min_improvement_over_base": {"x": 0.1}}),
            "min_improvement_over_base needs base_model_id",
        ),
        (
            lambda p: p["request"].update(base_model_id="HuggingFaceTB/SmolLM2-135M-Instruct"),
            "base_model_uri must say where its weights are",
        ),
        (lambda p: p["request"].update(task="poetry"), "task: expected one of"),
        (lambda p: p["request"].pop("job_name"), "job_name"),
        (lambda p: p["processing"].update(volume_size_gb=0), "volume_size_gb"),
    ],
    ids=["gate-needs-base", "base-without-weights", "bad-task", "no-job-name", "volume"],
)
def test_a_request_that_cannot_run_fails_before_starting_anything(
    env: Environment, sagemaker: Any, platform: Platform, change, expected: str
) -> None:
    plan = make_plan()
    change(plan)
    with Stubber(sagemaker) as stub:
        not_found(stub)
        with pytest.raises(StepError, match=expected):
            ensure_evaluation_job(JOB_ID, plan, env=env, sagemaker=sagemaker, s3=platform.s3)
        stub.assert_no_pending_responses()
    assert platform.s3.list_objects_v2(Bucket=EVALUATION_BUCKET).get("KeyCount", 0) == 0


def test_missing_image_setting_names_the_variable(platform: Platform) -> None:
    values = {k: v for k, v in platform.environment.items() if k != Var.EVALUATION_IMAGE_URI}
    env = Environment(values)
    with pytest.raises(ConfigurationError, match="EVALUATION_IMAGE_URI is not set"):
        processing_job_request(JOB_ID, make_plan(), env=env, config_uri=CONFIG_URI)


# --------------------------------------------------------------------------------------------
# The name


def test_name_of_a_platform_job_id() -> None:
    job_id = names.job_id("open-model", {"backend": "sagemaker"})
    assert processing_job_name(job_id) == f"{job_id}-eval"
    longest = names.job_id("x" * 80, {"backend": "sagemaker"})
    assert len(longest) == 63
    name = processing_job_name(longest)
    assert len(name) <= 63 and NAME_PATTERN.match(name) and name.endswith("-eval")
    assert processing_job_name(longest) == name  # deterministic


@given(st.text(max_size=200))
def test_any_job_id_gives_a_valid_name(job_id: str) -> None:
    name = processing_job_name(job_id)
    assert 1 <= len(name) <= 63
    assert NAME_PATTERN.match(name), name
    assert processing_job_name(job_id) == name


@given(st.text(alphabet="abc-_ ", min_size=1, max_size=80), st.text("abc", max_size=3))
def test_distinct_job_ids_give_distinct_names(job_id: str, suffix: str) -> None:
    other = job_id + "_" + suffix
    assert processing_job_name(job_id) != processing_job_name(other)

"""The three functions' handlers, end to end against moto (and Stubber for Bedrock Runtime)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from finetuning.orchestration.errors import ConfigurationError, QualityGateFailedError
from tests.fixtures.events import documented_event, with_detail
from tests.support.lambda_handlers import load_handler
from tests.support.serving import (
    ACCOUNT,
    GATE,
    GOOD,
    REGION,
    WEAK,
    FakeContext,
    lambda_environment,
    results_document,
)

# A handler that adds no metric (a refused request) makes Powertools warn; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

PREFIX = "llm-finetuning-dev"
GROUP = f"{PREFIX}-models"
EVAL_BUCKET = f"{PREFIX}-evaluation-{ACCOUNT}-{REGION}"
DATA_BUCKET = f"{PREFIX}-data-{ACCOUNT}-{REGION}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
# The serving stack's inference image asset (SERVING_SETTINGS endpoint.huggingface_image).
INFERENCE_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-hnb659fds-container-assets:abc"


@pytest.fixture
def aws(fake_aws_credentials):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (EVAL_BUCKET, DATA_BUCKET):
            s3.create_bucket(Bucket=bucket)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield s3, sagemaker


def test_register_handler_registers_and_refuses_failed_gates(aws, monkeypatch):
    s3, sagemaker = aws
    lambda_environment(
        monkeypatch,
        MODEL_PACKAGE_GROUP=GROUP,
        EVALUATION_BUCKET=EVAL_BUCKET,
        PLATFORM_KEY_ARN=KEY_ARN,
        SERVING_SETTINGS=json.dumps(
            {"approval_status": "Approved", "endpoint": {"huggingface_image": INFERENCE_IMAGE}}
        ),
    )
    module = load_handler("register_model")
    for job, tuned in (("good-1", GOOD), ("weak-1", WEAK)):
        s3.put_object(
            Bucket=EVAL_BUCKET,
            Key=f"evaluation/reports/{job}/results.json",
            Body=json.dumps(results_document(tuned, WEAK if tuned is GOOD else GOOD, GATE)),
        )
    event = {
        "model_name": "deeds",
        "job_name": "good-1",
        "backend": "sagemaker",
        "evaluation_results_uri": f"s3://{EVAL_BUCKET}/evaluation/reports/good-1/results.json",
        "model_data_url": f"s3://{PREFIX}-artifacts/models/final/good-1/model.tar.gz",
    }
    output = module.handler(event, FakeContext())
    assert output["approval_status"] == "Approved"
    assert output["created"] is True
    package = sagemaker.describe_model_package(ModelPackageName=output["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == INFERENCE_IMAGE

    weak = event | {
        "job_name": "weak-1",
        "evaluation_results_uri": f"s3://{EVAL_BUCKET}/evaluation/reports/weak-1/results.json",
    }
    with pytest.raises(QualityGateFailedError, match="failed its quality gate"):
        module.handler(weak, FakeContext())


def test_deploy_handler_routes_approvals_and_endpoint_events(aws, monkeypatch):
    _, sagemaker = aws
    lambda_environment(
        monkeypatch,
        PLATFORM_RESOURCE_PREFIX=PREFIX,
        SAGEMAKER_EXECUTION_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution",
        PLATFORM_KEY_ARN=KEY_ARN,
        ARTIFACTS_BUCKET=f"{PREFIX}-artifacts",
        ENDPOINT_SUBNET_IDS="subnet-1,subnet-2",
        ENDPOINT_SECURITY_GROUP_IDS="sg-1",
        SERVING_SETTINGS=json.dumps({"endpoint": {"instance_type": "ml.g4dn.xlarge"}}),
    )
    module = load_handler("deploy_endpoint")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"model-name": "deeds", "backend": "sagemaker"},
        InferenceSpecification={
            "Containers": [{"Image": "hf:1", "ModelDataUrl": "s3://b/m.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    # The documented events (tests/fixtures/events), about this group's package.
    approval = with_detail(
        documented_event("sagemaker-model-package-state-change"),
        {"ModelPackageGroupName": GROUP, "ModelPackageArn": arn, "ModelApprovalStatus": "Approved"},
    ) | {"account": ACCOUNT, "region": REGION, "resources": [arn]}
    created = module.handler(approval, FakeContext())
    assert (created["action"], created["target"]) == ("created", f"{PREFIX}-deeds")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=created["endpoint_config"])
    # g4dn has an NVMe instance store: no volume key, but captured data is encrypted
    assert "KmsKeyId" not in config
    assert config["DataCaptureConfig"]["KmsKeyId"].endswith("key/1234")

    in_service = with_detail(
        documented_event("sagemaker-endpoint-state-change"),
        {"EndpointName": f"{PREFIX}-deeds", "EndpointStatus": "IN_SERVICE"},
    ) | {"account": ACCOUNT, "region": REGION}
    scaled = module.handler(in_service, FakeContext())
    assert scaled["action"] == "autoscaling"
    targets = boto3.client("application-autoscaling", region_name=REGION).describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert targets[0]["ResourceId"] == f"endpoint/{PREFIX}-deeds/variant/AllTraffic"


def test_evaluate_handler_writes_report_and_returns_verdict(aws, monkeypatch):
    s3, _ = aws
    lambda_environment(monkeypatch, EVALUATION_BUCKET=EVAL_BUCKET, PLATFORM_KEY_ARN=KEY_ARN)
    module = load_handler("evaluate_candidate")
    records = [
        {
            "messages": [
                {"role": "user", "content": f"Classify document {i}"},
                {"role": "assistant", "content": json.dumps({"type": label})},
            ]
        }
        for i, label in enumerate(["invoice", "letter", "memo", "invoice"])
    ]
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key="training-data/processed/deeds/test.jsonl",
        Body="\n".join(json.dumps(r) for r in records).encode(),
    )
    runtime = boto3.client("bedrock-runtime", region_name=REGION)
    real_client = boto3.client

    def client(name, **kwargs):
        return runtime if name == "bedrock-runtime" else real_client(name, region_name=REGION)

    monkeypatch.setattr(module.boto3, "client", client)
    tuned = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdef123456"
    with Stubber(runtime) as stub:
        for model_id, answers in (
            (tuned, ["invoice", "letter", "memo", "invoice"]),
            ("us.amazon.nova-lite-v1:0", ["invoice", "memo", "memo", "letter"]),
        ):
            for answer in answers:
                stub.add_response(
                    "converse",
                    {
                        "output": {
                            "message": {
                                "role": "assistant",
                                "content": [{"text": json.dumps({"type": answer})}],
                            }
                        },
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": 50, "outputTokens": 6, "totalTokens": 56},
                        "metrics": {"latencyMs": 200},
                    },
                    {"modelId": model_id, "messages": ANY, "inferenceConfig": {"maxTokens": 64}},
                )
        output = module.handler(
            {
                "job_name": "deeds-7",
                "model_id": tuned,
                "base_model_id": "us.amazon.nova-lite-v1:0",
                "test_set_uri": f"s3://{DATA_BUCKET}/training-data/processed/deeds/test.jsonl",
                "quality_gate": GATE,
                "inference": {"max_tokens": 64},
                "concurrency": 1,
            },
            FakeContext(),
        )
        stub.assert_no_pending_responses()
    assert output["quality_gate_passed"] is True
    assert output["metrics"]["accuracy"] == 1.0
    assert output["improvement"]["accuracy"] == 0.5
    prefix = "evaluation/reports/deeds-7/"
    assert output["report_uri"] == f"s3://{EVAL_BUCKET}/{prefix}report.html"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=EVAL_BUCKET, Prefix=prefix)["Contents"]}
    assert {
        f"{prefix}results.json",
        f"{prefix}report.html",
        f"{prefix}report.md",
        f"{prefix}charts/quality.png",
    } <= keys
    results = json.loads(
        s3.get_object(Bucket=EVAL_BUCKET, Key=f"{prefix}results.json")["Body"].read()
    )
    assert results["quality_gate"]["passed"] is True
    assert results["comparison_type"] == "model_comparison"


def test_evaluate_handler_rejects_bad_requests(monkeypatch, fake_aws_credentials):
    lambda_environment(monkeypatch, EVALUATION_BUCKET=EVAL_BUCKET, PLATFORM_KEY_ARN=KEY_ARN)
    module = load_handler("evaluate_candidate")
    from finetuning.evaluation.step import StepError

    with pytest.raises(StepError, match="test_set_uri: expected an s3://bucket/key URI"):
        module.handler(
            {"job_name": "j", "model_id": "m", "test_set_uri": "test.jsonl"}, FakeContext()
        )
    with pytest.raises(StepError, match=r"inference: unknown field\(s\) \['topk'\]"):
        module.handler(
            {
                "job_name": "j",
                "model_id": "m",
                "test_set_uri": "s3://bucket/t.jsonl",
                "inference": {"topk": 3},
            },
            FakeContext(),
        )


@pytest.mark.parametrize(
    ("folder", "missing"),
    [
        ("register_model", "SERVING_SETTINGS"),
        ("register_model", "MODEL_PACKAGE_GROUP"),
        ("evaluate_candidate", "EVALUATION_BUCKET"),
        ("evaluate_candidate", "PLATFORM_KEY_ARN"),
        ("deploy_endpoint", "SERVING_SETTINGS"),
        ("deploy_endpoint", "ENDPOINT_SUBNET_IDS"),
    ],
)
def test_a_missing_setting_fails_at_cold_start_naming_the_variable(monkeypatch, folder, missing):
    """No silent defaults: the handler's import (a cold start) refuses to run without it."""
    values = {
        "MODEL_PACKAGE_GROUP": GROUP,
        "EVALUATION_BUCKET": EVAL_BUCKET,
        "PLATFORM_KEY_ARN": KEY_ARN,
        "PLATFORM_RESOURCE_PREFIX": PREFIX,
        "SAGEMAKER_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution",
        "ARTIFACTS_BUCKET": f"{PREFIX}-artifacts",
        "ENDPOINT_SUBNET_IDS": "subnet-1",
        "ENDPOINT_SECURITY_GROUP_IDS": "sg-1",
        "SERVING_SETTINGS": "{}",
    }
    del values[missing]
    lambda_environment(monkeypatch, **values)
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(ConfigurationError, match=f"environment variable {missing} is not set"):
        load_handler(folder)


def test_invalid_serving_settings_fail_at_cold_start_naming_the_variable(monkeypatch):
    lambda_environment(
        monkeypatch,
        MODEL_PACKAGE_GROUP=GROUP,
        EVALUATION_BUCKET=EVAL_BUCKET,
        PLATFORM_KEY_ARN=KEY_ARN,
        SERVING_SETTINGS='{"approval_status": "Maybe"}',
    )
    with pytest.raises(ConfigurationError, match="SERVING_SETTINGS: expected the serving settings"):
        load_handler("register_model")

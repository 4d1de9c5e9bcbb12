"""Registering evaluated models against moto's SageMaker and S3."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from finetuning.approved_model_deployment import EndpointSettings, ServingError, ServingSettings
from finetuning.evaluation.document import EvaluationDocument
from finetuning.model_package_registry import (
    RegistrationError,
    RegistrationRequest,
    model_quality_statistics,
    register_evaluated_model,
)
from finetuning.orchestration.errors import QualityGateFailedError
from tests.support.serving import ACCOUNT, GATE, GOOD, REGION, WEAK, results_document

GROUP = "llm-finetuning-dev-models"
# What the serving stack puts in the settings: its inference image asset's URI.
PLATFORM_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-hnb659fds-container-assets:abc123"
SETTINGS = ServingSettings().with_huggingface_image(PLATFORM_IMAGE)
EVAL_BUCKET = "llm-finetuning-dev-evaluation"
RESULTS_KEY = "evaluation/reports/deeds-1/results.json"
CUSTOM_MODEL = (
    f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdefabcdef"
)


@pytest.fixture
def aws(fake_aws_credentials):
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        s3.create_bucket(Bucket=EVAL_BUCKET)
        yield sagemaker, s3


def put_results(s3, document: dict) -> str:
    s3.put_object(Bucket=EVAL_BUCKET, Key=RESULTS_KEY, Body=json.dumps(document).encode())
    return f"s3://{EVAL_BUCKET}/{RESULTS_KEY}"


def request(uri: str, **overrides) -> RegistrationRequest:
    event = {
        "model_name": "deeds",
        "job_name": "deeds-1",
        "backend": "sagemaker",
        "evaluation_results_uri": uri,
        "model_data_url": "s3://llm-finetuning-dev-artifacts/models/final/deeds-1/model.tar.gz",
        "report_uri": f"s3://{EVAL_BUCKET}/evaluation/reports/deeds-1/report.html",
    } | overrides
    return RegistrationRequest.from_event(event)


def register(sagemaker, s3, req, settings=None):
    return register_evaluated_model(
        sagemaker,
        s3,
        req,
        group=GROUP,
        evaluation_bucket=EVAL_BUCKET,
        region=REGION,
        settings=settings or SETTINGS,
    )


def test_passing_model_is_registered_pending_with_its_metrics(aws):
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(GOOD, WEAK, GATE))
    registration = register(sagemaker, s3, request(uri))
    assert registration.created
    assert registration.approval_status == "PendingManualApproval"
    package = sagemaker.describe_model_package(ModelPackageName=registration.model_package_arn)
    assert package["ModelPackageGroupName"] == GROUP
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    quality = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert quality == {
        "ContentType": "application/json",
        "S3Uri": f"s3://{EVAL_BUCKET}/evaluation/reports/deeds-1/model-quality.json",
    }
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == PLATFORM_IMAGE
    assert container["ModelDataUrl"].endswith("/models/final/deeds-1/model.tar.gz")
    metadata = package["CustomerMetadataProperties"]
    assert metadata["model-name"] == "deeds"
    assert metadata["backend"] == "sagemaker"
    assert metadata["accuracy"] == "0.8333"
    assert metadata["accuracy-improvement"] == "+0.3333"
    assert metadata["base-model"] == "model-Base Model"

    body = s3.get_object(Bucket=EVAL_BUCKET, Key="evaluation/reports/deeds-1/model-quality.json")
    statistics = json.loads(body["Body"].read())
    multiclass = statistics["multiclass_classification_metrics"]
    assert multiclass["accuracy"] == {"value": pytest.approx(5 / 6), "standard_deviation": "NaN"}
    assert multiclass["confusion_matrix"]["memo"] == {"letter": 1, "memo": 1}
    assert statistics["dataset"]["item_count"] == 6
    assert statistics["comparison_with_base"]["improvement"]["accuracy"] == pytest.approx(1 / 3)


def test_registration_is_idempotent(aws):
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(GOOD, WEAK, GATE))
    first = register(sagemaker, s3, request(uri))
    again = register(sagemaker, s3, request(uri))
    assert not again.created
    assert again.model_package_arn == first.model_package_arn
    packages = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)
    assert len(packages["ModelPackageSummaryList"]) == 1


def test_auto_approval_and_vllm_container_from_settings(aws):
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(GOOD, WEAK, GATE))
    settings = ServingSettings(
        approval_status="Approved", endpoint=EndpointSettings(container="vllm")
    )
    registration = register(sagemaker, s3, request(uri), settings)
    package = sagemaker.describe_model_package(ModelPackageName=registration.model_package_arn)
    assert package["ModelApprovalStatus"] == "Approved"
    container = package["InferenceSpecification"]["Containers"][0]
    assert "djl-inference" in container["Image"]
    assert container["Environment"]["OPTION_ROLLING_BATCH"] == "vllm"


def test_no_platform_image_no_registration_on_the_bare_dlc(aws):
    # The bare Hugging Face inference DLC ships transformers 4.51.3; models are trained with
    # 5.23.0 and an isolated endpoint cannot install it (docs/training.md, "Images").
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(GOOD, WEAK, GATE))
    assert ServingSettings().endpoint.huggingface_image is None
    with pytest.raises(ServingError, match=r"serving\.endpoint\.huggingface_image.*4\.51\.3"):
        register(sagemaker, s3, request(uri), ServingSettings())
    packages = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)
    assert packages["ModelPackageSummaryList"] == []


def test_an_image_named_in_settings_is_kept():
    own = ServingSettings(endpoint=EndpointSettings(huggingface_image="my/image:1"))
    assert own.with_huggingface_image(PLATFORM_IMAGE).endpoint.image(REGION) == "my/image:1"
    assert SETTINGS.endpoint.image(REGION) == PLATFORM_IMAGE


def test_failed_gate_is_not_registered(aws):
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(WEAK, GOOD, GATE))
    with pytest.raises(QualityGateFailedError) as info:
        register(sagemaker, s3, request(uri))
    assert "deeds (deeds-1) failed its quality gate: accuracy 0.5 < 0.8" in str(info.value)
    assert "report: s3://llm-finetuning-dev-evaluation/evaluation/reports/deeds-1/report.html" in (
        str(info.value)
    )
    assert (
        sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []
    )


def test_results_without_a_gate_verdict_are_refused(aws):
    sagemaker, s3 = aws
    document = results_document(GOOD, WEAK, GATE)
    del document["quality_gate"]
    uri = put_results(s3, document)
    with pytest.raises(RegistrationError, match="carry no quality_gate verdict"):
        register(sagemaker, s3, request(uri))


def test_bedrock_model_is_registered_by_its_arn(aws):
    sagemaker, s3 = aws
    uri = put_results(s3, results_document(GOOD, WEAK, GATE))
    req = request(
        uri, backend="bedrock", model_data_url=None, bedrock_custom_model_arn=CUSTOM_MODEL
    )
    registration = register(sagemaker, s3, req)
    package = sagemaker.describe_model_package(ModelPackageName=registration.model_package_arn)
    assert package["CustomerMetadataProperties"]["bedrock-custom-model-arn"] == CUSTOM_MODEL
    assert package["CustomerMetadataProperties"]["backend"] == "bedrock"
    assert "InferenceSpecification" not in package


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backend": "local"}, "backend: expected 'sagemaker' or 'bedrock', got 'local'"),
        ({"model_name": "has space"}, "model_name: expected 1-63 letters"),
        ({"evaluation_results_uri": "results.json"}, "evaluation_results_uri: expected s3://"),
        ({"model_data_url": None}, "model_data_url: a SageMaker model needs"),
        ({"backend": "bedrock"}, "bedrock_custom_model_arn: a Bedrock model needs"),
        ({"job_name": ""}, "job_name: expected a non-empty string"),
    ],
)
def test_request_errors_name_the_field(overrides, message):
    with pytest.raises(RegistrationError, match=message):
        request("s3://bucket/evaluation/reports/x/results.json", **overrides)


def test_statistics_for_structured_answers_use_custom_metrics():
    document = EvaluationDocument.from_dict(results_document(GOOD, WEAK, GATE))
    document.tuned.metrics = {"task": "json", "field_f1": 0.9, "json_validity_rate": 1.0}
    statistics = model_quality_statistics(document)
    assert "multiclass_classification_metrics" not in statistics
    assert statistics["custom_metrics"]["field_f1"] == {"value": 0.9, "standard_deviation": "NaN"}

"""Converse requests checked by botocore's Stubber against the real service models."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from finetuning.evaluation.samples import EvaluationSample, ImagePart, TextPart, Turn
from finetuning.evaluation.targets import (
    BedrockConverseTarget,
    InferenceParameters,
    TargetError,
    family_of,
    resolve_family,
    top_k_fields,
)
from tests.support.evaluation import png_bytes

ACCOUNT = "123456789012"
PROVISIONED_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abcdef123456"
DEPLOYMENT_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/fedcba654321"
CUSTOM_MODEL_ARN = (
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/"
    "anthropic.claude-3-haiku-20240307-v1:0:200k/abcdefabcdef"
)
NOVA_CUSTOM_MODEL_ARN = (
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdefabcdef"
)
NOVA_FOUNDATION_ARN = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0:300k"
HAIKU_FOUNDATION_ARN = (
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0:200k"
)


@pytest.fixture
def runtime(fake_aws_credentials):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def control(fake_aws_credentials):
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def converse_response(text: str, input_tokens: int = 850, output_tokens: int = 15) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 420},
    }


def image_sample(tmp_path) -> EvaluationSample:
    path = tmp_path / "doc.png"
    path.write_bytes(png_bytes())
    return EvaluationSample(
        sample_id=str(path),
        turns=(Turn("user", (TextPart("Classify."), ImagePart("png", path=str(path)))),),
        system="You classify documents.",
        reference="invoice",
        image_path=str(path),
    )


def test_nova_request_with_image_and_top_k(runtime, tmp_path):
    client, stubber = runtime
    sample = image_sample(tmp_path)
    params = InferenceParameters(max_tokens=500, temperature=0.1, top_p=0.9, top_k=10)
    stubber.add_response(
        "converse",
        converse_response('{"type": "invoice"}'),
        {
            "modelId": "us.amazon.nova-lite-v1:0",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Classify."},
                        {"image": {"format": "png", "source": {"bytes": png_bytes()}}},
                    ],
                }
            ],
            "system": [{"text": "You classify documents."}],
            "inferenceConfig": {"maxTokens": 500, "temperature": 0.1, "topP": 0.9},
            "additionalModelRequestFields": {"inferenceConfig": {"topK": 10}},
        },
    )
    target = BedrockConverseTarget("us.amazon.nova-lite-v1:0", client)
    target.validate(params, has_images=True)
    generation = target.generate(sample, params)
    assert generation.text == '{"type": "invoice"}'
    assert (generation.input_tokens, generation.output_tokens) == (850, 15)
    assert generation.stop_reason == "end_turn"
    assert generation.latency_seconds >= 0


def test_defaults_send_only_max_tokens(runtime):
    client, stubber = runtime
    sample = EvaluationSample("t:1", (Turn("user", (TextPart("Hi"),)),), reference="Hello")
    stubber.add_response(
        "converse",
        converse_response("Hello", 3, 2),
        {
            "modelId": "meta.llama3-1-8b-instruct-v1:0",
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 512},
        },
    )
    target = BedrockConverseTarget("meta.llama3-1-8b-instruct-v1:0", client)
    assert target.generate(sample, InferenceParameters()).text == "Hello"


def test_s3_images_are_passed_by_location(runtime):
    client, stubber = runtime
    part = ImagePart("jpeg", s3_uri="s3://bucket/a.jpg", bucket_owner=ACCOUNT)
    sample = EvaluationSample("t:1", (Turn("user", (part,)),))
    stubber.add_response(
        "converse",
        converse_response("memo"),
        {
            "modelId": PROVISIONED_ARN,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "image": {
                                "format": "jpeg",
                                "source": {
                                    "s3Location": {
                                        "uri": "s3://bucket/a.jpg",
                                        "bucketOwner": ACCOUNT,
                                    }
                                },
                            }
                        }
                    ],
                }
            ],
            "inferenceConfig": {"maxTokens": 512},
        },
    )
    BedrockConverseTarget(PROVISIONED_ARN, client).generate(sample, InferenceParameters())


def test_anthropic_top_k_goes_under_its_own_name():
    assert top_k_fields("anthropic", 250, "x") == {"top_k": 250}
    with pytest.raises(TargetError, match="expected 0 to 500 for anthropic models, got 501"):
        top_k_fields("anthropic", 501, "x")


@pytest.mark.parametrize("family", ["meta", "titan", "mistral"])
def test_families_without_top_k_refuse_it(family):
    with pytest.raises(TargetError, match=f"{family} models on Bedrock have no top-k parameter"):
        top_k_fields(family, 5, "model")


def test_unknown_family_asks_for_model_family():
    with pytest.raises(TargetError, match="pass --model-family"):
        top_k_fields(None, 5, PROVISIONED_ARN)


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("amazon.nova-pro-v1:0", "nova"),
        ("us.amazon.nova-lite-v1:0", "nova"),
        ("amazon.titan-text-express-v1", "titan"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        ("eu.anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        ("meta.llama3-1-70b-instruct-v1:0", "meta"),
        ("mistral.mistral-large-2402-v1:0", "mistral"),
        (NOVA_FOUNDATION_ARN, "nova"),
        ("cohere.command-r-v1:0", None),
        (PROVISIONED_ARN, None),
        (DEPLOYMENT_ARN, None),
    ],
)
def test_family_of(model_id, family):
    assert family_of(model_id) == family


def test_provisioned_model_family_is_looked_up(control):
    client, stubber = control
    now = datetime(2025, 1, 1, tzinfo=UTC)
    stubber.add_response(
        "get_provisioned_model_throughput",
        {
            "modelUnits": 1,
            "desiredModelUnits": 1,
            "provisionedModelName": "tuned",
            "provisionedModelArn": PROVISIONED_ARN,
            "modelArn": NOVA_CUSTOM_MODEL_ARN,
            "desiredModelArn": NOVA_CUSTOM_MODEL_ARN,
            "foundationModelArn": NOVA_FOUNDATION_ARN,
            "status": "InService",
            "creationTime": now,
            "lastModifiedTime": now,
        },
        {"provisionedModelId": PROVISIONED_ARN},
    )
    assert resolve_family(PROVISIONED_ARN, client) == "nova"


def test_custom_model_deployment_family_is_looked_up(runtime, control):
    runtime_client, runtime_stub = runtime
    client, stubber = control
    now = datetime(2025, 1, 1, tzinfo=UTC)
    stubber.add_response(
        "get_custom_model_deployment",
        {
            "customModelDeploymentArn": DEPLOYMENT_ARN,
            "modelDeploymentName": "tuned-on-demand",
            "modelArn": CUSTOM_MODEL_ARN,
            "createdAt": now,
            "status": "Active",
        },
        {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
    )
    stubber.add_response(
        "get_custom_model",
        {
            "modelArn": CUSTOM_MODEL_ARN,
            "modelName": "tuned",
            "baseModelArn": HAIKU_FOUNDATION_ARN,
            "creationTime": now,
        },
        {"modelIdentifier": CUSTOM_MODEL_ARN},
    )
    sample = EvaluationSample("t:1", (Turn("user", (TextPart("Hi"),)),))
    runtime_stub.add_response(
        "converse",
        converse_response("ok"),
        {
            "modelId": DEPLOYMENT_ARN,
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 64},
            "additionalModelRequestFields": {"top_k": 40},
        },
    )
    target = BedrockConverseTarget(DEPLOYMENT_ARN, runtime_client, control_client=client)
    params = InferenceParameters(max_tokens=64, top_k=40)
    target.validate(params, has_images=False)
    assert target.generate(sample, params).text == "ok"


def test_model_family_flag_skips_the_lookup(runtime):
    client, _ = runtime
    target = BedrockConverseTarget(PROVISIONED_ARN, client, family="meta")
    with pytest.raises(TargetError, match="meta models on Bedrock have no top-k"):
        target.validate(InferenceParameters(top_k=3), has_images=False)


def test_temperature_above_bedrock_range_is_refused(runtime):
    client, _ = runtime
    target = BedrockConverseTarget("amazon.nova-lite-v1:0", client)
    with pytest.raises(TargetError, match=r"Bedrock accepts 0 to 1, got 1\.5"):
        target.validate(InferenceParameters(temperature=1.5), has_images=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens: expected an integer >= 1, got 0"),
        ({"temperature": -0.1}, "temperature: expected a value >= 0"),
        ({"top_p": 1.5}, "top_p: expected a value from 0 to 1, got 1.5"),
        ({"top_k": -1}, "top_k: expected an integer >= 0, got -1"),
    ],
)
def test_inference_parameter_validation(kwargs, message):
    with pytest.raises(TargetError, match=message):
        InferenceParameters(**kwargs)

"""SageMaker endpoint requests checked by Stubber against the sagemaker-runtime model."""

from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from finetuning.evaluation.samples import EvaluationSample, ImagePart, TextPart, Turn
from finetuning.evaluation.targets import (
    InferenceParameters,
    SageMakerEndpointTarget,
    TargetError,
)
from tests.support.evaluation import png_bytes

SAMPLE = EvaluationSample(
    "t:1", (Turn("user", (TextPart("Capital of France?"),)),), system="Be brief.", reference="Paris"
)


@pytest.fixture
def runtime(fake_aws_credentials):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def body(payload: object) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_openai_payload_and_usage(runtime):
    client, stubber = runtime
    params = InferenceParameters(max_tokens=32, temperature=0.2, top_p=0.9, top_k=20)
    expected_body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "max_tokens": 32,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 20,
    }
    stubber.add_response(
        "invoke_endpoint",
        {
            "Body": body(
                {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": "Paris"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 2},
                }
            ),
            "ContentType": "application/json",
        },
        {
            "EndpointName": "tuned-endpoint",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(expected_body).encode(),
            "InferenceComponentName": "tuned-component",
        },
    )
    target = SageMakerEndpointTarget(
        "tuned-endpoint", client, payload="openai", inference_component="tuned-component"
    )
    generation = target.generate(SAMPLE, params)
    assert generation.text == "Paris"
    assert (generation.input_tokens, generation.output_tokens) == (12, 2)
    assert generation.stop_reason == "stop"


def test_chat_payload_for_the_platform_inference_handler(runtime):
    """The body training_scripts/inference.py reads, and the response it writes."""
    client, stubber = runtime
    params = InferenceParameters(max_tokens=16, temperature=0.5, top_k=10)
    expected_body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "parameters": {"max_new_tokens": 16, "do_sample": True, "temperature": 0.5, "top_k": 10},
    }
    stubber.add_response(
        "invoke_endpoint",
        {
            "Body": body(
                {
                    "generated_text": "Paris",
                    "finish_reason": "stop",
                    "usage": {"prompt_tokens": 14, "completion_tokens": 3},
                }
            )
        },
        {
            "EndpointName": "ep",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(expected_body).encode(),
        },
    )
    generation = SageMakerEndpointTarget("ep", client).generate(SAMPLE, params)
    assert (generation.text, generation.stop_reason) == ("Paris", "stop")
    assert (generation.input_tokens, generation.output_tokens) == (14, 3)


def test_inputs_payload_for_the_inference_toolkit(runtime):
    client, stubber = runtime
    stubber.add_response(
        "invoke_endpoint",
        {
            "Body": body(
                [{"generated_text": [{"role": "user"}, {"role": "assistant", "content": "Paris"}]}]
            )
        },
        {
            "EndpointName": "ep",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": ANY,
        },
    )
    target = SageMakerEndpointTarget("ep", client, payload="inputs")
    assert target.build_body(SAMPLE, InferenceParameters(max_tokens=8)) == {
        "inputs": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "parameters": {"max_new_tokens": 8, "do_sample": False},
    }
    assert target.generate(SAMPLE, InferenceParameters()).text == "Paris"


def test_images_become_data_urls(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    sample = EvaluationSample(
        "a", (Turn("user", (TextPart("What?"), ImagePart("png", path=str(path)))),)
    )
    target = SageMakerEndpointTarget("ep", object(), payload="openai")
    content = target.build_body(sample, InferenceParameters())["messages"][0]["content"]
    encoded = base64.b64encode(png_bytes()).decode()
    assert content == [
        {"type": "text", "text": "What?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
    ]
    for payload in ("chat", "inputs"):
        with pytest.raises(TargetError, match="images need --endpoint-payload openai"):
            SageMakerEndpointTarget("ep", object(), payload=payload).validate(
                InferenceParameters(), has_images=True
            )


def test_unexpected_response_is_named(runtime):
    client, stubber = runtime
    stubber.add_response("invoke_endpoint", {"Body": body({"answer": 1})})
    with pytest.raises(TargetError, match="expected an OpenAI-style body with 'choices'"):
        SageMakerEndpointTarget("ep", client).generate(SAMPLE, InferenceParameters())


def test_endpoint_errors_reach_the_runner(runtime):
    client, stubber = runtime
    stubber.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", service_message="CUDA OOM"
    )
    from finetuning.evaluation.runner import RunOptions, run_target

    (result,) = run_target(
        SageMakerEndpointTarget("ep", client),
        [SAMPLE],
        InferenceParameters(),
        None,
        RunOptions(progress=False),
    )
    assert result["status"] == "error"
    assert result["error_code"] == "ModelError"

"""The workflow's open-weight RFT jobs (finetuning.orchestration.open_weight): a short-term
API key made from the caller's credentials, an idempotent start on the fake bedrock-mantle
endpoint (tests/support/mantle.py), the status mapping and the cancel."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from finetuning.aws_jobs.job_status import JobStatus
from finetuning.orchestration import launch, open_weight
from finetuning.orchestration.errors import ConfigurationError
from finetuning.orchestration.manifest import parse_manifest
from tests.support.mantle import API_KEY, GRADER, FakeMantle, rft_jsonl
from tests.support.mantle import mantle as mantle

BUCKET = "llm-finetuning-test-data-123456789012-us-west-2"
DATA = f"s3://{BUCKET}/training-data/processed/math/rft-open.jsonl"


@pytest.fixture
def s3(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=DATA.split("/", 3)[3], Body=rft_jsonl(100))
        yield client


def manifest(**rft: Any) -> Any:
    return parse_manifest(
        {
            "job_name": "rft-oss",
            "backend": "bedrock",
            "base_model": "openai.gpt-oss-20b",
            "customization_type": "REINFORCEMENT_FINE_TUNING",
            "training_data_uri": DATA,
            "rft": {"grader_lambda_arn": GRADER, "hyperparameters": {"n_epochs": 2}, **rft},
        }
    )


def rft(s3: Any, mantle: FakeMantle, region: str = "us-west-2") -> Any:
    return open_weight.backend(region, s3, key=lambda _: API_KEY, base_url=mantle.url)


def test_the_api_key_is_a_short_term_key_presigned_with_the_callers_credentials(
    fake_aws_credentials: None,
) -> None:
    """aws-bedrock-token-generator 1.1.0: "bedrock-api-key-" and the base64 of a SigV4
    query-presigned CallWithBearerToken request, for the Region asked, 12 hours at most."""
    key = open_weight.api_key("us-west-2")
    assert key.startswith("bedrock-api-key-")
    url = base64.b64decode(key.removeprefix("bedrock-api-key-")).decode()
    assert url.startswith("bedrock.amazonaws.com/?")
    query = parse_qs(urlsplit("https://" + url).query)
    assert query["Action"] == ["CallWithBearerToken"]
    assert query["X-Amz-Credential"][0].startswith("testing/")
    assert query["X-Amz-Credential"][0].endswith("/us-west-2/bedrock/aws4_request")
    assert query["X-Amz-Expires"] == ["43200"]
    assert query["X-Amz-Security-Token"] == ["testing"]  # the role's session, not a secret
    assert query["Version"] == ["1"]


def test_a_start_uploads_and_creates_once_and_a_repeat_returns_the_same_job(
    s3: Any,
    mantle: FakeMantle,
) -> None:
    spec = manifest()
    first = open_weight.start(rft(s3, mantle), spec, spec.job_id)
    again = open_weight.start(rft(s3, mantle), spec, spec.job_id)
    assert first == again == f"{mantle.url}/fine_tuning/jobs/ftjob-1"
    assert len(mantle.files) == 1 and len(mantle.jobs) == 1
    assert mantle.files[0]["filename"].startswith(f"{spec.job_id}-")
    body = next(r for r in mantle.requests if r.method == "POST" and r.path.endswith("/jobs"))
    assert body.json()["method"]["reinforcement"] == {
        "grader": {"type": "lambda", "lambda": {"function": GRADER}},
        "hyperparameters": {"n_epochs": 2},
    }
    assert open_weight.is_open_weight_job(first)
    assert open_weight.is_open_weight_manifest(spec)


def test_a_start_outside_the_models_region_is_refused_before_any_call(
    s3: Any,
    mantle: FakeMantle,
) -> None:
    spec = manifest()
    with pytest.raises(ConfigurationError) as caught:
        open_weight.start(rft(s3, mantle, region="us-east-1"), spec, spec.job_id)
    assert "only in us-west-2; this platform runs in us-east-1" in str(caught.value)
    assert mantle.requests == []


def test_describe_maps_the_job_and_stop_cancels_only_a_running_one(
    s3: Any,
    mantle: FakeMantle,
) -> None:
    spec = manifest()
    mantle.statuses = ["queued", "running"]
    url = open_weight.start(rft(s3, mantle), spec, spec.job_id)
    queued = open_weight.describe(rft(s3, mantle), url)
    assert queued.status is JobStatus.QUEUED and queued.backend_status == "queued"
    assert open_weight.stop(rft(s3, mantle), url) is True  # GET -> running, then cancel
    assert mantle.calls()[-1] == "POST /v1/fine_tuning/jobs/ftjob-1/cancel"
    cancelled = open_weight.describe(rft(s3, mantle), url)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.is_terminal
    assert open_weight.stop(rft(s3, mantle), url) is False  # already ended


def test_a_succeeded_job_reports_its_model_and_duration(
    s3: Any,
    mantle: FakeMantle,
) -> None:
    spec = manifest()
    mantle.statuses = ["succeeded"]
    url = open_weight.start(rft(s3, mantle), spec, spec.job_id)
    state = open_weight.describe(rft(s3, mantle), url)
    assert state.status is JobStatus.COMPLETED
    assert state.artifacts == {"fine_tuned_model": "openai.gpt-oss-20b:ft:ftjob-1"}
    assert state.usage == {"duration_seconds": 3600}
    assert state.job_arn == url


def test_job_urls_name_the_region_their_key_is_made_for(monkeypatch: pytest.MonkeyPatch) -> None:
    region = launch._open_weight_region
    assert region("https://bedrock-mantle.us-west-2.api.aws/v1/fine_tuning/jobs/ftjob-1") == (
        "us-west-2"
    )
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert region("http://127.0.0.1:8080/v1/fine_tuning/jobs/ftjob-1") == "us-west-2"
    assert not open_weight.is_open_weight_job(
        "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc"
    )

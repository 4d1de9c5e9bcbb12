"""RFT of the open-weight models through Bedrock's OpenAI-compatible API, against a local fake
endpoint (tests/support/mantle.py): the requests' method, path, headers and body, the
idempotent create, the statuses, and the errors a user sees."""

from __future__ import annotations

import logging

import boto3
import pytest

from finetuning.backends.bedrock_openai_rft import (
    API_KEY_ENV,
    HYPERPARAMETER_TYPES,
    JOB_STATUSES,
    MANTLE_URL,
    ApiKeyRejectedError,
    MantleApiError,
    mantle_url,
)
from finetuning.errors import EnvironmentSetupError, InvalidJobConfigError
from finetuning.jobs import JobStatus
from finetuning.service import ModelFinetuningService
from tests.support.mantle import API_KEY, GRADER, rft_jsonl

GPT_OSS = "openai.gpt-oss-20b"


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "rft.jsonl"
    path.write_bytes(rft_jsonl())
    return path


def make_service(mantle, region="us-west-2", api_key=API_KEY) -> ModelFinetuningService:
    return ModelFinetuningService(
        region=region,
        session=boto3.Session(region_name=region),
        platform=None,
        bedrock_api_key=api_key,
        bedrock_openai_url=mantle.url,
        sleep=lambda seconds: None,
    )


def job(data, **changes) -> dict:
    config = {
        "base_model": GPT_OSS,
        "customization_type": "REINFORCEMENT_FINE_TUNING",
        "training_data_uri": str(data),
        "grader_lambda_arn": GRADER,
        "rft_hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1.0},
        "job_name": "rft-math",
    }
    config.update(changes)
    return config


def test_documented_constants() -> None:
    """fine-tuning-openai-job-create.html, rft-open-weight-access-security.html and the
    OpenAI job object the page defers to."""
    assert MANTLE_URL == "https://bedrock-mantle.{region}.api.aws/v1"
    assert mantle_url("us-west-2") == "https://bedrock-mantle.us-west-2.api.aws/v1"
    assert API_KEY_ENV == "OPENAI_API_KEY"
    assert dict(HYPERPARAMETER_TYPES) == {
        "n_epochs": int,
        "batch_size": int,
        "learning_rate_multiplier": float,
    }
    assert {raw: status.value for raw, status in JOB_STATUSES.items()} == {
        "validating_files": "preprocessing",
        "queued": "queued",
        "running": "running",
        "succeeded": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
    }


def test_create_uploads_the_data_then_starts_the_documented_request(mantle, data, caplog):
    caplog.set_level(logging.DEBUG)
    with make_service(mantle) as service:
        result = service.create_finetuning_job(job(data))
    assert mantle.calls() == [
        "GET /v1/files",
        "POST /v1/files",
        "GET /v1/fine_tuning/jobs",
        "POST /v1/fine_tuning/jobs",
    ]
    for request in mantle.requests:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    listing, upload, _, create = mantle.requests
    assert listing.query == {"purpose": ["fine-tune"]}
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    form = upload.form()
    assert form["purpose"] == (None, b"fine-tune")
    filename, content = form["file"]
    assert content == data.read_bytes()
    assert filename.startswith("rft-math-") and filename.endswith(".jsonl")
    assert create.headers["Content-Type"] == "application/json"
    assert create.json() == {
        "model": GPT_OSS,
        "training_file": "file-1",
        "method": {
            "type": "reinforcement",
            "reinforcement": {
                "grader": {"type": "lambda", "lambda": {"function": GRADER}},
                "hyperparameters": {
                    "n_epochs": 1,
                    "batch_size": 4,
                    "learning_rate_multiplier": 1.0,
                },
            },
        },
    }
    assert result.job_arn == f"{mantle.url}/fine_tuning/jobs/ftjob-1"
    assert (result.status, result.backend_status) == (JobStatus.PREPROCESSING, "validating_files")
    assert result.base_model == GPT_OSS and result.backend.value == "bedrock"
    assert API_KEY not in caplog.text


def test_a_repeated_create_finds_the_file_and_the_job_it_started(mantle, data):
    with make_service(mantle) as service:
        first = service.create_finetuning_job(job(data))
        again = service.create_finetuning_job(job(data))
        other = service.create_finetuning_job(job(data, rft_hyperparameters={"n_epochs": 2}))
    assert again.job_arn == first.job_arn
    assert [r.path for r in mantle.requests if r.method == "POST"] == [
        "/v1/files",
        "/v1/fine_tuning/jobs",
        "/v1/files",  # another spec: a new file name, a new job
        "/v1/fine_tuning/jobs",
    ]
    assert other.job_arn.endswith("/ftjob-2")


def test_a_failed_job_does_not_block_a_new_start(mantle, data):
    with make_service(mantle) as service:
        service.create_finetuning_job(job(data))
        mantle.jobs[0]["status"] = "failed"
        retry = service.create_finetuning_job(job(data))
    assert retry.job_arn.endswith("/ftjob-2")
    assert [r.path for r in mantle.requests if r.method == "POST"].count("/v1/files") == 1


def test_status_wait_and_stop_map_the_job_object(mantle, data):
    with make_service(mantle) as service:
        created = service.create_finetuning_job(job(data))
        seen: list[str] = []
        final = service.wait_for_job_completion(
            created.job_arn, polling_interval=1, on_update=lambda r: seen.append(r.status.value)
        )
        assert seen == ["running", "completed"]
        assert final.model_id == f"{GPT_OSS}:ft:ftjob-1"
        assert final.end_time is not None and final.hyperparameters["n_epochs"] == "1"
        assert service.stop_job(created.job_arn).status is JobStatus.COMPLETED  # nothing to stop

        mantle.statuses = ["failed"]
        mantle.job_error = {"code": "grader_error", "message": "the grader Lambda timed out"}
        second = service.create_finetuning_job(job(data, job_name="rft-two"))
        failed = service.get_job_status(second.job_arn)
        assert failed.status is JobStatus.FAILED
        assert failed.failure_reason == "the grader Lambda timed out"

        mantle.statuses = []
        third = service.create_finetuning_job(job(data, job_name="rft-three"))
        assert service.stop_job(third.job_arn).status is JobStatus.CANCELLED
    assert mantle.calls()[-1] == "POST /v1/fine_tuning/jobs/ftjob-3/cancel"


def test_no_api_key_stops_before_any_request(mantle, data, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with make_service(mantle, api_key=None) as service, pytest.raises(EnvironmentSetupError) as err:
        service.create_finetuning_job(job(data))
    assert "set OPENAI_API_KEY" in str(err.value) and "api-keys.html" in str(err.value)
    assert mantle.requests == []


def test_the_key_comes_from_openai_api_key(mantle, data, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    with make_service(mantle, api_key=None) as service:
        assert service.create_finetuning_job(job(data)).job_arn.endswith("/ftjob-1")


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({}, "region", "us-west-2, where Bedrock reinforcement fine-tunes openai.gpt-oss-20b"),
        ({"grader_lambda_arn": None}, "grader_lambda_arn", "the ARN of the grader Lambda"),
        (
            {"customization_type": "FINE_TUNING", "grader_lambda_arn": None},
            "customization_type",
            "customizes openai.gpt-oss-20b only by reinforcement fine-tuning",
        ),
        ({"rft_hyperparameters": {"epochCount": 2}}, "rft_hyperparameters.epochCount", "one of"),
        ({"rft_hyperparameters": {"n_epochs": 0}}, "rft_hyperparameters.n_epochs", "positive"),
        ({"validation_data_uri": "s3://b/v.jsonl"}, "validation_data_uri", "takes training"),
        ({"model_name": "mine"}, "model_name", "takes training data, a grader"),
        ({"role_arn": "arn:aws:iam::123456789012:role/r"}, "role_arn", "takes training data"),
    ],
)
def test_settings_the_api_does_not_take_are_refused_before_any_request(
    mantle, data, changes, field, expected
):
    region = "us-east-1" if field == "region" else "us-west-2"
    with (
        make_service(mantle, region=region) as service,
        pytest.raises(InvalidJobConfigError) as err,
    ):
        service.create_finetuning_job(job(data, **changes))
    assert err.value.field == field and expected in str(err.value)
    assert mantle.requests == []


def test_bad_records_are_refused_before_the_upload(mantle, tmp_path):
    path = tmp_path / "few.jsonl"
    path.write_bytes(rft_jsonl(99))
    with make_service(mantle) as service, pytest.raises(InvalidJobConfigError) as err:
        service.create_finetuning_job(job(path))
    assert err.value.field == "training_data_uri" and "at least 100" in str(err.value)
    assert [r.method for r in mantle.requests] == []


def test_http_errors_name_the_call_and_never_the_key(mantle, data):
    mantle.fail_with = (403, {"error": {"message": f"denied for {API_KEY}"}})
    with make_service(mantle) as service, pytest.raises(MantleApiError) as err:
        service.create_finetuning_job(job(data))
    message = str(err.value)
    assert message.startswith("ListFiles failed: HTTP 403: denied for ***")
    assert "AmazonBedrockMantleFullAccess" in message and API_KEY not in message

    mantle.fail_with = None
    with make_service(mantle, api_key="wrong") as service, pytest.raises(ApiKeyRejectedError):
        service.create_finetuning_job(job(data))


def test_only_bedrock_endpoints_receive_the_key(mantle):
    with make_service(mantle) as service, pytest.raises(InvalidJobConfigError) as err:
        service.get_job_status("https://example.com/v1/fine_tuning/jobs/ftjob-1")
    assert err.value.field == "job_identifier"
    assert mantle.requests == []


def test_s3_data_is_read_with_the_session(mantle, bucket, aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key="rft/train.jsonl", Body=rft_jsonl())
    with make_service(mantle) as service:
        result = service.create_finetuning_job(job("s3://finetune-data-test/rft/train.jsonl"))
    assert result.job_arn.endswith("/ftjob-1")
    assert mantle.requests[1].form()["file"][1] == rft_jsonl()


def test_a_redirect_is_an_error_and_not_followed_with_the_key(mantle, data):
    mantle.redirect_to = f"{mantle.url}/elsewhere"
    with make_service(mantle) as service, pytest.raises(MantleApiError) as err:
        service.create_finetuning_job(job(data))
    assert str(err.value).startswith("ListFiles failed: HTTP 307")
    assert mantle.calls() == ["GET /v1/files"]


def test_list_pages_through_the_jobs(mantle, data):
    with make_service(mantle) as service:
        service.create_finetuning_job(job(data))
        service.create_finetuning_job(job(data, job_name="rft-two"))
        page = service.open_weight_rft_backend().list(status_filter=JobStatus.PREPROCESSING)
    assert [j.job_name for j in page.jobs] == ["ftjob-2", "ftjob-1"]
    assert page.next_token is None
    assert mantle.requests[-1].query == {"limit": ["100"]}


def test_create_role_is_refused(mantle, data):
    with make_service(mantle) as service, pytest.raises(InvalidJobConfigError) as err:
        service.create_finetuning_job(job(data), create_role=True)
    assert err.value.field == "create_role" and mantle.requests == []

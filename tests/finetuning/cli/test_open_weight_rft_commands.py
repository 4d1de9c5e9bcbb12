"""``finetune job create/status/wait/stop`` for the open-weight models' RFT jobs (Bedrock's
OpenAI-compatible API), in process against the local fake endpoint: exit codes, messages, and
no API key in anything printed or logged."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import pytest

from finetuning.backends import bedrock_openai_rft
from finetuning.cli import build_parser, main
from finetuning.cli.job import job_config_from_args
from finetuning.service import ModelFinetuningService
from tests.support.mantle import API_KEY, GRADER, rft_jsonl


@pytest.fixture
def endpoint(mantle, monkeypatch, fake_aws_credentials):
    monkeypatch.setattr(bedrock_openai_rft, "MANTLE_URL", mantle.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return mantle


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "rft.jsonl"
    path.write_bytes(rft_jsonl())
    return str(path)


def create(data: str, *extra: str, region: str = "us-west-2") -> list[str]:
    return [
        "job", "create",
        "--base-model", "openai.gpt-oss-20b",
        "--customization-type", "REINFORCEMENT_FINE_TUNING",
        "--training-data-uri", data,
        "--grader-lambda-arn", GRADER,
        "--rft-hyperparameter", "n_epochs=1",
        "--job-name", "rft-math",
        "--region", region,
        *extra,
    ]  # fmt: skip


def test_create_status_and_wait(endpoint, data, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    assert main(create(data, "--no-wait", "--json")) == 0
    created = json.loads(capsys.readouterr().out)
    url = f"{endpoint.url}/fine_tuning/jobs/ftjob-1"
    assert created["job_arn"] == url and created["status"] == "preprocessing"
    body = endpoint.requests[-1].json()
    assert body["method"]["reinforcement"]["hyperparameters"] == {"n_epochs": 1}

    assert main(["job", "status", url, "--region", "us-west-2"]) == 0
    assert "status:   running" in capsys.readouterr().out
    assert main(["job", "wait", url, "--region", "us-west-2", "--polling-interval", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "status:   completed (succeeded)" in out and "openai.gpt-oss-20b:ft:ftjob-1" in out
    assert API_KEY not in out + caplog.text


def test_no_api_key_exits_3_with_the_hint(endpoint, data, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(create(data, "--no-wait")) == 3
    err = capsys.readouterr().err
    assert "no Amazon Bedrock API key: set OPENAI_API_KEY" in err
    assert endpoint.requests == []


def test_a_rejected_key_exits_3_and_a_denied_call_1(endpoint, data, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "expired-key")
    assert main(create(data, "--no-wait")) == 3
    assert "rejected the API key (HTTP 401" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    endpoint.fail_with = (403, {"error": {"message": "not authorized"}})
    assert main(create(data, "--no-wait")) == 1
    assert "ListFiles failed: HTTP 403: not authorized" in capsys.readouterr().err


def test_the_wrong_region_exits_2_before_any_request(endpoint, data, capsys):
    assert main(create(data, "--no-wait", region="us-east-1")) == 2
    err = capsys.readouterr().err
    assert "region: expected us-west-2, where Bedrock reinforcement fine-tunes" in err
    assert "found 'us-east-1'" in err
    assert endpoint.requests == []


def test_the_worked_example_of_docs_bedrock_md_passes_the_checks(fake_aws_credentials):
    """The gpt-oss-20b example in docs/bedrock.md parses and passes every check made before
    a request (its data file is not read)."""
    text = (Path(__file__).parents[3] / "docs/bedrock.md").read_text(encoding="utf-8")
    text = text.replace("\\\n", " ")
    (line,) = [
        line
        for line in text.splitlines()
        if line.startswith("finetune job create --region us-west-2 --base-model openai.gpt-oss")
    ]
    args = build_parser().parse_args(shlex.split(line)[1:])
    service = ModelFinetuningService(region=args.region, platform=None)
    job, _ = service.prepare_job(job_config_from_args(args))
    assert job.backend.value == "bedrock" and job.job_name == "rft-math-oss"
    assert service.open_weight_rft_backend().check(job) == {}

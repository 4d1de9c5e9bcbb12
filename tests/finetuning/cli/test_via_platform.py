"""`finetune job create|list --via-platform` end to end against a moto-backed platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finetuning.cli import main
from finetuning.orchestration.records import JobRecord, JobTable
from tests.support.platform_fakes import JOB_TABLE, Platform, bedrock_manifest


@pytest.fixture
def deployed(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    for name, value in {
        "/llm-finetuning/test/orchestration/state-machine-arn": platform.state_machine_arn,
        "/llm-finetuning/test/orchestration/job-table-name": JOB_TABLE,
    }.items():
        platform.ssm.put_parameter(Name=name, Value=value, Type="String")
    monkeypatch.setenv("FINETUNE_ENVIRONMENT", "test")
    return platform


def test_create_from_flags_starts_one_execution(
    deployed: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = bedrock_manifest()
    argv = [
        "job", "create", "--via-platform", "--json",
        "--job-name", spec["job_name"], "--backend", "bedrock", "--base-model", spec["base_model"],
        "--training-data-uri", spec["training_data_uri"],
    ]  # fmt: skip
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["started"] is True
    described = deployed.sfn.describe_execution(executionArn=first["execution_arn"])
    submitted = json.loads(described["input"])
    assert submitted["source"] == "cli"
    assert main(argv) == 0  # the same spec again: no second execution
    again = json.loads(capsys.readouterr().out)
    assert again["execution_arn"] == first["execution_arn"]
    executions = deployed.sfn.list_executions(stateMachineArn=deployed.state_machine_arn)
    assert len(executions["executions"]) == 1


def test_create_from_manifest_file(
    deployed: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(bedrock_manifest(job_name="from-file")))
    assert main(["job", "create", "--via-platform", "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("started: job ")
    assert "execution: arn:aws:states:" in out


def test_manifest_without_via_platform_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "create", "--manifest", "job.yaml"]) == 2
    assert "--manifest needs --via-platform" in capsys.readouterr().err


def test_missing_platform_is_reported(platform: Platform, capsys) -> None:
    argv = ["job", "list", "--via-platform", "--platform-env", "nowhere"]
    assert main(argv) == 1
    assert "is the 'nowhere' environment of 'llm-finetuning' deployed" in capsys.readouterr().err


def test_list_reads_the_job_table(deployed: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    table = JobTable(deployed.dynamodb, JOB_TABLE)
    table.register(
        JobRecord(
            job_id="job-1",
            job_name="support-bot",
            backend="bedrock",
            base_model="amazon.nova-lite-v1:0:300k",
            spec={},
            created_at="2026-01-01T00:00:00Z",
        )
    )
    assert main(["job", "list", "--via-platform"]) == 0
    out = capsys.readouterr().out
    assert "support-bot" in out and "job-1" in out and "bedrock" in out
    assert main(["job", "list", "--via-platform", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["job_id"] for job in listed["jobs"]] == ["job-1"]

"""``finetune job``, ``finetune throughput`` and ``finetune local`` end to end (moto, Stubber)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from finetuning.cli import main
from finetuning.service import ModelFinetuningService
from tests.support.library import (
    ACCOUNT,
    NOVA_LITE,
    REGION,
    ROLE_ARN,
    conversation,
    put_jsonl,
    write_jsonl,
)

CUSTOM_MODEL = (
    f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdef123456"
)
PT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdef123456"


@pytest.fixture
def data(bucket):
    return put_jsonl(bucket, "data/train.jsonl", [conversation(i) for i in range(10)])


def create_args(train: str, *extra: str) -> list[str]:
    return [
        "job", "create",
        "--training-data-uri", train,
        "--output-uri", "s3://finetune-data-test/output/",
        "--job-name", "cli-job",
        "--base-model", NOVA_LITE,
        "--role-arn", ROLE_ARN,
        "--epoch-count", "3",
        "--learning-rate", "0.00001",
        *extra,
    ]  # fmt: skip


def test_create_writes_the_job_details_file_and_returns_at_once_with_no_wait(
    data, tmp_path, capsys
):
    details = tmp_path / "job.json"
    code = main(create_args(data, "--no-wait", "--json", "--output-file", str(details)))
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(details.read_text())
    assert saved == printed
    assert saved["job_name"] == "cli-job" and saved["status"] == "running"
    assert saved["job_arn"].endswith("model-customization-job/cli-job")
    assert {"model_id", "creation_time", "end_time", "failure_reason"} <= set(saved)
    assert saved["hyperparameters"] == {"epochCount": "3", "learningRate": "0.00001"}
    # The automatic split (default 0.2) made a validation set beside the data.
    assert saved["validation_data_uri"].startswith("s3://finetune-data-test/data/train.split-")


def test_waiting_past_max_wait_time_exits_1_with_a_message(data, capsys):
    code = main(create_args(data, "--max-wait-time", "0"))
    captured = capsys.readouterr()
    assert code == 1
    assert "finetune: timed out: job arn:aws:bedrock" in captured.err
    assert "(last status: running)" in captured.err
    assert "running (InProgress)" in captured.err  # progress shown while waiting


def test_status_needs_only_the_arn(data, capsys):
    main(create_args(data, "--no-wait"))
    capsys.readouterr()
    arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/cli-job"
    assert main(["job", "status", "--job-arn", arn]) == 0
    out = capsys.readouterr().out
    assert "status:   running (InProgress)" in out and "job:      cli-job" in out
    assert main(["job", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["job_name"] for job in listed["jobs"]] == ["cli-job"]
    assert main(["job", "stop", "--job-arn", arn]) == 0
    assert "cancelled (Stopped)" in capsys.readouterr().out


def test_bad_hyperparameters_are_bad_usage_naming_the_field(data, capsys):
    code = main(create_args(data, "--epoch-count", "9", "--no-wait"))
    err = capsys.readouterr().err
    assert code == 2
    assert "finetune: error: hyperparameters.epochCount: expected int from 1 to 5" in err


def test_batch_size_for_nova_lists_the_allowed_hyperparameters(data, capsys):
    assert main(create_args(data, "--batch-size", "1", "--no-wait")) == 2
    err = capsys.readouterr().err
    assert "hyperparameters.batchSize" in err and "learningRateWarmupSteps" in err


def test_unknown_jobs_fail_with_exit_1(aws, capsys):
    arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/missing"
    assert main(["job", "status", "--job-arn", arn]) == 1
    assert "no bedrock job" in capsys.readouterr().err


def test_a_config_file_supplies_base_models_and_presets(data, tmp_path, capsys):
    config = tmp_path / "finetuning.yaml"
    config.write_text(
        "model_finetuning:\n"
        "  base_models:\n"
        f"    nova_lite: arn:aws:bedrock:us-east-1::foundation-model/{NOVA_LITE}\n"
        "  hyperparameters:\n"
        "    default: {epochCount: '2', learningRate: '0.00001'}\n"
    )
    args = [
        "job", "create", "--training-data-uri", data, "--job-name", "from-config",
        "--output-uri", "s3://finetune-data-test/output/", "--role-arn", ROLE_ARN,
        "--base-model", "nova_lite", "--config", str(config), "--no-wait", "--json",
        "--no-validation-split",
    ]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hyperparameters"] == {"epochCount": "2", "learningRate": "0.00001"}
    assert result["validation_data_uri"] is None


# -- throughput -------------------------------------------------------------------------------


@pytest.fixture
def stubbed_bedrock(fake_aws_credentials, monkeypatch):
    client = boto3.client("bedrock", region_name=REGION)
    original = ModelFinetuningService.client
    monkeypatch.setattr(
        ModelFinetuningService,
        "client",
        lambda self, name: client if name == "bedrock" else original(self, name),
    )
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_throughput_from_a_job_details_file(stubbed_bedrock, tmp_path, capsys):
    details = tmp_path / "job.json"
    details.write_text(
        json.dumps(
            {
                "job_arn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/x/abc",
                "job_name": "x",
                "status": "completed",
                "backend": "bedrock",
                "model_id": CUSTOM_MODEL,
            }
        )
    )
    stubbed_bedrock.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        {
            "modelUnits": 1,
            "provisionedModelName": "classifier",
            "modelId": CUSTOM_MODEL,
            "clientRequestToken": ANY,
        },
    )
    args = [
        "throughput", "create", "--job-details-file", str(details),
        "--provisioned-model-name", "classifier", "--model-units", "1",
    ]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"provisioned throughput: {PT_ARN}" in captured.out
    assert "billing: hourly, no commitment" in captured.err


def test_throughput_from_a_job_arn_asks_the_job_for_its_model(stubbed_bedrock, capsys):
    job_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/x/abc"
    stubbed_bedrock.add_response(
        "get_model_customization_job",
        {
            "jobArn": job_arn,
            "jobName": "x",
            "outputModelName": "x-model",
            "outputModelArn": CUSTOM_MODEL,
            "roleArn": ROLE_ARN,
            "status": "Completed",
            "creationTime": datetime(2025, 1, 1, tzinfo=UTC),
            "baseModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{NOVA_LITE}",
            "trainingDataConfig": {"s3Uri": "s3://b/t.jsonl"},
            "validationDataConfig": {"validators": [{"s3Uri": "s3://b/v.jsonl"}]},
            "outputDataConfig": {"s3Uri": "s3://b/out/"},
        },
        {"jobIdentifier": job_arn},
    )
    stubbed_bedrock.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        {
            "modelUnits": 2,
            "provisionedModelName": "classifier",
            "modelId": CUSTOM_MODEL,
            "commitmentDuration": "OneMonth",
            "clientRequestToken": ANY,
        },
    )
    args = [
        "throughput", "create", "--job-arn", job_arn, "--provisioned-model-name", "classifier",
        "--model-units", "2", "--commitment-duration", "OneMonth", "--json",
    ]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["commitment_duration"] == "OneMonth"


def test_throughput_list_status_and_delete(stubbed_bedrock, capsys, monkeypatch):
    summary = {
        "provisionedModelName": "classifier",
        "provisionedModelArn": PT_ARN,
        "modelArn": CUSTOM_MODEL,
        "desiredModelArn": CUSTOM_MODEL,
        "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{NOVA_LITE}",
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "status": "InService",
        "creationTime": datetime(2025, 1, 1, tzinfo=UTC),
        "lastModifiedTime": datetime(2025, 1, 1, tzinfo=UTC),
    }
    stubbed_bedrock.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [summary]},
        {"sortBy": "CreationTime", "sortOrder": "Descending"},
    )
    assert main(["throughput", "list"]) == 0
    assert "InService    1 MU  no commitment" in capsys.readouterr().out
    stubbed_bedrock.add_response(
        "get_provisioned_model_throughput", summary, {"provisionedModelId": PT_ARN}
    )
    assert main(["throughput", "status", "--provisioned-model-arn", PT_ARN]) == 0
    assert "status: InService" in capsys.readouterr().out

    # On a terminal, delete asks first; "n" keeps the throughput (no API call queued).
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["throughput", "delete", "--provisioned-model-arn", PT_ARN]) == 1
    assert "not deleted" in capsys.readouterr().out
    stubbed_bedrock.add_response(
        "delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN}
    )
    assert main(["throughput", "delete", "--provisioned-model-arn", PT_ARN, "--yes"]) == 0
    assert f"deleted: {PT_ARN}" in capsys.readouterr().out


def test_on_demand_takes_no_model_units(stubbed_bedrock, capsys):
    args = [
        "throughput", "create", "--model-id", CUSTOM_MODEL, "--provisioned-model-name", "x",
        "--on-demand", "--model-units", "2",
    ]  # fmt: skip
    assert main(args) == 2
    assert "--on-demand deployments take no --model-units" in capsys.readouterr().err


# -- local ------------------------------------------------------------------------------------


def test_local_submit_status_list_cancel_and_models(tmp_path, base_model_dir, capsys):
    home = tmp_path / "home"
    data = write_jsonl(
        tmp_path / "train.jsonl", [{"prompt": str(i), "completion": "x"} for i in range(5)]
    )
    common = ["--local-home", str(home)]
    args = [
        "local", "submit", "--training-data-uri", str(data), "--base-model", str(base_model_dir),
        "--job-name", "cli-local", "--epoch-count", "1", "--hyperparameter", "max_steps=2",
        *common,
    ]  # fmt: skip
    assert main(args) == 0
    job_id = capsys.readouterr().out.strip()
    assert job_id.startswith("local-")
    assert main(["local", "status", job_id, "--json", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "queued"
    assert status["hyperparameters"] == {"num_train_epochs": "1", "max_steps": "2"}
    assert Path(status["validation_data_uri"]).name.endswith(".validation.jsonl")
    assert main(["local", "list", *common]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["local", "cancel", job_id, *common]) == 0
    assert "cancel requested" in capsys.readouterr().out
    # Cancelling a cancelled job again succeeds, as `job stop` does (docs/cli.md).
    assert main(["local", "cancel", job_id, *common]) == 0
    assert "already cancelled" in capsys.readouterr().out
    assert main(["local", "models", *common]) == 0
    assert capsys.readouterr().out.strip().endswith("no models")
    assert main(["job", "status", "--job-arn", job_id, *common]) == 0  # the job group sees it
    assert "status:   cancelled" in capsys.readouterr().out


def test_job_create_backend_local_waits_and_shows_progress(
    tmp_path, base_model_dir, stand_in_script, capsys, monkeypatch
):
    """With no local service running, ``job create --backend local`` runs the job itself."""
    monkeypatch.setenv("FINETUNE_LOCAL_TRAIN_SCRIPT", str(stand_in_script))
    monkeypatch.setenv("STAND_IN_STEP_SECONDS", "0.3")
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "a", "completion": "b"}] * 3)
    details = tmp_path / "job.json"
    args = [
        "job", "create", "--backend", "local", "--training-data-uri", str(data),
        "--base-model", str(base_model_dir), "--job-name", "cli-run", "--model-name", "cli-run",
        "--hyperparameter", "max_steps=4", "--no-validation-split", "--polling-interval", "0.5",
        "--output-file", str(details), "--local-home", str(tmp_path / "home"),
    ]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert " running " in captured.err and "step 4/4" in captured.err
    assert "finished:" in captured.out and "model:    cli-run" in captured.out
    saved = json.loads(details.read_text())
    assert saved["status"] == "completed" and saved["model_id"] == "cli-run"

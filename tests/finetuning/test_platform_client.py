"""What `finetune job create|list --via-platform` call: discovery, submission, listing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import parse_manifest
from finetuning.orchestration.records import JobRecord, JobStatus, JobTable
from finetuning.platform_client import (
    PlatformClient,
    PlatformNotFoundError,
    build_manifest,
    manifest_from_job_config,
    read_manifest_file,
    source_tarball,
)
from tests.support.platform_fakes import (
    ARTIFACTS_BUCKET,
    JOB_TABLE,
    Platform,
    bedrock_manifest,
    client,
)


@pytest.fixture
def deployed(platform: Platform) -> PlatformClient:
    """The SSM parameters the orchestration stack publishes, in moto."""
    for name, value in {
        "/llm-finetuning/test/orchestration/state-machine-arn": platform.state_machine_arn,
        "/llm-finetuning/test/orchestration/job-table-name": JOB_TABLE,
    }.items():
        platform.ssm.put_parameter(Name=name, Value=value, Type="String")
    return PlatformClient(project="llm-finetuning", environment="test", clients=client)


def test_submit_starts_one_execution_per_spec(platform: Platform, deployed: PlatformClient) -> None:
    spec = bedrock_manifest()
    first = deployed.submit(spec)
    again = deployed.submit(build_manifest(**spec))
    assert first.started and first.job_id == parse_manifest(spec).job_id
    assert again.execution_arn == first.execution_arn
    described = platform.sfn.describe_execution(executionArn=first.execution_arn)
    assert described["name"] == first.job_id
    assert json.loads(described["input"])["source"] == "cli"
    # Once the execution has ended, the same spec is refused a second run.
    platform.sfn.stop_execution(executionArn=first.execution_arn)
    closed = deployed.submit(spec)
    assert closed.started is False and closed.status == "ABORTED"
    assert closed.execution_arn == first.execution_arn


def test_list_and_get_jobs(platform: Platform, deployed: PlatformClient) -> None:
    table = JobTable(platform.dynamodb, JOB_TABLE)
    for index in range(3):
        table.register(
            JobRecord(
                job_id=f"job-{index}",
                job_name=f"job {index}",
                backend="bedrock",
                base_model="amazon.nova-lite-v1:0:300k",
                spec={},
                created_at=f"2026-01-0{index + 1}T00:00:00Z",
            )
        )
    table.finish("job-1", JobStatus.FAILED, failure={"error": "JobFailedError"})
    page = deployed.list_jobs(limit=2)
    assert [job["job_id"] for job in page.jobs] == ["job-2", "job-1"] and page.next_token
    rest = deployed.list_jobs(limit=2, next_token=page.next_token)
    assert [job["job_id"] for job in rest.jobs] == ["job-0"] and rest.next_token is None
    failed = deployed.list_jobs(status="failed")
    assert [job["failure"]["error"] for job in failed.jobs] == ["JobFailedError"]
    assert json.loads(json.dumps(failed.to_dict()))["jobs"][0]["status"] == "failed"
    assert deployed.get_job("job-0").job_name == "job 0"
    assert deployed.get_job("missing") is None


def test_missing_platform_is_explained(platform: Platform) -> None:
    absent = PlatformClient(project="llm-finetuning", environment="nowhere", clients=client)
    with pytest.raises(PlatformNotFoundError, match="/llm-finetuning/nowhere/orchestration/"):
        absent.submit(bedrock_manifest())


def test_manifest_files_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(bedrock_manifest()))
    assert read_manifest_file(path) == build_manifest(**bedrock_manifest(), model_name=None)


def test_manifest_from_the_cli_job_config() -> None:
    cli_config = {  # what finetune job create's flags give (finetuning.cli.job)
        "training_data_uri": bedrock_manifest()["training_data_uri"],
        "validation_data_uri": None,
        "base_model": "amazon.nova-lite-v1:0:300k",
        "job_name": "support-bot",
        "model_name": None,
        "backend": "bedrock",
        "hyperparameters": {"epochCount": 2},
        "tags": {},
        "method": "lora",
        "instance_count": 1,
        "volume_size_gb": 100,
        "use_spot_instances": False,
        "subnet_ids": [],
        "validation_split": None,
    }
    manifest = manifest_from_job_config(cli_config)
    assert manifest.backend.value == "bedrock" and manifest.hyperparameters == {"epochCount": 2}
    assert "instance_count" not in manifest.to_spec()
    with pytest.raises(ManifestError, match="role_arn: the platform sets these"):
        manifest_from_job_config({**cli_config, "role_arn": "arn:aws:iam::1:role/x"})
    with pytest.raises(ManifestError, match="the platform does not split data"):
        manifest_from_job_config({**cli_config, "validation_split": 0.2})
    sagemaker = manifest_from_job_config(
        {
            **cli_config,
            "backend": "sagemaker",
            "base_model": "s3://bucket/models/base/x/",
            "instance_type": "ml.g5.2xlarge",
            "hyperparameters": {"num_train_epochs": 1},
        },
        source_dir_uri="s3://bucket/models/code/abc/sourcedir.tar.gz",
    )
    assert sagemaker.use_spot_instances is True  # the platform's default, not the CLI's
    assert sagemaker.source_dir_uri.endswith("sourcedir.tar.gz")


def test_training_scripts_upload_is_content_addressed(
    platform: Platform, deployed: PlatformClient, tmp_path: Path
) -> None:
    platform.ssm.put_parameter(
        Name="/llm-finetuning/test/buckets/artifacts", Value=ARTIFACTS_BUCKET, Type="String"
    )
    scripts = tmp_path / "training_scripts"
    (scripts / "__pycache__").mkdir(parents=True)
    (scripts / "train.py").write_text("print('train')\n")
    (scripts / "requirements.txt").write_text("transformers\n")
    (scripts / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    first = deployed.upload_training_scripts(scripts)
    assert source_tarball(scripts) == source_tarball(scripts)
    assert deployed.upload_training_scripts(scripts) == first
    assert first.startswith(f"s3://{ARTIFACTS_BUCKET}/models/code/")
    key = first.split("/", 3)[3]
    body = platform.s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = set(archive.getnames())
    # The one archive builder's layout: packages at the root, no root requirements.txt (the
    # isolated job cannot pip install; the platform's training image has the packages).
    assert {"training_scripts/train.py", "training_scripts/requirements.txt"} <= names
    assert {"finetuning/__init__.py", "finetuning/data/formats.py"} <= names
    assert "requirements.txt" not in names and "training_scripts/__pycache__" not in str(names)
    (scripts / "train.py").write_text("print('changed')\n")
    assert deployed.upload_training_scripts(scripts) != first

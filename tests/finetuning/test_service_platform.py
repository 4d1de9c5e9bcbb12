"""Discovery through SSM, ``--create-role``, the automatic validation split and waiting."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from finetuning.discovery import discover_platform
from finetuning.errors import InvalidJobConfigError, WaitTimeoutError
from finetuning.jobs import FinetuningJobConfig, FinetuningJobResult, JobStatus
from finetuning.platform import PlatformParameter, parameter_name
from finetuning.service import ModelFinetuningService
from tests.support.library import ACCOUNT, NOVA_LITE, REGION, conversation, put_jsonl, write_jsonl

KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
PLATFORM = {
    PlatformParameter.DATA_BUCKET: "llm-finetuning-dev-data",
    PlatformParameter.ARTIFACTS_BUCKET: "llm-finetuning-dev-artifacts",
    PlatformParameter.EVALUATION_BUCKET: "llm-finetuning-dev-evaluation",
    PlatformParameter.KMS_KEY_ARN: KMS_KEY,
    PlatformParameter.SAGEMAKER_EXECUTION_ROLE_ARN: f"arn:aws:iam::{ACCOUNT}:role/platform-sm",
    PlatformParameter.BEDROCK_CUSTOMIZATION_ROLE_ARN: f"arn:aws:iam::{ACCOUNT}:role/platform-br",
    PlatformParameter.VPC_ID: "vpc-0123",
    PlatformParameter.TRAINING_SUBNET_IDS: "subnet-0a,subnet-0b",
    PlatformParameter.TRAINING_SECURITY_GROUP_ID: "sg-0abc",
}


@pytest.fixture
def platform(aws):
    ssm = boto3.client("ssm", region_name=REGION)
    for parameter, value in PLATFORM.items():
        ssm.put_parameter(
            Name=parameter_name("llm-finetuning", "dev", parameter), Value=value, Type="String"
        )
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("llm-finetuning-dev-data", "llm-finetuning-dev-artifacts"):
        s3.create_bucket(Bucket=bucket)


def test_discovery_reads_every_parameter(platform):
    found = discover_platform(boto3.client("ssm", region_name=REGION))
    assert found.artifacts_bucket == "llm-finetuning-dev-artifacts"
    assert found.bedrock_role_arn.endswith("role/platform-br")
    assert found.sagemaker_role_arn.endswith("role/platform-sm")
    assert found.subnet_ids == ("subnet-0a", "subnet-0b")
    assert found.security_group_ids == ("sg-0abc",)
    assert found.kms_key_arn == KMS_KEY
    assert found.output_uri("job") == "s3://llm-finetuning-dev-artifacts/models/final/job/"
    assert discover_platform(boto3.client("ssm", region_name=REGION), environment="prod") is None


def test_a_job_needs_only_data_and_a_name_when_the_platform_is_deployed(platform, tmp_path):
    train = put_jsonl(
        "llm-finetuning-dev-data",
        "training-data/processed/train.jsonl",
        [conversation(i) for i in range(10)],
    )
    with ModelFinetuningService(region=REGION) as service:
        result = service.create_finetuning_job(
            {"training_data_uri": train, "job_name": "x", "base_model": NOVA_LITE}
        )
    from moto.bedrock.models import bedrock_backends

    job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs["x"]
    assert job.role_arn == PLATFORM[PlatformParameter.BEDROCK_CUSTOMIZATION_ROLE_ARN]
    assert job.output_data_config == {"s3Uri": "s3://llm-finetuning-dev-artifacts/models/final/x/"}
    assert job.custom_model_kms_key_id == KMS_KEY
    assert job.vpc_config == {
        "subnetIds": ["subnet-0a", "subnet-0b"],
        "securityGroupIds": ["sg-0abc"],
    }
    # The automatic split put both parts beside the input.
    assert job.training_data_config["s3Uri"].startswith(
        "s3://llm-finetuning-dev-data/training-data/processed/train.split-"
    )
    assert result.validation_data_uri.endswith(".validation.jsonl")


def test_the_cli_needs_no_arn_with_the_platform(platform, capsys):
    from finetuning.cli import main

    train = put_jsonl(
        "llm-finetuning-dev-data",
        "training-data/processed/cli.jsonl",
        [conversation(i) for i in range(10)],
    )
    args = ["job", "create", "--training-data-uri", train, "--job-name", "x", "--no-wait"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output_uri"] == "s3://llm-finetuning-dev-artifacts/models/final/x/"
    assert result["base_model"].endswith("foundation-model/amazon.nova-lite-v1:0:300k")
    from moto.bedrock.models import bedrock_backends

    job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs["x"]
    assert job.role_arn == PLATFORM[PlatformParameter.BEDROCK_CUSTOMIZATION_ROLE_ARN]
    # Another environment name finds no platform: the missing output location is bad usage.
    assert main([*args, "--platform-env", "prod"]) == 2
    assert "no deployed platform found under /llm-finetuning/prod/" in capsys.readouterr().err


def test_flags_win_over_the_platform(platform):
    train = put_jsonl(
        "llm-finetuning-dev-data", "training-data/processed/t.jsonl", [conversation(1)] * 3
    )
    role = f"arn:aws:iam::{ACCOUNT}:role/mine"
    with ModelFinetuningService(region=REGION) as service:
        service.create_finetuning_job(
            {
                "training_data_uri": train,
                "job_name": "y",
                "base_model": NOVA_LITE,
                "role_arn": role,
                "output_uri": "s3://llm-finetuning-dev-artifacts/models/final/custom/",
                "validation_split": None,
            }
        )
    from moto.bedrock.models import bedrock_backends

    job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs["y"]
    assert job.role_arn == role
    assert job.output_data_config["s3Uri"].endswith("/models/final/custom/")
    # Both given: nothing was looked up, so no platform key or network came along.
    assert job.custom_model_kms_key_id is None and job.vpc_config is None


# -- --create-role ------------------------------------------------------------------------------


def test_create_role_makes_a_scoped_role_and_reuses_it(service, bucket):
    train = put_jsonl(bucket, "data/train.jsonl", [conversation(i) for i in range(4)])
    config = {
        "training_data_uri": train,
        "output_uri": f"s3://{bucket}/out/",
        "job_name": "with-role",
        "base_model": NOVA_LITE,
        "validation_split": None,
    }
    result = service.create_finetuning_job(config, create_role=True)
    from moto.bedrock.models import bedrock_backends

    role_arn = bedrock_backends[ACCOUNT][REGION].model_customization_jobs["with-role"].role_arn
    name = role_arn.rsplit("/", 1)[1]
    iam = boto3.client("iam", region_name=REGION)
    role = iam.get_role(RoleName=name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == (
        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/*"
    )
    policy = iam.get_role_policy(RoleName=name, PolicyName="finetuning-job-access")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["ReadJobData"]["Resource"] == [f"arn:aws:s3:::{bucket}/data/*"]
    assert statements["WriteJobOutputs"]["Resource"] == [f"arn:aws:s3:::{bucket}/out/*"]
    assert all("*" not in action for s in statements.values() for action in s["Action"])
    assert result.job_name == "with-role"
    # A second job over the same locations reuses the role.
    service.create_finetuning_job({**config, "job_name": "again"}, create_role=True)
    roles = iam.list_roles(PathPrefix="/finetuning/")["Roles"]
    assert [r["RoleName"] for r in roles] == [name]


def test_create_role_retries_while_the_new_role_propagates(service, bucket, monkeypatch):
    train = put_jsonl(bucket, "data/train.jsonl", [conversation(i) for i in range(4)])
    from finetuning.backends.bedrock import BedrockBackend

    original = BedrockBackend.create
    calls = []

    def not_yet(self, config, hyperparameters):
        calls.append(config.role_arn)
        if len(calls) < 3:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "Could not assume the provided role: " + config.role_arn,
                    }
                },
                "CreateModelCustomizationJob",
            )
        return original(self, config, hyperparameters)

    monkeypatch.setattr(BedrockBackend, "create", not_yet)
    result = service.create_finetuning_job(
        {
            "training_data_uri": train,
            "output_uri": f"s3://{bucket}/out/",
            "job_name": "propagating",
            "base_model": NOVA_LITE,
            "validation_split": None,
        },
        create_role=True,
    )
    assert len(calls) == 3 and result.job_name == "propagating"


def test_sagemaker_roles_trust_sagemaker_and_scope_the_image_registry(aws):
    from finetuning.backends.roles import role_documents

    config = FinetuningJobConfig(
        backend="sagemaker",
        training_data_uri="s3://data-bucket/training-data/processed/train.jsonl",
        output_uri="s3://artifacts-bucket/models/final/job/",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        kms_key_id=KMS_KEY,
        subnet_ids=["subnet-0a"],
        security_group_ids=["sg-01"],
    )
    trust, permissions = role_documents(config, ACCOUNT, REGION)
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    sids = {s["Sid"]: s for s in permissions["Statement"]}
    assert sids["PullTrainingImage"]["Resource"] == (
        "arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-training"
    )
    assert sids["UseJobKey"]["Resource"] == KMS_KEY
    assert (
        "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a"
        in (sids["ManageJobNetworkInterfaces"]["Resource"])
    )


# -- automatic validation split -----------------------------------------------------------------


def test_the_local_split_writes_new_files_and_never_touches_the_input(tmp_path):
    from finetuning.backends.data_split import split_beside

    source = write_jsonl(
        tmp_path / "train.jsonl", [{"prompt": str(i), "completion": "x"} for i in range(10)]
    )
    before = source.read_bytes()
    parts = split_beside(str(source), 0.2)
    assert source.read_bytes() == before
    train, validation = Path(parts.training_uri), Path(parts.validation_uri)
    assert train.parent == validation.parent == tmp_path
    assert train.name.startswith("train.split-") and train.name.endswith(".train.jsonl")
    assert (parts.training_records, parts.validation_records) == (8, 2)
    lines = train.read_text().splitlines() + validation.read_text().splitlines()
    assert sorted(lines) == sorted(before.decode().splitlines())
    assert parts.written
    again = split_beside(str(source), 0.2)
    assert again == type(parts)(**{**parts.__dict__, "written": False})
    other = split_beside(str(source), 0.3)
    assert other.training_uri != parts.training_uri  # a different split gets different names


def test_the_s3_split_writes_new_objects_beside_the_input(bucket):
    from finetuning.backends.data_split import split_beside

    s3 = boto3.client("s3", region_name=REGION)
    uri = put_jsonl(bucket, "data/train.jsonl", [conversation(i) for i in range(20)])
    original = s3.get_object(Bucket=bucket, Key="data/train.jsonl")["Body"].read()
    parts = split_beside(uri, 0.25, s3_client=s3)
    assert s3.get_object(Bucket=bucket, Key="data/train.jsonl")["Body"].read() == original
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys[0] == "data/train.jsonl" and len(keys) == 3
    assert parts.validation_uri == f"s3://{bucket}/{keys[2]}" and keys[2].endswith(
        ".validation.jsonl"
    )
    validation = s3.get_object(Bucket=bucket, Key=keys[2])["Body"].read().decode().splitlines()
    assert len(validation) == 5
    assert {json.loads(line)["messages"][0]["content"][0]["text"] for line in validation} <= {
        json.loads(line)["messages"][0]["content"][0]["text"]
        for line in original.decode().splitlines()
    }


def test_a_single_record_is_not_split(tmp_path):
    from finetuning.backends.data_split import split_beside

    source = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "a", "completion": "b"}])
    assert split_beside(str(source), 0.2) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jsonl"]


def test_splitting_a_prefix_is_refused(bucket):
    from finetuning.backends.data_split import split_beside

    with pytest.raises(InvalidJobConfigError, match="single JSONL object"):
        split_beside(f"s3://{bucket}/data/", 0.2, s3_client=boto3.client("s3", region_name=REGION))


# -- waiting ------------------------------------------------------------------------------------


class FakeJobs:
    def __init__(self, statuses):
        self.statuses = list(statuses)

    def get(self, identifier):
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return FinetuningJobResult(
            job_arn=identifier, job_name="j", status=JobStatus(status), backend="bedrock"
        )


def make_waiting_service(monkeypatch, statuses):
    now = {"t": 0.0}
    pauses = []

    def sleep(seconds):
        pauses.append(seconds)
        now["t"] += seconds

    service = ModelFinetuningService(
        region=REGION, platform=None, sleep=sleep, clock=lambda: now["t"]
    )
    fake = FakeJobs(statuses)
    monkeypatch.setattr(service, "backend", lambda backend: fake)
    return service, pauses


def test_waiting_backs_off_with_jitter_up_to_the_polling_interval(
    monkeypatch, fake_aws_credentials
):
    service, pauses = make_waiting_service(monkeypatch, ["running"] * 8 + ["completed"])
    result = service.wait_for_job_completion("job-arn", polling_interval=10)
    assert result.status is JobStatus.COMPLETED
    ceilings = [2, 4, 8, 10, 10, 10, 10, 10]
    assert len(pauses) == len(ceilings)
    for pause, ceiling in zip(pauses, ceilings, strict=True):
        assert ceiling / 2 <= pause <= ceiling


def test_max_wait_time_raises_instead_of_returning(monkeypatch, fake_aws_credentials):
    service, pauses = make_waiting_service(monkeypatch, ["running"])
    with pytest.raises(WaitTimeoutError) as error:
        service.wait_for_job_completion("job-arn", polling_interval=5, max_wait_time=12)
    assert error.value.last.status is JobStatus.RUNNING
    assert sum(pauses) == pytest.approx(12.0)
    assert "did not finish within 12 s (last status: running)" in str(error.value)


@pytest.mark.parametrize(("interval", "max_wait"), [(0, None), (-1, None), (10, -1)])
def test_bad_waiting_arguments_are_refused(monkeypatch, fake_aws_credentials, interval, max_wait):
    service, _ = make_waiting_service(monkeypatch, ["running"])
    with pytest.raises(InvalidJobConfigError):
        service.wait_for_job_completion(
            "job-arn", polling_interval=interval, max_wait_time=max_wait
        )

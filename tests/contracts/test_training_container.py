"""The training container contract: the code archive and the CreateTrainingJob request that
each path sends, run by the real SageMaker training toolkit (tests/support/training_toolkit.py)
under network isolation, must train and write a model to /opt/ml/model.

Paths: the library's SageMaker backend (``SageMakerBackend.create``), and the platform
(``finetune job create --via-platform``: ``PlatformClient.upload_training_scripts`` plus the
start function's request builder, ``finetuning.orchestration.sagemaker.training_request``).
Both run against moto; the request is taken as botocore sends it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from finetuning.backends.sagemaker import SageMakerBackend
from finetuning.jobs import FinetuningJobConfig
from finetuning.orchestration import sagemaker as platform_sagemaker
from finetuning.orchestration.environment import Environment
from finetuning.platform import PlatformParameter, parameter_name
from finetuning.platform_client import PlatformClient, manifest_from_job_config
from tests.support.platform_fakes import ARTIFACTS_BUCKET, DATA_BUCKET, function_environment
from tests.support.training_toolkit import ToolkitRun, run_training_container

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
# What train.py needs to finish in seconds on the tiny model; sent as the user would.
QUICK = {"max_steps": 2, "max_seq_length": 64, "logging_steps": 1, "save_steps": 50}
# A platform training image (containers/training): the packages are installed there.
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:training"


@pytest.fixture(scope="module")
def tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A random-config Llama and its tokenizer, as the files of a model folder."""
    from finetuning.testing import make_tiny_llama

    folder = make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def _records(count: int = 8) -> bytes:
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"The answer is {2 * i}."},
            ]
        }
        for i in range(count)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET):
            s3.create_bucket(Bucket=bucket)
        yield s3


def _put_inputs(s3: Any, model: dict[str, bytes]) -> tuple[str, str]:
    """The training data and the base model folder in S3; returns their URIs."""
    train_key = "training-data/processed/tiny/train.jsonl"
    s3.put_object(Bucket=DATA_BUCKET, Key=train_key, Body=_records())
    for name, body in model.items():
        s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=f"models/base/tiny/{name}", Body=body)
    return f"s3://{DATA_BUCKET}/{train_key}", f"s3://{ARTIFACTS_BUCKET}/models/base/tiny/"


def _s3_objects(s3: Any) -> dict[str, bytes]:
    objects = {}
    for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[f"s3://{bucket}/{item['Key']}"] = body
    return objects


def _sent_requests(client: Any) -> list[dict[str, Any]]:
    """CreateTrainingJob parameters as botocore sends them."""
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(json.loads(json.dumps(params))),
    )
    return sent


def _assert_trained(run: ToolkitRun) -> None:
    assert run.returncode == 0, f"toolkit exit {run.returncode}:\n{run.output[-6000:]}"
    assert run.failure is None
    written = {p.name for p in run.model_dir.rglob("*") if p.is_file()}
    assert "adapter_config.json" in written or "config.json" in written, sorted(written)
    assert any(name.endswith(".safetensors") for name in written), sorted(written)
    # The toolkit ran the script from the archive, with the hyperparameters as arguments.
    assert "training_scripts/train.py" in run.output


def test_library_sagemaker_job_trains_in_the_toolkit(
    aws: Any, tiny_model_files: dict[str, bytes], tmp_path: Path
) -> None:
    train_uri, model_uri = _put_inputs(aws, tiny_model_files)
    client = boto3.client("sagemaker", region_name=REGION)
    sent = _sent_requests(client)
    backend = SageMakerBackend(client, aws, REGION)
    config = FinetuningJobConfig(
        backend="sagemaker",
        job_name="tiny-lora",
        base_model=model_uri,
        training_data_uri=train_uri,
        output_uri=f"s3://{ARTIFACTS_BUCKET}/models/final/",
        role_arn=ROLE,
        instance_type="ml.g5.2xlarge",
        validation_split=None,
        enable_network_isolation=True,
        image_uri=IMAGE,
        hyperparameters=QUICK,
    )
    backend.create(config, backend.check(config))
    (request,) = sent
    run = run_training_container(request, _s3_objects(aws), tmp_path / "opt-ml")
    _assert_trained(run)


def test_platform_sagemaker_job_trains_in_the_toolkit(
    aws: Any, tiny_model_files: dict[str, bytes], tmp_path: Path
) -> None:
    train_uri, model_uri = _put_inputs(aws, tiny_model_files)
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(
        Name=parameter_name("llm-finetuning", "test", PlatformParameter.ARTIFACTS_BUCKET),
        Value=ARTIFACTS_BUCKET,
        Type="String",
    )
    client = PlatformClient(
        project="llm-finetuning",
        environment="test",
        clients=lambda service: boto3.client(service, region_name=REGION),
    )
    # What `finetune job create --via-platform --backend sagemaker` does (finetuning/cli/job.py).
    code = client.upload_training_scripts(Path(__file__).resolve().parents[2] / "training_scripts")
    manifest = manifest_from_job_config(
        {
            "backend": "sagemaker",
            "job_name": "tiny-lora",
            "base_model": model_uri,
            "training_data_uri": train_uri,
            "hyperparameters": QUICK,
        },
        source_dir_uri=code,
    )
    # The start function's request builder, and the call it makes.
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sent = _sent_requests(sagemaker)
    env = Environment(function_environment())
    request = platform_sagemaker.training_request(manifest, manifest.job_id, env)
    platform_sagemaker.start(sagemaker, request)
    (sent_request,) = sent
    assert sent_request["EnableNetworkIsolation"] is True
    run = run_training_container(sent_request, _s3_objects(aws), tmp_path / "opt-ml")
    _assert_trained(run)

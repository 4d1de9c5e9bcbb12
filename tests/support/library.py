"""Fixtures for the library, backend, local service and CLI tests."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
NOVA_LITE = "amazon.nova-lite-v1:0:300k"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/BedrockFinetuningRole"


def _job_name(identifier: str) -> str:
    """moto keys jobs by name and does not URL-decode ARNs in the request path, so a
    GetModelCustomizationJob by ARN (which real Bedrock accepts) misses; map its own ARNs
    (``.../model-customization-job/<name>``) back to the name."""
    identifier = unquote(identifier)
    return identifier.rsplit("model-customization-job/", 1)[-1]


@pytest.fixture
def aws(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS call, with its Bedrock ARN lookups fixed (see ``_job_name``)."""
    from moto import mock_aws
    from moto.bedrock.models import BedrockBackend

    get = BedrockBackend.get_model_customization_job
    stop = BedrockBackend.stop_model_customization_job
    monkeypatch.setattr(
        BedrockBackend,
        "get_model_customization_job",
        lambda self, job_identifier: get(self, _job_name(job_identifier)),
    )
    monkeypatch.setattr(
        BedrockBackend,
        "stop_model_customization_job",
        lambda self, job_identifier: stop(self, _job_name(job_identifier)),
    )
    monkeypatch.setenv("AWS_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def bucket(aws: None) -> str:
    name = "finetune-data-test"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    return name


def put_jsonl(bucket: str, key: str, records: list[dict]) -> str:
    body = "".join(json.dumps(record) + "\n" for record in records)
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def conversation(index: int) -> dict:
    return {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Classify the document."}],
        "messages": [
            {"role": "user", "content": [{"text": f"Document {index}: invoice total {index}"}]},
            {"role": "assistant", "content": [{"text": "invoice" if index % 2 else "letter"}]},
        ],
    }


@pytest.fixture
def service(aws: None, tmp_path: Path):
    from finetuning.local.service import LocalJobService
    from finetuning.service import ModelFinetuningService

    svc = ModelFinetuningService(
        region=REGION,
        platform=None,
        local_service=LocalJobService(tmp_path / "local-home"),
        sleep=lambda seconds: None,
    )
    yield svc
    svc.close()


# -- the local service's stand-in training script (a test double for train.py) ---------------

STAND_IN = textwrap.dedent(
    '''
    """Test double for training_scripts/train.py: same flags, same output lines and files.

    What it does is read from the first training record's "stand_in" field: "train"
    (default), "crash" (exit 1 after one step), "hang" (train slowly until stopped) or
    "stubborn" (like hang, but ignores SIGTERM so only SIGKILL stops it).
    """
    import argparse, json, os, signal, sys, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    for flag in ("model_name_or_path", "train_file", "validation_file", "output_dir", "method"):
        parser.add_argument(f"--{flag}")
    parser.add_argument("--max_steps", type=int, default=4)
    parser.add_argument("--num_train_epochs", type=float, default=1)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--per_device_train_batch_size", type=int, default=1)
    args = parser.parse_args()
    first = json.loads(Path(args.train_file).read_text().splitlines()[0])
    mode = first.get("stand_in", "train")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "started").write_text(str(time.time()))
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        def on_term(signum, frame):
            print("stopping: SIGTERM received, checkpoint saved", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, on_term)
    steps = 10_000 if mode in ("hang", "stubborn") else args.max_steps
    for step in range(1, steps + 1):
        time.sleep(float(os.environ.get("STAND_IN_STEP_SECONDS", "0.05")))
        print(f"progress: step={step}/{steps}", flush=True)
        loss = 2.0 / step
        print(f"metrics: step={step} epoch={step / steps:.4f} train_loss={loss:.4f}", flush=True)
        if mode == "crash":
            error = "error: RuntimeError: simulated crash in the training loop"
            print(error, file=sys.stderr, flush=True)
            sys.exit(1)
    (out / "config.json").write_text("{}")
    metrics = {"train_loss": 2.0 / steps, "global_step": steps, "max_steps": steps}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "finished").write_text(str(time.time()))
    print(f"done: outputs in {out}", flush=True)
    '''
)


@pytest.fixture
def stand_in_script(tmp_path: Path) -> Path:
    path = tmp_path / "stand_in_train.py"
    path.write_text(STAND_IN)
    return path


@pytest.fixture
def base_model_dir(tmp_path: Path) -> Path:
    """A directory the registry accepts as a model (it has a config.json)."""
    path = tmp_path / "base-model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.fixture
def python() -> str:
    return sys.executable

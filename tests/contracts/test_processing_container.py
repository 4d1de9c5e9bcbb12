"""The Processing container contract: the evaluation image's entry point, run as the user its
Dockerfile sets, on the /opt/ml/processing layout that SageMaker builds from the
CreateProcessingJob request the workflow sends (finetuning.orchestration.evaluation_job).

What SageMaker does at job start, and what stands in for it here:
- each ProcessingInput is downloaded to its LocalPath (/opt/ml/processing/input/<name>/), and
  each ProcessingOutput's LocalPath (/opt/ml/processing/output) exists, empty; SageMaker
  creates these folders as root, and a non-root user cannot write them
  (https://github.com/aws/sagemaker-python-sdk/issues/4764,
  https://github.com/aws/sagemaker-python-sdk/pull/4325): here they are made by this process
  with mode 0755, then the job runs as the Dockerfile's user;
- /opt/ml/config/processingjobconfig.json exists (the entry point then writes
  /opt/ml/output/message, which DescribeProcessingJob returns as ExitMessage);
  https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html
- the image's ENTRYPOINT and ENV, with no arguments (AppSpecification has no
  ContainerArguments).

Translation: the tree lives in a temporary folder (tests run in parallel, not always as root),
so the entry point's four folder options point at it; every other path is the default.
The image's user must be root: for any other user the test fails, with the result of a write
into the output folder as that uid when this process is root (a shell runs it: this
virtualenv's interpreter may not be reachable by another uid). The job itself runs as this
process; when that is not root, the folders belong to this process, which is what root sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetuning.orchestration.environment import Environment
from finetuning.orchestration.evaluation_job import (
    config_key,
    evaluation_config,
    processing_job_request,
)
from tests.finetuning.evaluation.test_container import instructions
from tests.support.platform_fakes import DATA_BUCKET, function_environment

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
PROCESSING = "/opt/ml/processing"
JOB_ID = "support-bot-0123456789"
TEST_SET = f"s3://{DATA_BUCKET}/training-data/processed/support/test.jsonl"
RECORDS = [
    {
        "messages": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "hi"},
        ]
    },
    {"prompt": "Question: what is 12 plus 30? Answer:", "completion": "42"},
]


def image_user() -> tuple[str, int]:
    """The Dockerfile's last USER and its uid (root when none is set)."""
    pairs = instructions()
    users = [args for keyword, args in pairs if keyword == "USER"]
    name = users[-1].split(":")[0] if users else "root"
    if name in ("root", "0"):
        return name, 0
    if name.isdigit():
        return name, int(name)
    for keyword, args in pairs:
        match = re.search(rf"useradd\b.*--uid (\d+)\b.*\b{re.escape(name)}\b", args)
        if keyword == "RUN" and match:
            return name, int(match.group(1))
    raise AssertionError(f"USER {name}: no `useradd --uid N ... {name}` in the Dockerfile")


def image_environment() -> dict[str, str]:
    """The Dockerfile's ENV values (``KEY=value`` pairs)."""
    found: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            found |= dict(re.findall(r"(\w+)=(\S+)", args))
    return found


@pytest.fixture(scope="module")
def model_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """model.tar.gz of a fully fine-tuned tiny model, as SageMaker packs /opt/ml/model."""
    from finetuning.testing import make_tiny_llama

    folder = make_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")
    archive = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return archive.read_bytes()


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A folder another uid can reach (pytest's tmp_path is private to this user)."""
    folder = Path(tempfile.mkdtemp(prefix="processing-contract-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _layout(request: dict[str, Any], objects: dict[str, bytes], root: Path) -> None:
    def local(path: str) -> Path:
        assert path.startswith(PROCESSING + "/") or path == PROCESSING
        return root / "processing" / path[len(PROCESSING) :].lstrip("/")

    for item in request["ProcessingInputs"]:
        source = item["S3Input"]
        target = local(source["LocalPath"])
        target.mkdir(parents=True, mode=0o755)
        found = [uri for uri in objects if uri.startswith(source["S3Uri"])]
        assert found, f"input {item['InputName']}: nothing in S3 under {source['S3Uri']}"
        for uri in found:
            (target / uri.rsplit("/", 1)[-1]).write_bytes(objects[uri])
    for output in request["ProcessingOutputConfig"]["Outputs"]:
        local(output["S3Output"]["LocalPath"]).mkdir(parents=True, mode=0o755)
    (root / "config").mkdir(mode=0o755)
    (root / "config" / "processingjobconfig.json").write_text(
        json.dumps({"ProcessingJobName": request["ProcessingJobName"]})
    )
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _probe_write(root: Path, uid: int) -> str:
    """Whether ``uid`` may write the output folder as SageMaker leaves it (checked with
    /bin/sh as that uid when this process is root: this virtualenv's interpreter may not be
    reachable by another uid, the shell is)."""
    if os.getuid() != 0:
        return "was not tried (this process is not root and cannot switch users)"
    output = root / "processing" / "output"
    probe = subprocess.run(
        ["/bin/sh", "-c", 'touch "$1/.probe"', "probe", str(output)],
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0:
        return f"could write {output} (an unexpected permission model)"
    return f"cannot write {output}: {probe.stderr.strip()}"


def test_evaluation_entry_point_runs_as_the_image_user(
    model_archive: bytes, world_readable_tmp: Path
) -> None:
    env = Environment(function_environment())
    model_uri = f"s3://{env.artifacts_bucket}/models/final/{JOB_ID}/output/model.tar.gz"
    plan = {
        "processing": {"model_data_url": model_uri},
        "request": {
            "job_name": JOB_ID,
            "test_set_uri": TEST_SET,
            "inference": {"max_tokens": 3},
            "task": "text",
            "quality_gate": {"min": {"success_rate": 1.0}},
        },
    }
    config = evaluation_config(JOB_ID, plan, env=env)
    config_uri = f"s3://{env.evaluation_bucket}/{config_key(JOB_ID)}"
    request = processing_job_request(JOB_ID, plan, env=env, config_uri=config_uri)
    assert request["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert "ContainerArguments" not in request["AppSpecification"]
    objects = {
        config_uri: json.dumps(config).encode(),
        model_uri: model_archive,
        TEST_SET: "".join(json.dumps(r) + "\n" for r in RECORDS).encode(),
    }
    root = world_readable_tmp / "opt-ml"
    _layout(request, objects, root)

    name, uid = image_user()
    image_env = image_environment()
    entrypoint = next(json.loads(a) for k, a in reversed(instructions()) if k == "ENTRYPOINT")
    assert entrypoint[:2] == ["python", "-m"]
    environment = {
        "PATH": os.environ["PATH"],
        # /opt/program holds the image's copy of finetuning/; here the checkout does.
        **{k: v.replace("/opt/program", str(REPOSITORY_ROOT)) for k, v in image_env.items()},
        "OMP_NUM_THREADS": "1",
        "HOME": str(world_readable_tmp / "home"),
    }
    for key in ("HF_HOME", "MPLCONFIGDIR"):  # the image's /tmp is its own
        if key in environment:
            environment[key] = environment[key].replace("/tmp", str(world_readable_tmp / "tmp"))
    if uid != 0:
        pytest.fail(
            f"the image runs as {name} (uid {uid}); SageMaker creates {PROCESSING}/* as root "
            f"(see the module docstring), and here that user {_probe_write(root, uid)}"
        )
    process = subprocess.run(
        [
            sys.executable,
            *entrypoint[1:],
            "--input-dir",
            str(root / "processing" / "input"),
            "--output-dir",
            str(root / "processing" / "output"),
            "--work-dir",
            str(root / "processing" / "work"),
            "--message-file",
            str(root / "output" / "message"),
        ],
        env=environment,
        cwd=world_readable_tmp,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, (
        f"the evaluation job as {name} (uid {uid}) exited {process.returncode}:\n"
        f"{process.stderr[-4000:]}"
    )
    output = root / "processing" / "output"
    outcome = json.loads((output / "outcome.json").read_text())
    assert outcome["quality_gate_passed"] is True
    assert outcome["evaluation_results_uri"] == f"{config['output_uri']}results.json"
    assert {"results.json", "report.html", "report.md"} <= {p.name for p in output.iterdir()}
    assert (root / "output" / "message").read_text() == outcome["reason"]

"""A SageMaker training container, as far as it can be built without AWS: the real training
toolkit (PyPI ``sagemaker-training``, the one the Hugging Face and PyTorch DLCs run) started
by its own entry point on an ``/opt/ml`` tree built from a CreateTrainingJob request.

What SageMaker does before ``docker run <image> train``, and what stands in for it here:
- ``/opt/ml/input/config/hyperparameters.json``: ``HyperParameters`` exactly as the request
  sent them (string values, JSON-encoded by our code);
- ``inputdataconfig.json`` and ``resourceconfig.json`` for one instance (``algo-1``);
- every S3 channel downloaded under ``/opt/ml/input/data/<channel>/`` (File mode), from the
  objects the code under test put in (moto's) S3;
- the request's ``Environment`` as the container's environment;
- ``EnableNetworkIsolation``: no package index and no AWS endpoint reachable (pip is pointed
  at a closed port with ``PIP_NO_INDEX``; the Hub is offline).
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage.html

One translation: the tree lives in a temporary folder, not at ``/opt/ml`` (tests run in
parallel and without root), so the toolkit gets ``SAGEMAKER_BASE_DIR`` (its own switch for
this, ``sagemaker_training.environment.BASE_PATH_ENV``) and every ``/opt/ml`` prefix in the
request's values is rewritten to that folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAGEMAKER_ROOT = "/opt/ml"
HOST = "algo-1"
# The toolkit waits until every host name resolves (DNS of the training cluster); there is no
# algo-1 here. The toolkit's own switch for a single local container skips only that wait.
SKIP_HOST_RESOLUTION = {"SM_STUDIO_LOCAL_MODE": "true"}
# Network isolation: nothing to install from, nothing to call.
NO_NETWORK = {
    "PIP_NO_INDEX": "1",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_FIND_LINKS": "",
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "*",
}


REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# The training image has the toolkit and the ML packages but not this project: only the code
# archive brings training_scripts and finetuning. This virtualenv has the project installed
# (editable), which would hide an archive that lacks them, so every Python process of the
# run starts with this sitecustomize, which takes the project back off the import path.
_IMAGE_SITE = """
import sys
_project = {project!r}
sys.path[:] = [p for p in sys.path if p.rstrip("/") != _project]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
for _name in [n for n in sys.modules if n.split(".")[0] in ("finetuning", "training_scripts")]:
    del sys.modules[_name]
"""


def image_site(folder: Path) -> Path:
    """A folder whose sitecustomize hides the project's own installation (see above)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_IMAGE_SITE.format(project=str(REPOSITORY_ROOT)))
    return folder


@dataclass(frozen=True)
class ToolkitRun:
    returncode: int
    output: str
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.is_file() else None


def _local(value: str, root: Path) -> str:
    return value.replace(SAGEMAKER_ROOT, str(root)) if isinstance(value, str) else value


def _download_channel(uri: str, objects: Mapping[str, bytes], target: Path) -> None:
    """S3Prefix channel in File mode: every object under the prefix, keyed by the rest of its
    key (an object named exactly by the prefix keeps its file name)."""
    target.mkdir(parents=True, exist_ok=True)
    found = [key for key in objects if key.startswith(uri)]
    assert found, f"channel {target.name}: nothing in S3 under {uri}"
    for key in found:
        relative = key[len(uri) :].lstrip("/") or key.rsplit("/", 1)[-1]
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(objects[key])


def build_layout(request: Mapping[str, Any], objects: Mapping[str, bytes], root: Path) -> None:
    """The container's ``/opt/ml`` as SageMaker writes it for ``request``, under ``root``."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    hyperparameters = {k: _local(v, root) for k, v in request["HyperParameters"].items()}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {}
    for channel in request["InputDataConfig"]:
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        channels[name] = {
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": source["S3DataDistributionType"],
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            channels[name]["ContentType"] = channel["ContentType"]
        _download_channel(source["S3Uri"], objects, root / "input" / "data" / name)
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    resources = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    for folder in ("model", "output/data", "code"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def run_training_container(
    request: Mapping[str, Any], objects: Mapping[str, bytes], root: Path, *, timeout: float = 300
) -> ToolkitRun:
    """Build the layout and run the toolkit's ``train`` entry point
    (``sagemaker_training.cli.train:main``, the console script the DLCs start)."""
    assert request["EnableNetworkIsolation"] is True, "these runs model isolated jobs only"
    build_layout(request, objects, root)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SM_", "PIP_", "SAGEMAKER_", "PYTHONPATH"))
    }
    environment |= {k: _local(v, root) for k, v in request.get("Environment", {}).items()}
    site = str(image_site(root.parent / f"{root.name}-image-site"))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [environment.get("PYTHONPATH"), site]))
    environment |= NO_NETWORK | SKIP_HOST_RESOLUTION
    environment["SAGEMAKER_BASE_DIR"] = str(root)
    environment["AWS_REGION"] = json.loads(request["HyperParameters"]["sagemaker_region"])
    # Each container has its own /tmp (train.py keeps checkpoints there without a
    # CheckpointConfig; /opt/ml/checkpoints is an absolute path this layout cannot provide).
    tmp = root.parent / f"{root.name}-tmp"
    tmp.mkdir(exist_ok=True)
    environment["TMPDIR"] = str(tmp)
    # One thread: the suite runs two workers on two cores.
    environment |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.run(
        [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"],
        env=environment,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ToolkitRun(process.returncode, process.stdout + process.stderr, root)

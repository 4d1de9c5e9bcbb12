"""The platform's inference image (containers/inference) serves approved models on the
versions that trained them and that the inference contract test serves inference.py with: its
pins cannot drift from the project's, the image it extends is the one
finetuning.approved_model_deployment names and is new enough for them, and the toolkit
imports under transformers 5 through the same shim the contract test runs. Building it needs
Docker and a login to the Deep Learning Containers registry, which the test machines do not
have (docs/contracts.md, "Containers")."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from finetuning.approved_model_deployment import (
    DEFAULT_INFERENCE_IMAGE_TAG,
    HF_INFERENCE_REPOSITORY,
    HUGGINGFACE_INFERENCE_IMAGE,
)
from stacks import container_images
from tests.finetuning.evaluation.test_container import pins

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "containers" / "inference"
DOCKERFILE = CONTAINER / "Dockerfile"
SHIM = CONTAINER / "transformers5_compat.py"
PROJECT_PINS = ("requirements-ml.txt", "requirements-dev.txt", "requirements.txt")
# transformers 5.x disables PyTorch below 2.6 ("PyTorch >= 2.6 is required", in
# transformers/utils/import_utils.py of 5.23.0): the DLC's torch must be at least that.
TRANSFORMERS_MIN_TORCH = Version("2.6")


def _instructions() -> list[tuple[str, str]]:
    joined, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    return [(line.split(" ", 1)[0].upper(), line.split(" ", 1)[1].strip()) for line in joined]


def _copies() -> dict[str, str]:
    copies = {}
    for keyword, args in _instructions():
        if keyword == "COPY":
            source, destination = [w for w in shlex.split(args) if not w.startswith("--")]
            copies[destination] = source
    return copies


def test_inference_py_packages_are_the_trained_and_tested_versions() -> None:
    image = pins(CONTAINER / "requirements.txt")
    assert "torch" not in image  # the DLC's CUDA build stays
    assert {"transformers", "peft", "safetensors", "tokenizers"} <= set(image)
    project: dict[str, str] = {}
    for name in PROJECT_PINS:
        project |= pins(ROOT / name)
    trained = pins(ROOT / "training_scripts" / "requirements.txt")
    drift = {
        name: f"image {version} != tests {project.get(name)} / training {trained.get(name)}"
        for name, version in image.items()
        if not project.get(name) == trained.get(name) == version
    }
    assert not drift, f"containers/inference/requirements.txt drifted: {drift}"


def test_the_toolkit_is_the_version_the_contract_test_serves_with() -> None:
    toolkit = pins(CONTAINER / "toolkit-requirements.txt")
    tested = pins(ROOT / "requirements-toolkits.txt")
    assert toolkit == {
        "sagemaker-huggingface-inference-toolkit": tested["sagemaker-huggingface-inference-toolkit"]
    }


def test_the_image_extends_the_dlc_serving_names_with_a_torch_transformers_5_accepts() -> None:
    pairs = _instructions()
    arguments = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in pairs if k == "ARG")))
    assert arguments["DLC_TAG"] == DEFAULT_INFERENCE_IMAGE_TAG
    assert arguments["DLC_REGISTRY"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com"
    (base,) = [a for k, a in pairs if k == "FROM"]
    assert base == f"${{DLC_REGISTRY}}/{HF_INFERENCE_REPOSITORY}:${{DLC_TAG}}"
    assert HUGGINGFACE_INFERENCE_IMAGE.endswith(f":{arguments['DLC_TAG']}")
    # DLC tags are <torch>-transformers<version>-<device>-...
    torch_version = Version(DEFAULT_INFERENCE_IMAGE_TAG.split("-", 1)[0])
    assert torch_version >= TRANSFORMERS_MIN_TORCH
    assert "-gpu-" in DEFAULT_INFERENCE_IMAGE_TAG


def test_the_image_installs_the_lists_and_the_shim_and_keeps_the_dlc_entry_point() -> None:
    pairs = _instructions()
    copies = _copies()
    assert copies == {
        "/tmp/inference-requirements.txt": "containers/inference/requirements.txt",
        "/tmp/toolkit-requirements.txt": "containers/inference/toolkit-requirements.txt",
        "/tmp/transformers5_compat.py": "containers/inference/transformers5_compat.py",
    }
    for source in copies.values():
        assert (ROOT / source).is_file()
        assert any(
            source == path or source.startswith(f"{path}/")
            for path in container_images.INFERENCE_CONTEXT
        ), f"{source} is not staged into the build context"
    runs = " ".join(a for k, a in pairs if k == "RUN")
    assert "pip install -r /tmp/inference-requirements.txt" in runs
    assert "pip install --no-deps -r /tmp/toolkit-requirements.txt" in runs
    # The shim is importable from site-packages and a .pth line runs it at interpreter start.
    assert '"${site}/transformers5_compat.py"' in runs
    assert 'echo "import transformers5_compat" > "${site}/transformers5_compat.pth"' in runs
    # SageMaker runs `docker run <image> serve`; the DLC's entry point starts the model server.
    assert not [a for k, a in pairs if k in ("ENTRYPOINT", "CMD", "USER")]
    ignored = (CONTAINER / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{source}" for source in copies.values()} <= set(ignored)


def test_the_toolkit_imports_under_transformers_5_through_the_shim_pth(tmp_path: Path) -> None:
    """As in the image: a fresh interpreter gets a site-packages folder holding the shim and
    its .pth line (``site.addsitedir`` runs .pth lines as interpreter start does), after
    showing that transformers 5 lacks the name the toolkit imports."""
    site = tmp_path / "site"
    site.mkdir()
    (site / SHIM.name).write_bytes(SHIM.read_bytes())
    (site / "transformers5_compat.pth").write_text("import transformers5_compat\n")
    code = "; ".join(
        [
            "import site, transformers.file_utils as f",
            "assert not hasattr(f, 'is_tf_available'), 'transformers 4 is installed'",
            f"site.addsitedir({str(site)!r})",
            "import sagemaker_huggingface_inference_toolkit.transformers_utils as t",
            "assert t.is_tf_available() is False",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]

"""The platform's training image (containers/training) gives isolated jobs the versions that
the tests run train.py with: its pins cannot drift from the project's, and the image it
extends is the one the library and the settings name. Building it needs Docker and a login to
the Deep Learning Containers registry, which the test machines do not have."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from finetuning.backends.sagemaker_images import DEFAULT_TRAINING_IMAGE_TAG, HF_TRAINING_REPOSITORY
from stacks import container_images
from stacks.settings.orchestration import OrchestrationSettings
from tests.finetuning.evaluation.test_container import pins

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "containers" / "training"
DOCKERFILE = CONTAINER / "Dockerfile"
SCRIPT_REQUIREMENTS = ROOT / "training_scripts" / "requirements.txt"
PROJECT_PINS = ("requirements-ml.txt", "requirements-dev.txt", "requirements.txt")
# Installed in the image only: QLoRA's 4-bit kernels need CUDA, which the tests do not have.
CUDA_ONLY = {"bitsandbytes"}


def _project_pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PROJECT_PINS:
        found |= pins(ROOT / name)
    return found


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


def test_train_py_packages_are_the_tested_versions() -> None:
    project = _project_pins()
    image = pins(SCRIPT_REQUIREMENTS)
    assert "torch" not in image  # the DLC's CUDA build stays
    assert {"transformers", "peft", "accelerate"} <= set(image)
    drift = {
        name: f"image {version} != tests {project.get(name)}"
        for name, version in image.items()
        if name not in CUDA_ONLY and project.get(name) != version
    }
    assert not drift, f"training_scripts/requirements.txt drifted from {PROJECT_PINS}: {drift}"


def test_the_toolkit_is_the_version_the_contract_tests_run() -> None:
    toolkit = pins(CONTAINER / "requirements.txt")
    assert toolkit == {
        "sagemaker-training": pins(ROOT / "requirements-dev.txt")["sagemaker-training"]
    }


def test_the_image_extends_the_dlc_the_library_and_settings_name() -> None:
    pairs = _instructions()
    arguments = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in pairs if k == "ARG")))
    assert arguments["DLC_TAG"] == DEFAULT_TRAINING_IMAGE_TAG
    assert OrchestrationSettings().training_image_tag == DEFAULT_TRAINING_IMAGE_TAG
    assert arguments["DLC_REGISTRY"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com"
    (base,) = [a for k, a in pairs if k == "FROM"]
    assert base == f"${{DLC_REGISTRY}}/{HF_TRAINING_REPOSITORY}:${{DLC_TAG}}"


def test_the_image_installs_both_lists_and_leaves_the_entry_point_to_sagemaker() -> None:
    pairs = _instructions()
    copies = {}
    for keyword, args in pairs:
        if keyword == "COPY":
            source, destination = [w for w in shlex.split(args) if not w.startswith("--")]
            copies[destination] = source
    assert set(copies.values()) == {
        "training_scripts/requirements.txt",
        "containers/training/requirements.txt",
    }
    for source in copies.values():
        assert (ROOT / source).is_file()
        assert any(
            source == path or source.startswith(f"{path}/")
            for path in container_images.TRAINING_CONTEXT
        ), f"{source} is not staged into the build context"
    (install,) = [a for k, a in pairs if k == "RUN" and "pip install" in a]
    assert all(f"-r {destination}" in install for destination in copies)
    # SageMaker runs `docker run <image> train`: an ENTRYPOINT would swallow it. The DLC's
    # user (root) stays: SageMaker creates /opt/ml/* as root at job start.
    assert not [a for k, a in pairs if k in ("ENTRYPOINT", "CMD", "USER")]
    ignored = (CONTAINER / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{source}" for source in copies.values()} <= set(ignored)

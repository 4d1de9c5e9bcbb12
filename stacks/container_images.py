"""Container images the platform builds from this repository, as CDK Docker image assets.

``cdk synth`` only stages an image's build context into the cloud assembly; ``cdk deploy``
(or the pipeline's asset stage) builds it with Docker and pushes it to the bootstrap ECR
repository. The build context is staged here from an allowlist, not the repository root,
so synth never walks ``.venv`` or ``node_modules`` and the image's hash changes only when
what goes into it changes.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from stacks.source_digest import add_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGING_ROOT = REPO_ROOT / ".cache" / "image-contexts"
EVALUATION_DOCKERFILE = "containers/evaluation/Dockerfile"
# What the evaluation image's Dockerfile copies, relative to the repository root.
EVALUATION_CONTEXT = ("containers/evaluation", "finetuning")
TRAINING_DOCKERFILE = "containers/training/Dockerfile"
# What the training image's Dockerfile copies: two requirement files, no code (the code
# arrives with each job as sourcedir.tar.gz).
TRAINING_CONTEXT = ("containers/training", "training_scripts/requirements.txt")
INFERENCE_DOCKERFILE = "containers/inference/Dockerfile"
# What the inference image's Dockerfile copies: two requirement files and the toolkit shim
# (the code arrives with each model as code/inference.py in model.tar.gz).
INFERENCE_CONTEXT = ("containers/inference",)


def stage_context(paths: tuple[str, ...], root: Path = REPO_ROOT) -> Path:
    """Copy ``paths`` into a folder named after their content; reuse it when it exists."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for relative in paths:
        source = root / relative
        if not source.exists():
            raise FileNotFoundError(f"cannot stage {source} for an image: it does not exist")
        files += add_tree(digest, source, relative)
    target = STAGING_ROOT / digest.hexdigest()[:16]
    if not target.is_dir():
        partial = target.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for path in files:
            destination = partial / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
        partial.rename(target)
    return target


def evaluation_image(scope: Construct, construct_id: str) -> ecr_assets.DockerImageAsset:
    """The image of the evaluation Processing job (``containers/evaluation/Dockerfile``)."""
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(stage_context(EVALUATION_CONTEXT)),
        file=EVALUATION_DOCKERFILE,
        # SageMaker GPU instances are x86_64.
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def training_image(
    scope: Construct, construct_id: str, *, dlc_tag: str
) -> ecr_assets.DockerImageAsset:
    """The platform's SageMaker training image (``containers/training/Dockerfile``): the
    Hugging Face PyTorch training DLC ``dlc_tag`` with train.py's pinned packages, so that
    network-isolated jobs run on the versions the tests run."""
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(stage_context(TRAINING_CONTEXT)),
        file=TRAINING_DOCKERFILE,
        build_args={"DLC_TAG": dlc_tag},
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def inference_image(
    scope: Construct, construct_id: str, *, dlc_tag: str
) -> ecr_assets.DockerImageAsset:
    """The platform's SageMaker inference image (``containers/inference/Dockerfile``): the
    Hugging Face PyTorch inference DLC ``dlc_tag`` with inference.py's pinned packages, so
    that network-isolated endpoints serve on the versions the tests run."""
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(stage_context(INFERENCE_CONTEXT)),
        file=INFERENCE_DOCKERFILE,
        build_args={"DLC_TAG": dlc_tag},
        # SageMaker GPU instances are x86_64.
        platform=ecr_assets.Platform.LINUX_AMD64,
    )

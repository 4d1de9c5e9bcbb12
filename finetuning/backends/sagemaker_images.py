"""Offline lookup of the Hugging Face PyTorch training Deep Learning Container.

The ``sagemaker`` SDK resolves image URIs from JSON tables it ships, but installing it here
would pull a CUDA build of torch and downgrade pinned packages (``pip install --dry-run
sagemaker`` resolves sagemaker 3.17.0 with torch 2.15.0 and pyarrow 25), and its table has no
transformers 5.x image yet. This module holds the two facts needed instead: the image tag and
the ECR registry account of each region.

Image: PyTorch 2.9.0, transformers 5.3.0, Python 3.12, CUDA 13.0, the newest Hugging Face
training DLC. A job without network isolation gets ``training_scripts/requirements.txt`` as
the code archive's root ``requirements.txt``, which the toolkit installs at job start (the
pinned transformers/peft/accelerate); an isolated job cannot install anything and needs an
image that has them: the platform's training image, ``containers/training/Dockerfile``, which
extends this same tag (docs/training.md, "Images").
https://github.com/aws/deep-learning-containers/releases/tag/v1.0-hf-5.3.0-pt-2.9.0-tr-gpu-py312
https://huggingface.co/docs/sagemaker/reference (Hugging Face DLC table)

Registry accounts per region, as the SDK's table lists them for the Hugging Face images:
https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/image_uri_config/huggingface.json
"""

from __future__ import annotations

from finetuning.errors import InvalidJobConfigError

HF_TRAINING_REPOSITORY = "huggingface-pytorch-training"
DEFAULT_TRAINING_IMAGE_TAG = "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04"

_DLC_ACCOUNT = "763104351884"
REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-1": _DLC_ACCOUNT,
    "ap-northeast-2": _DLC_ACCOUNT,
    "ap-northeast-3": "364406365360",
    "ap-south-1": _DLC_ACCOUNT,
    "ap-southeast-1": _DLC_ACCOUNT,
    "ap-southeast-2": _DLC_ACCOUNT,
    "ap-southeast-3": "907027046896",
    "ca-central-1": _DLC_ACCOUNT,
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": _DLC_ACCOUNT,
    "eu-north-1": _DLC_ACCOUNT,
    "eu-south-1": "692866216735",
    "eu-west-1": _DLC_ACCOUNT,
    "eu-west-2": _DLC_ACCOUNT,
    "eu-west-3": _DLC_ACCOUNT,
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "sa-east-1": _DLC_ACCOUNT,
    "us-east-1": _DLC_ACCOUNT,
    "us-east-2": _DLC_ACCOUNT,
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-west-1": _DLC_ACCOUNT,
    "us-west-2": _DLC_ACCOUNT,
}


def training_image_uri(region: str, tag: str = DEFAULT_TRAINING_IMAGE_TAG) -> str:
    """``<account>.dkr.ecr.<region>.<domain>/huggingface-pytorch-training:<tag>``."""
    account = REGISTRY_ACCOUNTS.get(region)
    if account is None:
        raise InvalidJobConfigError(
            "image_uri",
            "an explicit training image for this region (the built-in table knows "
            + ", ".join(sorted(REGISTRY_ACCOUNTS))
            + ")",
            region,
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{HF_TRAINING_REPOSITORY}:{tag}"

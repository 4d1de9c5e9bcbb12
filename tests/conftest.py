"""Shared test configuration.

Markers (declared in pyproject.toml):
- ``gpu``: needs an NVIDIA GPU; skipped, with that reason, where CUDA is absent.
- ``aws``: needs real AWS credentials; skipped unless FINETUNE_AWS_TESTS=1.
- ``slow``: minutes long; `make test` leaves them out, `make test-slow` runs them.
"""

from __future__ import annotations

import os

import pytest

# Nothing in the suite may reach AWS or a model hub, whatever the developer's shell has.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    no_aws = pytest.mark.skip(reason="needs real AWS credentials; set FINETUNE_AWS_TESTS=1")
    gpu_present = None
    for item in items:
        if "gpu" in item.keywords:
            if gpu_present is None:
                gpu_present = _cuda_available()
            if not gpu_present:
                item.add_marker(no_gpu)
        if "aws" in item.keywords and os.environ.get("FINETUNE_AWS_TESTS") != "1":
            item.add_marker(no_aws)


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that moto accepts and no real account does."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

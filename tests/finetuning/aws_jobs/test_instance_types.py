"""GPUs and instance storage per SageMaker instance type."""

from __future__ import annotations

import pytest

from finetuning.aws_jobs.instance_types import (
    gpus_per_instance,
    has_instance_storage,
    instance_family,
    uses_torchrun,
)


@pytest.mark.parametrize(
    ("instance_type", "gpus"),
    [
        ("ml.g5.2xlarge", 1),
        ("ml.g5.12xlarge", 4),
        ("ml.g6.12xlarge", 4),
        ("ml.g6e.48xlarge", 8),
        ("ml.g6.16xlarge", 1),
        ("ml.p3.8xlarge", 4),
        ("ml.p3.16xlarge", 8),
        ("ml.p5.48xlarge", 8),
        ("ml.c5.12xlarge", 1),  # unknown to the table: one process
    ],
)
def test_gpus_per_instance(instance_type: str, gpus: int) -> None:
    assert gpus_per_instance(instance_type) == gpus
    assert uses_torchrun(instance_type, 1) is (gpus > 1)
    assert uses_torchrun(instance_type, 2) is True
    assert uses_torchrun(instance_type, 2, distributed=False) is False


@pytest.mark.parametrize(
    ("instance_type", "local"),
    [
        ("ml.g4dn.xlarge", True),
        ("ml.g5.2xlarge", True),
        ("ml.g6.12xlarge", True),
        ("ml.g6e.2xlarge", True),
        ("ml.p4d.24xlarge", True),
        ("ml.p5.48xlarge", True),
        ("ml.p3.8xlarge", False),
        ("ml.m5.xlarge", False),
        ("ml.m5d.xlarge", True),
    ],
)
def test_instance_storage(instance_type: str, local: bool) -> None:
    assert has_instance_storage(instance_type) is local


def test_family() -> None:
    assert instance_family("ml.g6e.12xlarge") == "g6e"

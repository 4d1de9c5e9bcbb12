"""Facts about SageMaker training instance types that decide what a request may ask for."""

from __future__ import annotations

import re

# SageMaker instance types: ml.<family>.<size>.
INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)$")
# The one default for training, evaluation and endpoint instances when nothing names one (the
# library, the job manifest, the serving settings and the stacks' TrainingSettings): one
# NVIDIA A10G with 24 GB, see https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html
DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"
# What an instance-type error says was expected (settings, manifest and job config alike).
INSTANCE_TYPE_DESCRIPTION = (
    f"a SageMaker instance type, ml.<family>.<size> such as {DEFAULT_INSTANCE_TYPE}"
)

# GPUs per instance; torchrun starts one process per GPU. The SDK's table for the families it
# lists, https://github.com/aws/sagemaker-python-sdk/blob/master/src/sagemaker/image_uri_config/instance_gpu_info.json
# and the EC2 accelerated computing specifications for g6, g6e, p5e and p5en, which it lacks:
# https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html
GPUS_PER_INSTANCE: dict[str, int] = {
    "ml.p5.48xlarge": 8,
    "ml.p5e.48xlarge": 8,
    "ml.p5en.48xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p3.2xlarge": 1,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    "ml.g4dn.xlarge": 1,
    "ml.g4dn.2xlarge": 1,
    "ml.g4dn.4xlarge": 1,
    "ml.g4dn.8xlarge": 1,
    "ml.g4dn.16xlarge": 1,
    "ml.g4dn.12xlarge": 4,
    "ml.g5.xlarge": 1,
    "ml.g5.2xlarge": 1,
    "ml.g5.4xlarge": 1,
    "ml.g5.8xlarge": 1,
    "ml.g5.16xlarge": 1,
    "ml.g5.12xlarge": 4,
    "ml.g5.24xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.g6.xlarge": 1,
    "ml.g6.2xlarge": 1,
    "ml.g6.4xlarge": 1,
    "ml.g6.8xlarge": 1,
    "ml.g6.16xlarge": 1,
    "ml.g6.12xlarge": 4,
    "ml.g6.24xlarge": 4,
    "ml.g6.48xlarge": 8,
    "ml.g6e.xlarge": 1,
    "ml.g6e.2xlarge": 1,
    "ml.g6e.4xlarge": 1,
    "ml.g6e.8xlarge": 1,
    "ml.g6e.16xlarge": 1,
    "ml.g6e.12xlarge": 4,
    "ml.g6e.24xlarge": 4,
    "ml.g6e.48xlarge": 8,
}

# Families whose ML storage volume is a local NVMe instance store, encrypted by the instance
# hardware: CreateTrainingJob refuses a ResourceConfig.VolumeKmsKeyId and CreateEndpointConfig
# a KmsKeyId for them ("You can't request a VolumeKmsKeyId when using an instance type with
# local storage"), see
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage-tips-considerations.html
# (ml.p4d, ml.g4dn, ml.g5), and the EC2 instance-store table for the others (g6 and g6e have
# instance store volumes, as do p5, p5e and p5en):
# https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-store-volumes.html
INSTANCE_STORE_FAMILIES = frozenset(
    {"g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "m5d", "c5d", "r5d"}
)


def instance_family(instance_type: str) -> str:
    """``ml.g5.2xlarge`` -> ``g5``."""
    return instance_type.split(".")[1]


def gpus_per_instance(instance_type: str) -> int:
    """GPUs of one instance; 1 for a type the table does not know."""
    return GPUS_PER_INSTANCE.get(instance_type, 1)


def uses_torchrun(instance_type: str, instance_count: int, distributed: bool | None = None) -> bool:
    """Whether the job starts train.py with torchrun: as asked, else when it has several GPUs."""
    if distributed is not None:
        return bool(distributed)
    return instance_count > 1 or gpus_per_instance(instance_type) > 1


def has_instance_storage(instance_type: str) -> bool:
    return instance_family(instance_type) in INSTANCE_STORE_FAMILIES

"""The library (``ModelFinetuningService``, the CLI) and the platform's start functions build
their requests with one builder each: the same job gives the same request on both paths."""

from __future__ import annotations

from typing import Any

from finetuning.backends.bedrock import BedrockBackend
from finetuning.backends.sagemaker import SPEC_TAG, SageMakerBackend
from finetuning.jobs import FinetuningJobConfig
from finetuning.orchestration import bedrock, sagemaker, tags
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.manifest import parse_manifest
from tests.support.aws_jobs import assert_valid
from tests.support.platform_fakes import (
    ARTIFACTS_BUCKET,
    BEDROCK_ROLE,
    KEY_ARN,
    PREFIX,
    REGION,
    SAGEMAKER_ROLE,
    TRAINING_IMAGE,
    bedrock_manifest,
    function_environment,
    sagemaker_manifest,
)

ENV = Environment(function_environment())
SUBNETS = ["subnet-0a", "subnet-0b"]
SECURITY_GROUPS = ["sg-0123"]


def without_tags(request: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in request.items() if key != "Tags"}


def test_a_bedrock_job_gives_the_same_request_from_the_library_and_the_function() -> None:
    spec = bedrock_manifest(
        model_name="support-bot-v1",
        validation_data_uri=bedrock_manifest()["training_data_uri"].replace("train", "val"),
        hyperparameters={"epochCount": 2, "learningRate": 0.00001, "learningRateWarmupSteps": 5},
    )
    manifest = parse_manifest(spec)
    job_id = manifest.job_id
    from_function = bedrock.customization_request(manifest, job_id, ENV)

    config = FinetuningJobConfig(
        backend="bedrock",
        job_name=job_id,
        model_name="support-bot-v1",
        base_model=manifest.base_model,
        training_data_uri=manifest.training_data_uri,
        validation_data_uri=manifest.validation_data_uri,
        output_uri=bedrock.output_uri(manifest, ENV, job_id),
        role_arn=BEDROCK_ROLE,
        kms_key_id=KEY_ARN,
        tags=tags.platform_tags(PREFIX, job_id, manifest.tags),
        subnet_ids=SUBNETS,
        security_group_ids=SECURITY_GROUPS,
        client_request_token=job_id,
        hyperparameters=spec["hyperparameters"],
    )
    library = BedrockBackend(client=None)
    from_library = library.build_request(config, library.check(config))

    assert from_library == from_function
    assert from_function["hyperParameters"] == {
        "epochCount": "2",
        "learningRate": "0.00001",
        "learningRateWarmupSteps": "5",
    }
    assert_valid("bedrock", "CreateModelCustomizationJob", from_function)


def test_a_sagemaker_job_gives_the_same_request_from_the_library_and_the_function() -> None:
    spec = sagemaker_manifest(
        entry_point="training_scripts/train.py",
        validation_data_uri=sagemaker_manifest()["training_data_uri"].replace("train", "val"),
        hyperparameters={"num_train_epochs": 1, "learning_rate": 0.0002, "bf16": True},
        tags={"team": "chat"},
    )
    manifest = parse_manifest(spec)
    job_id = manifest.job_id
    from_function = sagemaker.training_request(manifest, job_id, ENV)

    config = FinetuningJobConfig(
        backend="sagemaker",
        job_name=job_id,
        base_model=manifest.base_model,
        training_data_uri=manifest.training_data_uri,
        validation_data_uri=manifest.validation_data_uri,
        output_uri=f"s3://{ARTIFACTS_BUCKET}/models/final/",
        role_arn=SAGEMAKER_ROLE,
        instance_type="ml.g5.2xlarge",
        use_spot_instances=True,
        max_wait_seconds=manifest.wait_seconds,
        checkpoint_uri=f"s3://{ARTIFACTS_BUCKET}/models/checkpoints/{job_id}/",
        kms_key_id=KEY_ARN,
        subnet_ids=SUBNETS,
        security_group_ids=SECURITY_GROUPS,
        enable_network_isolation=True,
        image_uri=TRAINING_IMAGE,
        tags={"team": "chat"},
        hyperparameters=spec["hyperparameters"],
    )
    library = SageMakerBackend(client=None, s3_client=None, region=REGION)
    from_library = library.build_request(
        config, library.check(config), code_uri=manifest.source_dir_uri
    )

    assert without_tags(from_library) == without_tags(from_function)
    # Each path adds its own bookkeeping tags beside the job's own.
    library_tags = tags.from_key_value_list(from_library["Tags"])
    function_tags = tags.from_key_value_list(from_function["Tags"])
    assert library_tags.keys() == {"team", SPEC_TAG}
    assert function_tags == {"team": "chat", tags.PLATFORM: PREFIX, tags.JOB_ID: job_id}
    assert_valid("sagemaker", "CreateTrainingJob", from_library)
    assert_valid("sagemaker", "CreateTrainingJob", from_function)

"""Every validation error: field named, what was expected, what was found; no AWS call made."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from finetuning.errors import HyperparameterError, InvalidJobConfigError
from finetuning.hyperparameters import (
    BEDROCK_FAMILIES,
    CLAUDE_3_HAIKU,
    LLAMA_3,
    NOVA,
    TITAN_TEXT,
    TITAN_TEXT_PREMIER,
    base_model_id,
    family_for_model,
    validate_bedrock_hyperparameters,
)
from finetuning.jobs import Backend, FinetuningJobConfig, FinetuningJobResult, JobStatus
from finetuning.service import ModelFinetuningService
from tests.support.library import NOVA_LITE, ROLE_ARN

VALID = {
    "base_model": NOVA_LITE,
    "training_data_uri": "s3://bucket/data/train.jsonl",
    "validation_data_uri": "s3://bucket/data/validation.jsonl",
    "output_uri": "s3://bucket/output/",
    "role_arn": ROLE_ARN,
    "job_name": "my-job",
}


@pytest.fixture(scope="module")
def offline_service():
    """A service whose clients fail any call: proof that validation makes none.
    (Module-scoped: building six botocore clients takes seconds.)"""
    import boto3

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    service = ModelFinetuningService(session=session, platform=None)
    stubbers = []
    for name in ("bedrock", "sagemaker", "s3", "ssm", "iam", "sts"):
        stubber = Stubber(service.client(name))
        stubber.activate()  # no responses queued: any call raises
        stubbers.append(stubber)
    yield service
    for stubber in stubbers:
        stubber.assert_no_pending_responses()


# -- model families ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "family"),
    [
        ("amazon.nova-micro-v1:0:128k", NOVA),
        ("amazon.nova-lite-v1:0:300k", NOVA),
        ("amazon.nova-pro-v1:0:300k", NOVA),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0:300k", NOVA),
        ("amazon.titan-text-express-v1:0:8k", TITAN_TEXT),
        ("amazon.titan-text-lite-v1:0:4k", TITAN_TEXT),
        ("amazon.titan-text-premier-v1:0:32k", TITAN_TEXT_PREMIER),
        ("meta.llama3-1-8b-instruct-v1:0:128k", LLAMA_3),
        ("meta.llama3-2-90b-instruct-v1:0:128k", LLAMA_3),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", CLAUDE_3_HAIKU),
        (
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/"
            "amazon.nova-lite-v1:0:300k/abcdef123456",
            NOVA,
        ),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", None),
    ],
)
def test_base_models_map_to_their_hyperparameter_family(identifier, family):
    assert family_for_model(identifier) is family


def test_base_model_id_strips_arns():
    assert base_model_id(f"arn:aws:bedrock:us-west-2::foundation-model/{NOVA_LITE}") == NOVA_LITE
    assert base_model_id(NOVA_LITE) == NOVA_LITE


@pytest.mark.parametrize("family", BEDROCK_FAMILIES, ids=lambda f: f.key)
def test_each_familys_documented_defaults_pass_and_bounds_are_inclusive(family):
    assert validate_bedrock_hyperparameters(family, family.defaults()) == family.defaults()
    for spec in family.hyperparameters:
        for edge in (spec.minimum, spec.maximum):
            value = int(edge) if spec.kind is int else edge
            validate_bedrock_hyperparameters(family, {spec.name: value})


@pytest.mark.parametrize("family", BEDROCK_FAMILIES, ids=lambda f: f.key)
def test_each_familys_values_outside_the_range_are_refused(family):
    for spec in family.hyperparameters:
        step = 1 if spec.kind is int else spec.maximum * 0.5 or 0.1
        for bad in (spec.minimum - step, spec.maximum + step):
            value = int(bad) if spec.kind is int else bad
            with pytest.raises(HyperparameterError) as error:
                validate_bedrock_hyperparameters(family, {spec.name: value})
            assert error.value.field == f"hyperparameters.{spec.name}"
            assert family.doc_url in str(error.value)


def test_the_nova_table_as_documented():
    """cm-hp-nova-mm.html: epochCount 1-5 (2), learningRate 1e-6-1e-4 (1e-5),
    learningRateWarmupSteps 0-100 (10); no batchSize."""
    assert NOVA.defaults() == {
        "epochCount": "2",
        "learningRate": "0.00001",
        "learningRateWarmupSteps": "10",
    }
    with pytest.raises(HyperparameterError) as error:
        validate_bedrock_hyperparameters(NOVA, {"batchSize": 1})
    message = str(error.value)
    assert message.startswith("hyperparameters.batchSize: expected one of the Amazon Nova")
    assert "epochCount (int, 1-5)" in message and "learningRateWarmupSteps (int, 0-100)" in message
    assert "unknown hyperparameter" in message


def test_claude_uses_a_learning_rate_multiplier_not_a_learning_rate():
    with pytest.raises(HyperparameterError, match="learningRateMultiplier"):
        validate_bedrock_hyperparameters(CLAUDE_3_HAIKU, {"learningRate": "0.0001"})
    assert validate_bedrock_hyperparameters(
        CLAUDE_3_HAIKU, {"batchSize": "4", "learningRateMultiplier": 2}
    ) == {"batchSize": "4", "learningRateMultiplier": "2"}


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"epochCount": 2.5}, "hyperparameters.epochCount", "an integer"),
        ({"epochCount": True}, "hyperparameters.epochCount", "an integer"),
        ({"epochCount": "two"}, "hyperparameters.epochCount", "an integer"),
        ({"learningRate": "fast"}, "hyperparameters.learningRate", "a number"),
        ({"learningRate": float("nan")}, "hyperparameters.learningRate", "finite"),
        ({"learningRate": [1e-5]}, "hyperparameters.learningRate", "a number"),
    ],
)
def test_wrong_types_are_refused(values, field, expected):
    with pytest.raises(HyperparameterError) as error:
        validate_bedrock_hyperparameters(NOVA, values)
    assert error.value.field == field
    assert expected in str(error.value)


def test_values_become_the_plain_decimal_strings_bedrock_takes():
    assert validate_bedrock_hyperparameters(
        NOVA, {"epochCount": "3", "learningRate": 5e-05, "learningRateWarmupSteps": 0.0}
    ) == {"epochCount": "3", "learningRate": "0.00005", "learningRateWarmupSteps": "0"}


# -- job configs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "found"),
    [
        ({"validation_split": 0}, "validation_split", 0),
        ({"validation_split": 1.0}, "validation_split", 1.0),
        ({"validation_split": -0.1}, "validation_split", -0.1),
        ({"validation_split": "0.2"}, "validation_split", "0.2"),
        ({"method": "adapters"}, "method", "adapters"),
        ({"instance_count": 0}, "instance_count", 0),
        ({"subnet_ids": ["subnet-1"]}, "security_group_ids", ["subnet-1"]),
        ({"tags": {"team": "ml$"}}, "tags.team", "ml$"),
        ({"hyperparameters": 3}, "hyperparameters", "int"),
    ],
)
def test_static_checks_name_the_field(changes, field, found):
    with pytest.raises(InvalidJobConfigError) as error:
        FinetuningJobConfig.from_dict({**VALID, **changes}).check_static()
    assert error.value.field == field
    assert error.value.found == found


def test_unknown_config_fields_list_the_known_ones():
    with pytest.raises(InvalidJobConfigError) as error:
        FinetuningJobConfig.from_dict({**VALID, "epochs": 3})
    assert error.value.field == "job.epochs"
    assert "training_data_uri" in str(error.value) and "unknown field" in str(error.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"base_model": "meta.llama2-13b-v1"}, "base_model"),
        ({"training_data_uri": None}, "training_data_uri"),
        ({"training_data_uri": "https://bucket/train.jsonl"}, "training_data_uri"),
        ({"training_data_uri": "s3://Bucket_Upper/train.jsonl"}, "training_data_uri"),
        ({"training_data_uri": "s3://bucket/my data.jsonl"}, "training_data_uri"),
        ({"validation_data_uri": "s3:/bucket/v.jsonl"}, "validation_data_uri"),
        ({"output_uri": "bucket/output"}, "output_uri"),
        ({"role_arn": "BedrockRole"}, "role_arn"),
        ({"job_name": "my_job"}, "job_name"),
        ({"job_name": "x" * 64}, "job_name"),
        ({"model_name": "my.model"}, "model_name"),
        ({"kms_key_id": "not-a-key"}, "kms_key_id"),
        ({"base_model": "amazon.nova-canvas-v1:0"}, "base_model"),
        ({"model_type": "titan"}, "model_type"),
        ({"model_type": "gpt"}, "model_type"),
        ({"hyperparameters": {"epochCount": 6}}, "hyperparameters.epochCount"),
        ({"hyperparameters": {"epochs": 2}}, "hyperparameters.epochs"),
        ({"customization_type": "DISTILLATION"}, "teacher_model"),
        ({"customization_type": "IMPORTED"}, "customization_type"),
        ({"customization_type": "REINFORCEMENT_FINE_TUNING"}, "base_model"),
        ({"base_model": "amazon.titan-text-lite-v1"}, "base_model"),
    ],
)
def test_bedrock_job_errors_come_before_any_aws_call(offline_service, changes, field):
    config = {**VALID, "backend": "bedrock", **changes}
    with pytest.raises(InvalidJobConfigError) as error:
        offline_service.create_finetuning_job(config)
    assert error.value.field == field, str(error.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"job_name": "my.job"}, "job_name"),
        ({"instance_type": "g5.2xlarge"}, "instance_type"),
        ({"checkpoint_uri": "/tmp/ckpt"}, "checkpoint_uri"),
        ({"max_wait_seconds": 100}, "max_wait_seconds"),
        (
            {"use_spot_instances": True, "max_wait_seconds": 10, "max_run_seconds": 3600},
            "max_wait_seconds",
        ),
        ({"enable_network_isolation": True}, "base_model"),
    ],
)
def test_sagemaker_job_errors_come_before_any_aws_call(offline_service, changes, field):
    config = {
        **VALID,
        "backend": "sagemaker",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
        **changes,
    }
    with pytest.raises(InvalidJobConfigError) as error:
        offline_service.create_finetuning_job(config)
    assert error.value.field == field, str(error.value)


def test_missing_role_and_output_are_reported_after_the_platform_lookup(fake_aws_credentials):
    """Without a platform (platform=None) the missing fields are errors naming them."""
    service = ModelFinetuningService(region="us-east-1", platform=None)
    with pytest.raises(InvalidJobConfigError) as error:
        service.create_finetuning_job({**VALID, "output_uri": None, "validation_split": None})
    assert error.value.field == "output_uri"
    assert "no deployed platform found under /llm-finetuning/dev/" in str(error.value)
    with pytest.raises(InvalidJobConfigError) as error:
        service.create_finetuning_job({**VALID, "role_arn": None, "validation_split": None})
    assert error.value.field == "role_arn"
    assert "--create-role" in str(error.value)


# -- service config -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"finetuning": {}}, "config.finetuning"),
        ({"model_finetuning": {"models": {}}}, "config.model_finetuning.models"),
        ({"model_finetuning": {"base_models": {"lite": 3}}}, "config.model_finetuning.base_models"),
        (
            {"model_finetuning": {"hyperparameters": {"default": [1]}}},
            "config.model_finetuning.hyperparameters",
        ),
        (
            {"model_finetuning": {"local": {"max_concurrent_jobs": 0}}},
            "config.model_finetuning.local.max_concurrent_jobs",
        ),
    ],
)
def test_bad_service_configs_name_the_path(fake_aws_credentials, config, field):
    with pytest.raises(InvalidJobConfigError) as error:
        ModelFinetuningService(region="us-east-1", config=config, platform=None)
    assert error.value.field == field


def test_config_base_models_and_hyperparameter_presets_fill_the_job(offline_service):
    service = ModelFinetuningService(
        region="us-east-1",
        platform=None,
        config={
            "model_finetuning": {
                "base_models": {
                    "nova_lite": f"arn:aws:bedrock:us-east-1::foundation-model/{NOVA_LITE}"
                },
                "hyperparameters": {
                    "default": {"epochCount": "2", "learningRate": "0.00001"},
                    "custom": {"epochCount": "3"},
                },
            }
        },
    )
    job, sources = service.prepare_job({**VALID, "base_model": None, "hyperparameters": "custom"})
    assert job.base_model.endswith(NOVA_LITE)
    assert job.hyperparameters == {"epochCount": "3", "learningRate": "0.00001"}
    assert sources["learningRate"] == "config model_finetuning.hyperparameters.default"
    job, _ = service.prepare_job(
        {**VALID, "base_model": "nova_lite", "hyperparameters": {"epochCount": 4}}
    )
    assert job.base_model.startswith("arn:aws:bedrock") and job.hyperparameters["epochCount"] == 4
    with pytest.raises(InvalidJobConfigError, match="configured preset"):
        service.prepare_job({**VALID, "hyperparameters": "missing"})


def test_a_bad_default_preset_is_reported_with_its_source(fake_aws_credentials):
    service = ModelFinetuningService(
        region="us-east-1",
        platform=None,
        config={"model_finetuning": {"hyperparameters": {"default": {"batchSize": "1"}}}},
    )
    with pytest.raises(HyperparameterError) as error:
        service.prepare_job(VALID)
    assert "from config model_finetuning.hyperparameters.default" in str(error.value)


def test_several_named_base_models_without_a_default_need_a_choice(fake_aws_credentials):
    service = ModelFinetuningService(
        region="us-east-1",
        platform=None,
        config={"model_finetuning": {"base_models": {"a": NOVA_LITE, "b": NOVA_LITE}}},
    )
    with pytest.raises(InvalidJobConfigError, match="configured names"):
        service.prepare_job({**VALID, "base_model": None})


def test_backend_inference_and_default_job_names(offline_service):
    job, _ = offline_service.prepare_job({**VALID, "job_name": None})
    assert job.backend == "bedrock"
    assert job.job_name.startswith("ft-") and len(job.job_name) == 19
    again, _ = offline_service.prepare_job({**VALID, "job_name": None})
    assert again.job_name == job.job_name  # same spec, same name: a retry finds its job
    open_model, _ = offline_service.prepare_job(
        {**VALID, "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "hyperparameters": None}
    )
    assert open_model.backend == "sagemaker" and open_model.instance_type == "ml.g5.2xlarge"


def test_job_details_round_trip_and_reject_incomplete_files():
    result = FinetuningJobResult(
        job_arn="arn:aws:bedrock:us-east-1:123456789012:model-customization-job/x/abc",
        job_name="x",
        status=JobStatus.FAILED,
        backend=Backend.BEDROCK,
        failure_reason="bad data",
    )
    data = result.to_dict()
    assert {
        "job_arn",
        "job_name",
        "status",
        "model_id",
        "creation_time",
        "end_time",
        "failure_reason",
    } <= set(data)
    assert FinetuningJobResult.from_dict(data) == result
    with pytest.raises(InvalidJobConfigError, match=r"job_details\.job_arn"):
        FinetuningJobResult.from_dict({"job_name": "x", "status": "failed"})


def test_a_bedrock_job_without_a_base_model_uses_nova_lite(offline_service):
    job, _ = offline_service.prepare_job({**VALID, "base_model": None})
    assert job.base_model == "amazon.nova-lite-v1:0:300k"


def test_the_public_api_imports_lazily():
    import subprocess
    import sys

    code = (
        "import sys, finetuning\n"
        "assert 'boto3' not in sys.modules and 'finetuning.service' not in sys.modules\n"
        "from finetuning import (ModelFinetuningService, FinetuningJobConfig, "
        "FinetuningJobResult, ProvisionedThroughputConfig, ProvisionedThroughputResult, "
        "JobStatus)\n"
        "assert JobStatus.COMPLETED.is_terminal and finetuning.__version__\n"
        "print(ModelFinetuningService.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "finetuning.service", out.stderr

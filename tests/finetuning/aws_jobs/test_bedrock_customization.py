"""CreateModelCustomizationJob requests and customization job statuses."""

from __future__ import annotations

import pytest

from finetuning.aws_jobs.bedrock_customization import (
    OPEN_WEIGHT_RFT_MODELS,
    CustomizationJobSpec,
    customization_job_request,
    customization_job_status,
    open_weight_rft_refusal,
    rft_model_refusal,
    supports_rft,
)
from finetuning.jobs import JobStatus
from tests.support.aws_jobs import assert_valid

ROLE = "arn:aws:iam::123456789012:role/bedrock"
KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"


def spec(**changes) -> CustomizationJobSpec:
    fields = {
        "job_name": "support-bot-0123456789",
        "custom_model_name": "support-bot-0123456789",
        "role_arn": ROLE,
        "base_model": "amazon.nova-lite-v1:0:300k",
        "training_data_uri": "s3://data-bucket/train.jsonl",
        "output_uri": "s3://artifacts-bucket/models/final/support-bot-0123456789/",
    }
    return CustomizationJobSpec(**{**fields, **changes})


def test_the_smallest_request_has_only_the_required_fields() -> None:
    request = customization_job_request(spec())
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert set(request) == {
        "jobName",
        "customModelName",
        "roleArn",
        "baseModelIdentifier",
        "customizationType",
        "trainingDataConfig",
        "outputDataConfig",
        "hyperParameters",
    }
    assert request["customizationType"] == "FINE_TUNING"


def test_every_optional_field_lands_where_the_api_expects_it() -> None:
    request = customization_job_request(
        spec(
            validation_data_uri="s3://data-bucket/val.jsonl",
            kms_key_id=KEY,
            tags={"team": "ml", "cost-centre": "1234"},
            subnet_ids=("subnet-0a",),
            security_group_ids=("sg-01",),
            client_request_token="support-bot-0123456789",
            hyperparameters={"epochCount": 2, "learningRate": 1e-05, "earlyStop": True},
        )
    )
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert request["validationDataConfig"] == {
        "validators": [{"s3Uri": "s3://data-bucket/val.jsonl"}]
    }
    assert request["customModelKmsKeyId"] == KEY
    expected_tags = [{"key": "cost-centre", "value": "1234"}, {"key": "team", "value": "ml"}]
    assert request["jobTags"] == request["customModelTags"] == expected_tags
    assert request["vpcConfig"] == {"subnetIds": ["subnet-0a"], "securityGroupIds": ["sg-01"]}
    assert request["clientRequestToken"] == "support-bot-0123456789"
    assert request["hyperParameters"] == {
        "epochCount": "2",
        "learningRate": "0.00001",
        "earlyStop": "true",
    }


@pytest.mark.parametrize(
    ("status", "step", "step_status", "expected"),
    [
        ("Completed", None, None, JobStatus.COMPLETED),
        ("Failed", None, None, JobStatus.FAILED),
        ("Stopping", None, None, JobStatus.STOPPING),
        ("Stopped", None, None, JobStatus.CANCELLED),
        # statusDetails is optional: without it nothing says the job is still preparing.
        ("InProgress", None, None, JobStatus.RUNNING),
        ("InProgress", "validationDetails", "InProgress", JobStatus.PREPROCESSING),
        ("InProgress", "dataProcessingDetails", "InProgress", JobStatus.PREPROCESSING),
        ("InProgress", "validationDetails", "Completed", JobStatus.PREPROCESSING),
        ("InProgress", "trainingDetails", "NotStarted", JobStatus.PREPROCESSING),
        ("InProgress", "trainingDetails", "InProgress", JobStatus.RUNNING),
        ("InProgress", "trainingDetails", "Completed", JobStatus.RUNNING),
    ],
)
def test_statuses(
    status: str, step: str | None, step_status: str | None, expected: JobStatus
) -> None:
    details = {step: {"status": step_status}} if step else None
    assert customization_job_status(status, details) is expected


# -- reinforcement fine-tuning and distillation ---------------------------------------------

GRADER = "arn:aws:lambda:us-east-1:123456789012:function:ft-dev-grader"


def test_an_rft_request_carries_the_grader_and_typed_hyperparameters() -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        RftSpec,
        check_rft_hyperparameters,
    )

    hyperparameters = check_rft_hyperparameters(
        {"epochCount": "2", "batchSize": 64, "learningRate": 1e-5, "reasoningEffort": "low"}
    )
    request = customization_job_request(
        spec(
            base_model="amazon.nova-2-lite-v1:0:256k",
            customization_type="REINFORCEMENT_FINE_TUNING",
            rft=RftSpec(grader_lambda_arn=GRADER, hyperparameters=hyperparameters),
        )
    )
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert request["customizationType"] == "REINFORCEMENT_FINE_TUNING"
    assert request["customizationConfig"] == {
        "rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": GRADER}},
            "hyperParameters": {
                "epochCount": 2,
                "batchSize": 64,
                "learningRate": 1e-5,
                "reasoningEffort": "low",
            },
        }
    }
    assert "hyperParameters" not in request  # RFT's live in rftConfig


def test_a_distillation_request_names_the_teacher_and_can_read_invocation_logs() -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        DistillationSpec,
        InvocationLogsSpec,
    )

    request = customization_job_request(
        spec(
            training_data_uri=None,
            customization_type="DISTILLATION",
            distillation=DistillationSpec(
                teacher_model="us.amazon.nova-pro-v1:0", max_response_length=1000
            ),
            invocation_logs=InvocationLogsSpec(
                s3_uri="s3://data-bucket/training-data/raw/logs/", use_prompt_response=True
            ),
        )
    )
    assert_valid("bedrock", "CreateModelCustomizationJob", request)
    assert request["customizationConfig"] == {
        "distillationConfig": {
            "teacherModelConfig": {
                "teacherModelIdentifier": "us.amazon.nova-pro-v1:0",
                "maxResponseLengthForInference": 1000,
            }
        }
    }
    assert request["trainingDataConfig"] == {
        "invocationLogsConfig": {
            "invocationLogSource": {"s3Uri": "s3://data-bucket/training-data/raw/logs/"},
            "usePromptResponse": True,
        }
    }
    assert "hyperParameters" not in request


def test_customization_settings_of_the_wrong_type_are_refused() -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        CustomizationRuleError,
        RftSpec,
    )

    with pytest.raises(CustomizationRuleError, match="REINFORCEMENT_FINE_TUNING"):
        customization_job_request(spec(rft=RftSpec(grader_lambda_arn=GRADER)))
    with pytest.raises(CustomizationRuleError, match="needs a grader"):
        customization_job_request(spec(customization_type="REINFORCEMENT_FINE_TUNING"))
    with pytest.raises(CustomizationRuleError, match="needs a teacher"):
        customization_job_request(spec(customization_type="DISTILLATION"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochCount": 51}, "1 to 50"),
        ({"batchSize": 8}, "16 to 512"),
        ({"learningRate": 0.01}, "1e-07 to 0.001"),
        ({"trainingSamplePerPrompt": 1}, "2 to 16"),
        ({"evalInterval": 0}, "1 to 100"),
        ({"reasoningEffort": "extreme"}, "low, medium, high"),
        ({"epochCount": 1.5}, "an integer"),
        ({"epochCount": True}, "an integer"),
        ({"epochs": 2}, "one of epochCount"),
    ],
)
def test_rft_hyperparameters_are_checked_against_the_api_ranges(values, message) -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        CustomizationRuleError,
        check_rft_hyperparameters,
    )

    with pytest.raises(CustomizationRuleError, match=message):
        check_rft_hyperparameters(values)


def test_rft_ranges_match_the_botocore_service_model() -> None:
    import botocore.session

    from finetuning.aws_jobs.bedrock_customization import RFT_HYPERPARAMETERS

    shape = (
        botocore.session.get_session().get_service_model("bedrock").shape_for("RFTHyperParameters")
    )
    assert {spec.name for spec in RFT_HYPERPARAMETERS} == set(shape.members)
    for spec in RFT_HYPERPARAMETERS:
        member = shape.members[spec.name]
        if "min" in member.metadata and spec.kind is not str:
            assert spec.minimum == member.metadata["min"], spec.name
        if "max" in member.metadata:
            assert spec.maximum == member.metadata["max"], spec.name
        if spec.kind is str:
            assert list(spec.choices) == member.enum


PAIRS_PAGE = "prequisites-model-distillation.html"


@pytest.mark.parametrize(
    ("teacher", "student"),
    [
        ("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0:300k"),
        ("us.amazon.nova-pro-v1:0", "amazon.nova-micro-v1:0:128k"),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
            "amazon.nova-lite-v1:0:300k",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
            "amazon.nova-micro-v1:0:128k",
        ),
        ("meta.llama3-1-405b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0:128k"),
        ("meta.llama3-1-405b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0:128k"),
        ("us.meta.llama3-1-70b-instruct-v1:0", "meta.llama3-2-3b-instruct-v1:0:128k"),
        ("meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0:128k"),
        ("us.meta.llama3-3-70b-instruct-v1:0", "meta.llama3-2-1b-instruct-v1:0:128k"),
    ],
)
def test_distillation_pairs_of_the_docs_table_are_accepted(teacher, student) -> None:
    from finetuning.aws_jobs.bedrock_customization import check_distillation_pair

    check_distillation_pair(teacher, student)


@pytest.mark.parametrize(
    ("teacher", "student", "field", "says"),
    [
        # Not a pair of the table: the refusal names the student's teachers.
        (
            "amazon.nova-pro-v1:0",
            "amazon.nova-pro-v1:0:300k",
            "base_model",
            "no teacher that Bedrock takes now distils 'amazon.nova-pro-v1:0:300k'",
        ),
        (
            "meta.llama3-1-405b-instruct-v1:0",
            "meta.llama3-2-3b-instruct-v1:0:128k",
            "base_model",
            "teachers of 'meta.llama3-2-3b-instruct-v1:0:128k': meta.llama3-1-70b-instruct-v1:0 "
            "or us.meta.llama3-1-70b-instruct-v1:0; us.meta.llama3-3-70b-instruct-v1:0",
        ),
        # The student by its invoke id: the customization id is asked for.
        (
            "amazon.nova-pro-v1:0",
            "amazon.nova-lite-v1:0",
            "base_model",
            "amazon.nova-lite-v1:0:300k",
        ),
        (
            "amazon.nova-lite-v1:0",
            "amazon.nova-micro-v1:0:128k",
            "distillation.teacher_model",
            "teachers of 'amazon.nova-micro-v1:0:128k': amazon.nova-pro-v1:0 or "
            "us.amazon.nova-pro-v1:0",
        ),
        # Providers differ: no pair.
        (
            "amazon.nova-pro-v1:0",
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "base_model",
            "a student of Amazon Nova Pro",
        ),
        # The table's "Inference profile support": profile only, on demand only, US profiles.
        (
            "meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-2-3b-instruct-v1:0:128k",
            "distillation.teacher_model",
            "teaches as us.meta.llama3-3-70b-instruct-v1:0",
        ),
        (
            "us.meta.llama3-1-405b-instruct-v1:0",
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "distillation.teacher_model",
            "teaches as meta.llama3-1-405b-instruct-v1:0 (",
        ),
        (
            "eu.amazon.nova-pro-v1:0",
            "amazon.nova-lite-v1:0:300k",
            "distillation.teacher_model",
            "teaches as amazon.nova-pro-v1:0 or us.amazon.nova-pro-v1:0",
        ),
        # In the table, but not taken now: with the reason, the page and the date.
        (
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic.claude-3-haiku-20240307-v1:0:200k",
            "distillation.teacher_model",
            "Distillation is not currently available for Anthropic models",
        ),
        (
            "us.amazon.nova-premier-v1:0",
            "amazon.nova-lite-v1:0:300k",
            "distillation.teacher_model",
            "end of life on 2026-09-14",
        ),
    ],
)
def test_distillation_refusals_name_the_field_and_the_allowed_teachers(
    teacher, student, field, says
) -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        CustomizationRuleError,
        check_distillation_pair,
    )

    with pytest.raises(CustomizationRuleError) as refused:
        check_distillation_pair(teacher, student)
    assert refused.value.field == field
    assert says in refused.value.message
    assert repr(teacher if field != "base_model" else student) in refused.value.message


def test_the_distillation_table_is_pinned() -> None:
    """Rows of the docs' table (prequisites-model-distillation.html, read 2026-12-05) and the
    US profiles' destination Regions (inference-profiles-support.html)."""
    from finetuning.aws_jobs.bedrock_customization import (
        DISTILLATION_PAIRS,
        DISTILLATION_PAIRS_URL,
        DISTILLATION_TEACHERS,
        distillation_teacher,
    )

    assert DISTILLATION_PAIRS_URL.endswith(PAIRS_PAGE)
    assert [t.model_id for t in DISTILLATION_TEACHERS] == [
        "amazon.nova-pro-v1:0",
        "amazon.nova-premier-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "meta.llama3-1-405b-instruct-v1:0",
        "meta.llama3-1-70b-instruct-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
    ]
    assert DISTILLATION_PAIRS == {
        "amazon.nova-pro-v1:0": ("amazon.nova-lite-v1:0:300k", "amazon.nova-micro-v1:0:128k"),
        "meta.llama3-1-405b-instruct-v1:0": (
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "meta.llama3-1-70b-instruct-v1:0:128k",
            "meta.llama3-2-1b-instruct-v1:0:128k",
            "meta.llama3-3-70b-instruct-v1:0:128k",
        ),
        "meta.llama3-1-70b-instruct-v1:0": (
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "meta.llama3-2-1b-instruct-v1:0:128k",
            "meta.llama3-2-3b-instruct-v1:0:128k",
        ),
        "meta.llama3-3-70b-instruct-v1:0": (
            "meta.llama3-1-8b-instruct-v1:0:128k",
            "meta.llama3-2-1b-instruct-v1:0:128k",
            "meta.llama3-2-3b-instruct-v1:0:128k",
        ),
    }
    premier = distillation_teacher("us.amazon.nova-premier-v1:0")
    assert premier is not None and premier.students == (
        "amazon.nova-lite-v1:0:300k",
        "amazon.nova-micro-v1:0:128k",
        "amazon.nova-pro-v1:0:300k",
    )
    regions = {t.model_id: t.region for t in DISTILLATION_TEACHERS}
    assert regions["amazon.nova-pro-v1:0"] == "us-east-1"
    assert regions["meta.llama3-3-70b-instruct-v1:0"] == "us-west-2"
    profiles = {t.model_id: (t.profile_id, t.profile_regions) for t in DISTILLATION_TEACHERS}
    us = ("us-east-1", "us-east-2", "us-west-2")
    assert profiles["amazon.nova-pro-v1:0"] == ("us.amazon.nova-pro-v1:0", us)
    assert profiles["meta.llama3-3-70b-instruct-v1:0"] == ("us.meta.llama3-3-70b-instruct-v1:0", us)
    assert profiles["meta.llama3-1-405b-instruct-v1:0"] == (None, ())


def test_open_weight_rft_models_are_the_documented_ones_and_refused_with_their_api() -> None:
    """reinforcement-fine-tuning.html (read 2026-12-05): gpt-oss-20b and Qwen3 32B in
    us-west-2, trained through the OpenAI-compatible API (fine-tuning-openai-apis.html)."""
    assert OPEN_WEIGHT_RFT_MODELS == {
        "openai.gpt-oss-20b": ("us-west-2",),
        "qwen.qwen3-32b": ("us-west-2",),
    }
    assert not supports_rft("openai.gpt-oss-20b") and not supports_rft("qwen.qwen3-32b")
    assert rft_model_refusal("amazon.nova-2-lite-v1:0:256k") is None
    assert rft_model_refusal("us.amazon.nova-2-lite-v1:0") is None
    assert open_weight_rft_refusal("amazon.nova-lite-v1:0:300k") is None
    refusal = rft_model_refusal("arn:aws:bedrock:us-west-2::foundation-model/qwen.qwen3-32b")
    assert refusal is not None
    assert "qwen.qwen3-32b is reinforcement fine-tuned by Bedrock (us-west-2) only" in refusal
    assert refusal.endswith("--customization-type REINFORCEMENT_FINE_TUNING")
    assert "nova-rft.html" in (rft_model_refusal("amazon.nova-lite-v1:0:300k") or "")

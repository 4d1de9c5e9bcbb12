"""CreateModelCustomizationJob requests and customization job statuses."""

from __future__ import annotations

import pytest

from finetuning.aws_jobs.bedrock_customization import (
    CustomizationJobSpec,
    customization_job_request,
    customization_job_status,
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
                teacher_model="us.amazon.nova-premier-v1:0", max_response_length=1000
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
                "teacherModelIdentifier": "us.amazon.nova-premier-v1:0",
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


@pytest.mark.parametrize(
    ("teacher", "student", "ok"),
    [
        ("amazon.nova-premier-v1:0", "amazon.nova-pro-v1:0:300k", True),
        ("us.amazon.nova-premier-v1:0", "amazon.nova-micro-v1:0:128k", True),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
            "amazon.nova-lite-v1:0:300k",
            True,
        ),
        ("amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0:300k", False),
        ("amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0:128k", False),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.nova-lite-v1:0:300k", False),
    ],
)
def test_distillation_pairs_follow_the_docs_table(teacher, student, ok) -> None:
    from finetuning.aws_jobs.bedrock_customization import (
        CustomizationRuleError,
        check_distillation_pair,
    )

    if ok:
        check_distillation_pair(teacher, student)
    else:
        with pytest.raises(CustomizationRuleError, match=r"customization\.html"):
            check_distillation_pair(teacher, student)

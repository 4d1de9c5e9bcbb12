"""RFT and distillation through the library and the CLI: the requests Bedrock receives
(botocore's Stubber validates each against the service model), the refusals before any call,
RFT dataset validation and ``finetune grader test``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from finetuning.backends.bedrock import BedrockBackend
from finetuning.cli import main
from finetuning.data.validate import validate_lines
from finetuning.errors import InvalidJobConfigError
from finetuning.jobs import FinetuningJobConfig

ROLE = "arn:aws:iam::123456789012:role/ft-dev-bedrock"
GRADER = "arn:aws:lambda:us-east-1:123456789012:function:ft-dev-grader"
NOVA_2 = "amazon.nova-2-lite-v1:0:256k"
ARN = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova/abc123"


def config(**changes) -> FinetuningJobConfig:
    fields = {
        "base_model": NOVA_2,
        "training_data_uri": "s3://data/training-data/raw/rft.jsonl",
        "output_uri": "s3://artifacts/models/final/",
        "role_arn": ROLE,
        "job_name": "rft-math",
        "customization_type": "REINFORCEMENT_FINE_TUNING",
        "grader_lambda_arn": GRADER,
        "rft_hyperparameters": {"epochCount": "3", "batchSize": "64", "reasoningEffort": "low"},
    }
    return FinetuningJobConfig(**{**fields, **changes})


def submit(job: FinetuningJobConfig, expected: dict) -> dict:
    client = boto3.client("bedrock", region_name="us-east-1")
    backend = BedrockBackend(client)
    hyperparameters = backend.check(job)
    request = backend.build_request(job, hyperparameters)
    with Stubber(client) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": ARN}, request)
        stub.add_response(
            "get_model_customization_job",
            {
                "jobArn": ARN,
                "jobName": job.job_name,
                "outputModelName": "m",
                "roleArn": ROLE,
                "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/" + job.base_model,
                "creationTime": datetime(2026, 12, 5, tzinfo=UTC),
                "status": "InProgress",
                "trainingDataConfig": request["trainingDataConfig"],
                "outputDataConfig": request["outputDataConfig"],
                "validationDataConfig": {"validators": []},
                "hyperParameters": {},
                "customizationType": request["customizationType"],
            },
            {"jobIdentifier": ARN},
        )
        backend.create(job, hyperparameters)
        stub.assert_no_pending_responses()
    for key, value in expected.items():
        assert request[key] == value, key
    return request


def test_rft_through_the_library(fake_aws_credentials) -> None:
    request = submit(
        config(),
        {
            "customizationType": "REINFORCEMENT_FINE_TUNING",
            "baseModelIdentifier": NOVA_2,
            "customizationConfig": {
                "rftConfig": {
                    "graderConfig": {"lambdaGrader": {"lambdaArn": GRADER}},
                    "hyperParameters": {"epochCount": 3, "batchSize": 64, "reasoningEffort": "low"},
                }
            },
        },
    )
    assert "hyperParameters" not in request


def test_distillation_from_invocation_logs_through_the_library(fake_aws_credentials) -> None:
    job = config(
        base_model="amazon.nova-lite-v1:0:300k",
        customization_type="DISTILLATION",
        grader_lambda_arn=None,
        rft_hyperparameters=None,
        training_data_uri=None,
        teacher_model="us.amazon.nova-pro-v1:0",
        teacher_max_response_length=2048,
        invocation_logs_uri="s3://data/training-data/raw/invocation-logs/",
    )
    submit(
        job,
        {
            "customizationType": "DISTILLATION",
            "customizationConfig": {
                "distillationConfig": {
                    "teacherModelConfig": {
                        "teacherModelIdentifier": "us.amazon.nova-pro-v1:0",
                        "maxResponseLengthForInference": 2048,
                    }
                }
            },
            "trainingDataConfig": {
                "invocationLogsConfig": {
                    "invocationLogSource": {
                        "s3Uri": "s3://data/training-data/raw/invocation-logs/"
                    },
                    "usePromptResponse": False,
                }
            },
        },
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"base_model": "amazon.nova-lite-v1:0:300k"}, "base_model"),
        ({"grader_lambda_arn": None}, "grader_lambda_arn"),
        ({"grader_lambda_arn": "arn:aws:lambda:us-east-1:1:function:x"}, "grader_lambda_arn"),
        ({"rft_hyperparameters": {"batchSize": 8}}, "rft_hyperparameters.batchSize"),
        ({"hyperparameters": {"epochCount": 2}}, "hyperparameters"),
        ({"customization_type": "FINE_TUNING"}, "customization_type"),
        (
            {
                "customization_type": "DISTILLATION",
                "grader_lambda_arn": None,
                "rft_hyperparameters": None,
                "base_model": "amazon.nova-pro-v1:0:300k",
                "teacher_model": "amazon.nova-pro-v1:0",
            },
            "base_model",
        ),
        (
            {
                "customization_type": "DISTILLATION",
                "grader_lambda_arn": None,
                "rft_hyperparameters": None,
                "base_model": "amazon.nova-lite-v1:0:300k",
            },
            "teacher_model",
        ),
    ],
)
def test_refusals_name_the_field_before_any_call(changes, field) -> None:
    backend = BedrockBackend(client=None)  # any AWS call would fail
    with pytest.raises(InvalidJobConfigError) as error:
        backend.check(config(**changes))
    assert error.value.field == field


def rft_record(question: str, answer) -> bytes:
    record = {
        "messages": [
            {"role": "system", "content": "Answer with the number only."},
            {"role": "user", "content": question},
        ],
        "reference_answer": answer,
    }
    return json.dumps(record).encode() + b"\n"


def test_rft_records_are_validated_with_their_own_rules() -> None:
    good = [rft_record(f"{i} + 1?", str(i + 1)) for i in range(3)]
    report = validate_lines(good, NOVA_2, customization="REINFORCEMENT_FINE_TUNING")
    assert report.errors == 0 and report.records == 3
    assert [p.code for p in report.problems] == ["record-count"]  # fewer than the 100 advised
    assert report.format == "rft-prompts"
    bad = [
        json.dumps({"messages": [{"role": "user", "content": "q"}]}).encode(),
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ],
                "reference_answer": "a",
            }
        ).encode(),
        json.dumps(
            {
                "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
                "reference_answer": "a",
            }
        ).encode(),
    ]
    report = validate_lines(bad, NOVA_2, customization="REINFORCEMENT_FINE_TUNING")
    found = {(p.line, p.code) for p in report.problems}
    assert {(1, "reference-answer"), (2, "role"), (3, "content")} <= found
    assert "expected system or user" in next(p.message for p in report.problems if p.line == 2)


def test_distillation_prompts_are_validated() -> None:
    prompt = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": "user", "content": [{"text": "Summarise: ..."}]}],
    }
    wrong = {"schemaVersion": "x", "messages": [{"role": "assistant", "content": []}]}
    lines = [json.dumps(prompt).encode(), json.dumps(wrong).encode()]
    report = validate_lines(lines, "amazon.nova-lite-v1:0:300k", customization="DISTILLATION")
    assert report.records == 2
    assert {p.line for p in report.problems if p.severity == "error"} == {2}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_finetune_grader_test_shows_rewards(tmp_path: Path, capsys) -> None:
    data = write_jsonl(
        tmp_path / "rft.jsonl",
        [
            {
                "id": "q1",
                "messages": [{"role": "user", "content": "2+2?"}],
                "reference_answer": "4",
            },
            {
                "id": "q2",
                "messages": [{"role": "user", "content": "Classify: bill"}],
                "reference_answer": {"label": "invoice"},
            },
        ],
    )
    answers = write_jsonl(
        tmp_path / "answers.jsonl",
        [{"id": "q1", "response": "4"}, {"id": "q2", "response": "receipt"}],
    )
    assert main(["grader", "test", "--data", str(data), "--responses", str(answers)]) == 0
    out = capsys.readouterr().out
    assert "q1: 1.000" in out and "q2: 0.000" in out
    assert "2 records: mean reward 0.500" in out
    assert main(["grader", "test", "--data", str(data), "--reference-as-answer", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["full_marks"] == 2


def test_finetune_grader_test_runs_a_users_grader_and_checks_its_contract(
    tmp_path: Path, capsys
) -> None:
    data = write_jsonl(
        tmp_path / "rft.jsonl",
        [{"id": "q1", "messages": [{"role": "user", "content": "hi"}], "reference_answer": "x"}],
    )
    good = tmp_path / "good.py"
    good.write_text(
        "def lambda_handler(event, context):\n"
        "    return [{'id': s['id'], 'aggregate_reward_score': 0.25} for s in event]\n"
    )
    broken = tmp_path / "broken.py"
    broken.write_text("def lambda_handler(event, context):\n    return [{'score': 1}]\n")
    args = ["grader", "test", "--data", str(data), "--reference-as-answer", "--grader"]
    assert main([*args, f"{good}:lambda_handler"]) == 0
    assert "q1: 0.250" in capsys.readouterr().out
    assert main([*args, f"{broken}:lambda_handler"]) == 1
    assert "breaks the RFT contract" in capsys.readouterr().err
    assert main([*args, f"{good}:missing"]) == 2
    assert "has no function 'missing'" in capsys.readouterr().err


def test_job_create_flags_make_an_rft_config() -> None:
    from finetuning.cli import build_parser
    from finetuning.cli.job import job_config_from_args

    args = build_parser().parse_args(
        [
            "job",
            "create",
            "--training-data-uri",
            "s3://data/training-data/raw/rft.jsonl",
            "--base-model",
            NOVA_2,
            "--customization-type",
            "REINFORCEMENT_FINE_TUNING",
            "--grader-lambda-arn",
            GRADER,
            "--rft-hyperparameter",
            "epochCount=2",
            "--rft-hyperparameter",
            "reasoningEffort=high",
        ]
    )
    job = FinetuningJobConfig.from_dict(job_config_from_args(args))
    assert job.customization_type == "REINFORCEMENT_FINE_TUNING"
    assert job.grader_lambda_arn == GRADER
    assert job.rft_hyperparameters == {"epochCount": "2", "reasoningEffort": "high"}


def test_via_platform_flags_become_the_manifests_rft_and_distillation_blocks() -> None:
    from finetuning.platform_client import manifest_from_job_config

    rft = manifest_from_job_config(
        {
            "base_model": NOVA_2,
            "training_data_uri": "s3://data/training-data/raw/rft.jsonl",
            "validation_split": None,
            "customization_type": "REINFORCEMENT_FINE_TUNING",
            "grader_lambda_arn": GRADER,
            "rft_hyperparameters": {"epochCount": "2"},
        }
    )
    assert rft.rft is not None and rft.rft.grader_lambda_arn == GRADER
    assert rft.rft.hyperparameters == {"epochCount": 2}
    distillation = manifest_from_job_config(
        {
            "base_model": "amazon.nova-micro-v1:0:128k",
            "training_data_uri": "s3://data/training-data/raw/prompts.jsonl",
            "validation_split": None,
            "customization_type": "DISTILLATION",
            "teacher_model": "amazon.nova-pro-v1:0",
            "teacher_max_response_length": 500,
        }
    )
    assert distillation.distillation is not None
    assert distillation.distillation.teacher_model == "amazon.nova-pro-v1:0"
    assert distillation.distillation.max_response_length == 500


def test_a_grader_file_that_fails_to_load_is_reported(tmp_path: Path, capsys) -> None:
    data = write_jsonl(
        tmp_path / "rft.jsonl",
        [{"id": "q1", "messages": [{"role": "user", "content": "hi"}], "reference_answer": "x"}],
    )
    broken = tmp_path / "syntax.py"
    broken.write_text("def lambda_handler(event, context):\n    return [\n")
    args = ["grader", "test", "--data", str(data), "--reference-as-answer"]
    assert main([*args, "--grader", f"{broken}:lambda_handler"]) == 2
    assert "failed to load: SyntaxError" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "split"),
    [
        ({"base_model": "amazon.nova-lite-v1:0:300k"}, True),
        ({"base_model": NOVA_2}, False),  # Nova 2 Lite training takes no validation file
        (
            {
                "base_model": NOVA_2,
                "customization_type": "REINFORCEMENT_FINE_TUNING",
                "grader_lambda_arn": GRADER,
            },
            False,  # RFT prompts are not split
        ),
    ],
)
def test_the_automatic_validation_split_applies_only_where_training_takes_one(
    service, bucket, changes, split
) -> None:
    from moto.bedrock.models import bedrock_backends

    from tests.support.library import ACCOUNT, REGION, ROLE_ARN, conversation, put_jsonl

    records = [conversation(i) for i in range(10)]
    if changes.get("customization_type") == "REINFORCEMENT_FINE_TUNING":
        records = [
            {"messages": [{"role": "user", "content": f"q{i}"}], "reference_answer": "a"}
            for i in range(10)
        ]
    train = put_jsonl(bucket, "data/train.jsonl", records)
    service.create_finetuning_job(
        {
            "training_data_uri": train,
            "output_uri": f"s3://{bucket}/output/",
            "role_arn": ROLE_ARN,
            "job_name": "split-or-not",
            **changes,
        }
    )
    job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs["split-or-not"].to_dict()
    assert ("validationDataConfig" in job and bool(job["validationDataConfig"])) is split
    assert (job["trainingDataConfig"]["s3Uri"] != train) is split


# -- open-weight RFT (gpt-oss-20b, Qwen3 32B): data validated, jobs refused with the reason ----

GPT_OSS = "openai.gpt-oss-20b"
QWEN = "qwen.qwen3-32b"


def open_weight_record(index: int, **changes) -> bytes:
    """The OpenAI chat format of "Prepare data for open-weight models" (assistant turns may
    be part of the prompt)."""
    record = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": f"What is {index} + 1?"},
            {"role": "assistant", "content": "Let me think."},
            {"role": "user", "content": "Answer with the number only."},
        ],
        "reference_answer": str(index + 1),
        "difficulty": "easy",  # extra keys are for the grader
    }
    record.update(changes)
    return json.dumps(record).encode() + b"\n"


@pytest.mark.parametrize(
    "model", [GPT_OSS, QWEN, f"arn:aws:bedrock:us-west-2::foundation-model/{QWEN}"]
)
def test_open_weight_rft_records_follow_the_documented_format_and_limits(model: str) -> None:
    kind = "REINFORCEMENT_FINE_TUNING"
    report = validate_lines([open_weight_record(i) for i in range(100)], model, customization=kind)
    assert (report.errors, report.warnings, report.records) == (0, 0, 100)
    assert report.format == "rft-prompts"

    few = validate_lines([open_weight_record(i) for i in range(99)], model, customization=kind)
    (problem,) = few.problems
    assert problem.code == "record-count" and problem.severity == "error"
    assert "99 records" in problem.message and "at least 100" in problem.message
    assert "rft-prepare-data-open-weight.html" in problem.message

    bad = [
        open_weight_record(0, reference_answer=None),
        open_weight_record(1, messages=[{"role": "tool", "content": "x"}]),
        open_weight_record(2, messages=[{"role": "system", "content": "only a system turn"}]),
        open_weight_record(3, messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
        *[open_weight_record(i) for i in range(4, 100)],
    ]
    report = validate_lines(bad, model, customization=kind)
    found = {(p.line, p.code) for p in report.problems}
    assert found == {(1, "reference-answer"), (2, "role"), (3, "role"), (4, "content")}
    assert "expected system, user or assistant, found 'tool'" in str(report.problems)


def test_open_weight_rft_record_count_has_a_documented_maximum() -> None:
    lines = [open_weight_record(0)] * 20_001
    report = validate_lines(lines, GPT_OSS, customization="REINFORCEMENT_FINE_TUNING")
    assert [(p.code, p.severity) for p in report.problems] == [("record-count", "error")]
    assert "accepts at most 20,000" in report.problems[0].message


def test_open_weight_models_are_validated_only_for_rft() -> None:
    with pytest.raises(ValueError, match="only by REINFORCEMENT_FINE_TUNING") as error:
        validate_lines([open_weight_record(0)], GPT_OSS)
    assert "--customization-type REINFORCEMENT_FINE_TUNING" in str(error.value)


@pytest.mark.parametrize("model", [GPT_OSS, QWEN])
def test_open_weight_rft_jobs_are_refused_before_any_call_with_the_api_to_use(model: str) -> None:
    """Bedrock trains them through its OpenAI-compatible fine-tuning API only, not
    CreateModelCustomizationJob: the library says so instead of sending a request."""
    client = boto3.client("bedrock", region_name="us-west-2")
    with Stubber(client), pytest.raises(InvalidJobConfigError) as error:
        BedrockBackend(client).check(config(base_model=model))
    message = str(error.value)
    assert error.value.field == "base_model"
    assert (
        f"{model} is reinforcement fine-tuned by Bedrock (us-west-2) only through its " in message
    )
    assert (
        "OpenAI-compatible fine-tuning API" in message and "fine-tuning-openai-apis.html" in message
    )

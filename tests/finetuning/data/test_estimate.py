"""Cost estimates: Bedrock per token, SageMaker per instance-hour, overrides and errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finetuning.data.estimate import (
    BEDROCK_STORAGE_PER_MONTH,
    SAGEMAKER_TRAINING_PRICE_PER_HOUR,
    EstimateError,
    estimate_cost,
)
from tests.support.records import NOVA, OPEN, converse, prompt_completion


@pytest.fixture
def titan_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    # 594 + 6 characters = 100 tokens per record at 6 characters per token.
    path.write_text(
        "".join(
            json.dumps(prompt_completion(f"{i:03d}" + "x" * 591, "y" * 6)) + "\n" for i in range(30)
        )
    )
    return path


def test_bedrock_price_table_and_retired_families(titan_file: Path) -> None:
    # The families with a confirmed 2024 price are retired: no current family has one, and
    # a retired model id is refused rather than priced.
    from finetuning.data.estimate import BEDROCK_TRAINING_PRICE_PER_1K
    from finetuning.data.models import RetiredModelError

    assert BEDROCK_TRAINING_PRICE_PER_1K == {}
    with pytest.raises(RetiredModelError):
        estimate_cost(titan_file, "amazon.titan-text-lite-v1", epochs=3)
    estimate = estimate_cost(
        titan_file, "amazon.titan-text-express-v1:0:8k", epochs=3, price_per_1k_tokens=0.0008
    )
    assert (estimate.records, estimate.tokens, estimate.trained_tokens) == (30, 3000, 9000)
    assert estimate.training_cost == pytest.approx(9000 / 1000 * 0.0008)
    assert estimate.storage_per_month == BEDROCK_STORAGE_PER_MONTH
    lines = "\n".join(estimate.lines())
    assert "trained tokens: 3,000 x 3 epochs = 9,000" in lines
    assert "https://aws.amazon.com/bedrock/pricing/" in lines and "as of 2026-12" in lines


def _rft_file(tmp_path: Path) -> Path:
    path = tmp_path / "rft.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "x" * 594}], "reference_answer": "4"}
        for _ in range(10)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_rft_counts_prompt_tokens_and_prices_with_the_given_price(tmp_path: Path) -> None:
    estimate = estimate_cost(
        _rft_file(tmp_path),
        "amazon.nova-2-lite-v1:0:256k",
        epochs=2,
        customization="REINFORCEMENT_FINE_TUNING",
        price_per_1k_tokens=0.01,
    )
    assert estimate.validation_errors == 0 and estimate.records == 10
    assert estimate.trained_tokens == estimate.tokens * 2
    assert estimate.training_cost == pytest.approx(estimate.trained_tokens / 1000 * 0.01)
    assert "prompt tokens:" in "\n".join(estimate.lines())


def test_distillation_counts_and_prices_the_teachers_tokens(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    row = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": "user", "content": [{"text": "y" * 600}]}],
    }
    path.write_text((json.dumps(row) + "\n") * 4)
    estimate = estimate_cost(
        path,
        "amazon.nova-lite-v1:0:300k",
        epochs=1,
        customization="DISTILLATION",
        teacher_max_response_length=500,
        teacher_price_per_1k_input=0.002,
        teacher_price_per_1k_output=0.01,
    )
    assert estimate.validation_errors == 0
    assert estimate.teacher_max_output_tokens == 4 * 500
    assert estimate.trained_tokens == estimate.teacher_input_tokens + 2000
    expected = estimate.teacher_input_tokens / 1000 * 0.002 + 2000 / 1000 * 0.01
    assert estimate.teacher_cost == pytest.approx(expected)
    assert "at most 2,000 output tokens" in "\n".join(estimate.lines())
    with pytest.raises(EstimateError, match="--teacher-max-response-length"):
        estimate_cost(
            path,
            "amazon.nova-lite-v1:0:300k",
            epochs=1,
            customization="DISTILLATION",
            teacher_price_per_1k_input=0.002,
            teacher_price_per_1k_output=0.01,
        )


def _prompts(tmp_path: Path, count: int = 4) -> Path:
    path = tmp_path / "prompts.jsonl"
    row = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": "user", "content": [{"text": "y" * 600}]}],
    }
    path.write_text((json.dumps(row) + "\n") * count)
    return path


def test_a_named_teacher_is_priced_at_its_on_demand_list_price(tmp_path: Path) -> None:
    """Nova Pro's list price in the table the evaluation uses (us-east-1, USD per 1,000
    tokens, https://aws.amazon.com/bedrock/pricing/): $0.0008 input, $0.0032 output."""
    estimate = estimate_cost(
        _prompts(tmp_path),
        "amazon.nova-lite-v1:0:300k",
        epochs=2,
        customization="DISTILLATION",
        teacher_model="us.amazon.nova-pro-v1:0",
        teacher_max_response_length=500,
        price_per_1k_tokens=0.004,
    )
    assert (estimate.teacher_price_per_1k_input, estimate.teacher_price_per_1k_output) == (
        0.0008,
        0.0032,
    )
    expected = estimate.teacher_input_tokens / 1000 * 0.0008 + 2000 / 1000 * 0.0032
    assert estimate.teacher_cost == pytest.approx(expected)
    # The student trains on the prompts and the teacher's answers, every epoch.
    assert estimate.trained_tokens == (estimate.teacher_input_tokens + 2000) * 2
    assert estimate.training_cost == pytest.approx(estimate.trained_tokens / 1000 * 0.004)
    text = "\n".join(estimate.lines())
    assert "teacher prices: $0.0008 input, $0.0032 output per 1,000 tokens" in text
    assert "on-demand list price of us.amazon.nova-pro-v1:0" in text


def test_a_teacher_without_a_list_price_asks_for_one_and_a_wrong_pair_is_refused(
    tmp_path: Path,
) -> None:
    path = _prompts(tmp_path)
    with pytest.raises(EstimateError, match=re.escape("teachers of 'amazon.nova-lite-v1:0:300k'")):
        estimate_cost(
            path,
            "amazon.nova-lite-v1:0:300k",
            epochs=1,
            customization="DISTILLATION",
            teacher_model="meta.llama3-1-405b-instruct-v1:0",
        )
    with pytest.raises(EstimateError, match="applies to --customization-type DISTILLATION"):
        estimate_cost(path, "amazon.nova-lite-v1:0:300k", epochs=1, teacher_model="x")
    llama = tmp_path / "llama"
    llama.mkdir()
    estimate = estimate_cost(
        _prompts(llama),
        "meta.llama3-2-1b-instruct-v1:0:128k",
        epochs=1,
        customization="DISTILLATION",
        teacher_model="us.meta.llama3-3-70b-instruct-v1:0",
        teacher_max_response_length=100,
    )
    assert estimate.teacher_cost is None
    assert "no on-demand list price for us.meta.llama3-3-70b" in "\n".join(estimate.lines())


def test_no_customization_price_is_encoded_without_a_source() -> None:
    """No current customization price could be read from an AWS page (searched 2026-12-05):
    the table is empty, and storage keeps its published figure."""
    from finetuning.data.estimate import (
        BEDROCK_PRICE_SOURCE,
        BEDROCK_STORAGE_PER_MONTH,
        BEDROCK_TRAINING_PRICE_PER_1K,
    )

    assert BEDROCK_TRAINING_PRICE_PER_1K == {}
    assert BEDROCK_STORAGE_PER_MONTH == 1.95
    assert BEDROCK_PRICE_SOURCE == "https://aws.amazon.com/bedrock/pricing/"


def test_bedrock_family_without_a_price_asks_for_one(titan_file: Path) -> None:
    estimate = estimate_cost(titan_file, "amazon.titan-text-express-v1", epochs=2)
    assert estimate.training_cost is None and "--price-per-1k-tokens" in estimate.note
    priced = estimate_cost(
        titan_file, "amazon.titan-text-express-v1", epochs=2, price_per_1k_tokens=0.01
    )
    assert priced.training_cost == pytest.approx(6000 / 1000 * 0.01)


def test_validation_errors_are_surfaced(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    # Nine Nova records and one in another format: priced, with the error counted.
    path.write_text(
        "".join(json.dumps(converse()) + "\n" for _ in range(9))
        + json.dumps(prompt_completion())
        + "\n"
    )
    estimate = estimate_cost(path, NOVA, epochs=1, price_per_1k_tokens=0.001)
    assert estimate.validation_errors == 1 and estimate.tokens > 0
    assert any("validation errors" in line for line in estimate.lines())


@pytest.mark.parametrize(
    "content",
    [b"", b"\x80\xd2\x9e binary \x00\xff\n" * 3, "\ufeff{}".encode("utf-16")],
    ids=["empty", "binary", "utf-16"],
)
def test_nothing_countable_is_refused_not_priced_at_zero(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(EstimateError, match="no valid record to count"):
        estimate_cost(path, NOVA, epochs=1, price_per_1k_tokens=0.001)


def test_records_all_in_the_wrong_format_are_refused(titan_file: Path) -> None:
    # Every record is prompt/completion, which Nova does not take: nothing to price.
    with pytest.raises(EstimateError, match=r"30 records counted, 30 validation errors"):
        estimate_cost(titan_file, NOVA, epochs=1, price_per_1k_tokens=0.001)


def test_sagemaker_hours_and_cost(titan_file: Path) -> None:
    estimate = estimate_cost(
        titan_file,
        OPEN,
        epochs=2,
        instance_type="ml.g5.2xlarge",
        instance_count=2,
        tokens_per_second=0.5,
    )
    price = SAGEMAKER_TRAINING_PRICE_PER_HOUR["ml.g5.2xlarge"]
    # Open models estimate at 4 characters per token: 150 tokens x 30 records x 2 epochs.
    assert estimate.trained_tokens == 9000
    assert estimate.hours == pytest.approx(9000 / (0.5 * 2) / 3600)
    assert estimate.training_cost == pytest.approx(estimate.hours * price * 2)
    without_rate = estimate_cost(titan_file, OPEN, epochs=1, instance_type="ml.g5.2xlarge")
    assert without_rate.training_cost is None and "--tokens-per-second" in without_rate.note


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"model_id": OPEN, "epochs": 1}, "pass --instance-type"),
        ({"model_id": OPEN, "epochs": 1, "instance_type": "ml.x9.huge"}, "no price for ml.x9.huge"),
        (
            {"model_id": NOVA, "epochs": 1, "instance_type": "ml.g5.2xlarge"},
            r"SageMaker \(open\) models only",
        ),
        ({"model_id": NOVA, "epochs": 0}, "at least 1"),
        (
            {
                "model_id": OPEN,
                "epochs": 1,
                "instance_type": "ml.g5.2xlarge",
                "tokens_per_second": -1,
            },
            "must be positive",
        ),
    ],
)
def test_estimate_errors(titan_file: Path, kwargs: dict, fragment: str) -> None:
    with pytest.raises(EstimateError, match=fragment):
        estimate_cost(titan_file, **kwargs)

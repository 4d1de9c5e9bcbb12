"""The platform's RFT grader scoring, per sample and per batch (the Lambda handler on
Bedrock's batch: tests/lambda_functions/test_grader.py)."""

from __future__ import annotations

import pytest

from finetuning.evaluation.rewards import Scoring, grade_batch, grade_sample, scoring_for


def sample(answer: str, reference, *, sample_id: str = "s-1", nested: bool = False, **extra):
    record = {
        "id": sample_id,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "question"},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }
    if nested:  # the shape of the SageMaker/Nova contract: reference inside metadata
        record["metadata"] = {"reference_answer": reference}
    else:
        record["reference_answer"] = reference
    return record


@pytest.mark.parametrize(
    ("reference", "scoring"),
    [
        ("x = 4", Scoring.EXACT_MATCH),
        ({"label": "invoice"}, Scoring.CLASSIFICATION),
        ({"type": "receipt"}, Scoring.CLASSIFICATION),
        ({"vendor": "ACME", "total": 12.5}, Scoring.JSON_F1),
        ([1, 2], Scoring.JSON_F1),
    ],
)
def test_the_scoring_follows_the_reference_shape(reference, scoring) -> None:
    assert scoring_for(reference) is scoring


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("X = 4 ", "x = 4", 1.0),
        ("x = 5", "x = 4", 0.0),
        ('{"label": "Invoice"}', {"label": "invoice"}, 1.0),
        ("invoice", {"label": "invoice"}, 1.0),
        ("receipt", {"label": "invoice"}, 0.0),
        ('```json\n{"vendor": "ACME", "total": 12.5}\n```', {"vendor": "ACME", "total": 12.5}, 1.0),
        ('{"vendor": "ACME", "total": 99}', {"vendor": "ACME", "total": 12.5}, 0.5),
        ("no json here", {"vendor": "ACME"}, 0.0),
    ],
)
def test_rewards_of_each_scoring(answer, reference, score) -> None:
    for nested in (False, True):
        result = grade_sample(sample(answer, reference, nested=nested))
        assert result["id"] == "s-1"
        assert result["aggregate_reward_score"] == pytest.approx(score)
        reward = result["metrics_list"][0]
        assert reward["type"] == "Reward" and reward["value"] == pytest.approx(score)


def test_a_record_may_ask_for_its_scoring() -> None:
    record = sample('{"label": "invoice"}', '{"label": "invoice"}', grader="exact_match")
    assert grade_sample(record)["metrics_list"][0]["name"] == "exact_match"
    assert grade_sample(record)["aggregate_reward_score"] == 1.0


def test_samples_without_an_answer_or_reference_get_no_reward() -> None:
    no_answer = sample("x", "x")
    no_answer["messages"] = no_answer["messages"][:-1]
    no_reference = sample("x", "x")
    del no_reference["reference_answer"]
    results = grade_batch([no_answer, no_reference, "not an object"])
    assert [r["aggregate_reward_score"] for r in results] == [0.0, 0.0, 0.0]
    assert results[0]["metrics_list"][0]["name"] == "missing assistant answer"
    assert results[1]["metrics_list"][0]["name"] == "missing reference_answer"

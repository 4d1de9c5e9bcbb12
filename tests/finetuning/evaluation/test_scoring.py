"""Task detection and per-sample scoring of raw answers."""

from __future__ import annotations

import pytest

from finetuning.evaluation.scoring import Task, infer_task, score_results


def ok(text: str) -> dict:
    return {
        "sample_id": text,
        "status": "success",
        "response_text": text,
        "inference_time_seconds": 1.0,
        "input_tokens": 10,
        "output_tokens": 2,
    }


FAILED = {"sample_id": "f", "status": "error", "error_code": "ModelErrorException", "error": "x"}


@pytest.mark.parametrize(
    ("references", "expected"),
    [
        (['{"type": "invoice"}', '{"type": "memo"}'], (Task.CLASSIFICATION, "type")),
        (['{"owners": ["a"], "parcel": 1}', '{"owners": []}'], (Task.JSON, None)),
        (["[1, 2]", '{"a": 1}'], (Task.JSON, None)),
        (["invoice", "memo", "invoice"], (Task.CLASSIFICATION, None)),
        (["Paris is the capital.", "Berlin"], (Task.TEXT, None)),
        ([None, None], (Task.TEXT, None)),
    ],
)
def test_infer_task(references, expected):
    assert infer_task(references) == expected


def test_classification_scoring_counts_failures_as_wrong():
    results = [ok('{"type": "invoice"}'), ok("It is a memo"), ok("I have no idea."), dict(FAILED)]
    references = [
        '{"type": "invoice"}',
        '{"type": "memo"}',
        '{"type": "letter"}',
        '{"type": "memo"}',
    ]
    metrics = score_results(results, references, task=Task.CLASSIFICATION, label_key="type")
    assert [r["prediction"] for r in results] == ["invoice", "memo", None, None]
    assert [r["correct"] for r in results] == [True, True, False, False]
    assert [r["ground_truth"] for r in results] == ["invoice", "memo", "letter", "memo"]
    assert metrics["accuracy"] == 0.5
    assert metrics["correct_predictions"] == 2
    assert metrics["success_rate"] == 0.75
    assert metrics["confusion_matrix"]["predicted_labels"] == [
        "invoice",
        "letter",
        "memo",
        "(no label)",
        "(error)",
    ]
    assert metrics["task"] == "classification"


def test_unlabelled_samples_get_predictions_but_no_score():
    results = [ok("memo"), ok("letter")]
    metrics = score_results(results, ["memo", None], task=Task.CLASSIFICATION)
    assert results[1]["prediction"] == "letter"
    assert results[1]["ground_truth"] is None
    assert "correct" not in results[1]
    assert metrics["labelled_samples"] == 1
    assert metrics["accuracy"] == 1.0


def test_json_scoring():
    results = [ok('```json\n{"name": "Ann", "share": "50%"}\n```'), ok("sorry"), dict(FAILED)]
    references = ['{"name": "ann", "share": 50}', '{"name": "Bo"}', '{"name": "Cy"}']
    metrics = score_results(results, references, task=Task.JSON)
    assert results[0]["correct"] is True
    assert results[0]["field_f1"] == 1.0
    assert results[1]["prediction_json_valid"] is False
    assert metrics["json_validity_rate"] == pytest.approx(1 / 3)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["correct_predictions"] == 1


def test_text_scoring():
    results = [ok("Paris"), ok("the city of Berlin")]
    metrics = score_results(results, ["Paris", "Berlin"], task=Task.TEXT)
    assert results[0]["correct"] is True
    assert results[1]["token_f1"] == pytest.approx(2 * 0.25 * 1 / 1.25)
    assert metrics["exact_match"] == 0.5

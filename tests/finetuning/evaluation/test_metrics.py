"""Metrics against confusion matrices and scores worked out by hand (in the comments)."""

from __future__ import annotations

import pytest

from finetuning.evaluation.metrics import (
    ERROR_LABEL,
    UNPARSED_LABEL,
    classification_metrics,
    extract_json,
    field_scores,
    flatten_fields,
    normalize_label,
    operational_metrics,
    parse_label,
    percentile,
    structured_metrics,
    text_metrics,
)
from finetuning.evaluation.pricing import TokenPrices, base_model_key, on_demand_prices


def test_three_class_confusion_matrix_and_scores():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    m = classification_metrics(y_true, y_pred)
    # rows = true a, b, c; columns = predicted a, b, c
    assert m["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["confusion_matrix"]["labels"] == ["a", "b", "c"]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["correct_predictions"] == 4
    # a: TP 2 of 2 predicted, 3 true -> P 1, R 2/3, F1 0.8
    # b: TP 1 of 2 predicted, 2 true -> P 0.5, R 0.5, F1 0.5
    # c: TP 1 of 2 predicted, 1 true -> P 0.5, R 1, F1 2/3
    per = m["per_class"]
    assert per["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert per["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3 * 1) / 6)
    assert m["macro_precision"] == pytest.approx(2 / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)


def test_failed_and_unparsed_answers_are_wrong_and_get_their_own_columns():
    y_true = ["a", "b", "b"]
    y_pred = ["a", ERROR_LABEL, UNPARSED_LABEL]
    m = classification_metrics(y_true, y_pred)
    assert m["confusion_matrix"]["predicted_labels"] == ["a", "b", UNPARSED_LABEL, ERROR_LABEL]
    assert m["confusion_matrix"]["matrix"] == [[1, 0, 0, 0], [0, 0, 1, 1]]
    assert m["accuracy"] == pytest.approx(1 / 3)
    # b was never predicted: precision 0 (not a division by zero), recall 0
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    # the averages run over the true classes a and b only
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx(1 / 3)


def test_known_labels_without_support_count_in_macro_average():
    m = classification_metrics(["a", "a"], ["a", "a"], labels=["a", "b"])
    assert m["per_class"]["b"]["support"] == 0
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx(1.0)


def test_classification_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="y_true has 2 labels but y_pred has 1"):
        classification_metrics(["a", "b"], ["a"])


@pytest.mark.parametrize(
    ("answer", "labels", "expected"),
    [
        ('{"type": "invoice"}', None, "invoice"),
        ('Sure:\n```json\n{"type": "News Article"}\n```', None, "news_article"),
        ("invoice", ["invoice", "letter"], "invoice"),
        ("This document is a letter.", ["invoice", "letter"], "letter"),
        ("a scientific report", ["report", "scientific_report"], "scientific_report"),
        ("an invoice or a letter", ["invoice", "letter"], None),
        ("I cannot tell.", ["invoice", "letter"], None),
        ("memo", None, "memo"),
        ("line one\nline two", None, None),
    ],
)
def test_parse_label(answer, labels, expected):
    assert parse_label(answer, labels=labels) == expected


def test_parse_label_reads_another_json_key():
    assert parse_label('{"category": "Form"}', label_key="category") == "form"


def test_normalize_label():
    assert normalize_label("  'News Article'. ") == "news_article"
    assert normalize_label("file-folder") == "file_folder"


def test_extract_json_finds_first_document():
    assert extract_json('answer: {"a": [1, 2]} trailing') == {"a": [1, 2]}
    assert extract_json("no json here") is None
    assert extract_json("[1, 2]") == [1, 2]


def test_flatten_fields_ignores_list_order_and_normalizes_values():
    left = flatten_fields({"owners": [{"name": "Ann  Lee", "share": "50%"}, {"name": "Bo"}]})
    right = flatten_fields({"owners": [{"name": "bo"}, {"share": 50, "name": "ann lee"}]})
    assert left == right
    assert left[("owners[].share", 50.0)] == 1


def test_structured_metrics_hand_computed():
    references = [
        {
            "owners": [{"name": "Ann Lee", "share": "50%"}, {"name": "Bob Roe", "share": "50%"}],
            "parcel": "12-A",
        },
        {"parcel": "7"},
    ]
    predictions = [
        {
            "owners": [{"name": "bob roe", "share": 50}, {"name": "Ann Lee", "share": "40%"}],
            "parcel": "12-A",
        },
        None,  # the model's answer was not JSON
    ]
    m = structured_metrics(references, predictions)
    # sample 1: 5 reference pairs, 5 predicted, 4 match (both names, one 50% share, parcel)
    # sample 2: 1 reference pair, nothing predicted
    assert m["json_validity_rate"] == 0.5
    assert m["exact_match"] == 0.0
    assert m["field_precision"] == pytest.approx(4 / 5)
    assert m["field_recall"] == pytest.approx(4 / 6)
    assert m["field_f1"] == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    assert m["per_field"]["owners[].name"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    )
    assert m["per_field"]["owners[].share"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_field"]["parcel"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )


def test_structured_exact_match_and_single_scores():
    ref = {"a": 1, "b": ["x", "y"]}
    assert structured_metrics([ref], [{"b": ["y", "x"], "a": 1.0}])["exact_match"] == 1.0
    assert field_scores(ref, {"a": 1}) == pytest.approx(
        {"field_precision": 1.0, "field_recall": 1 / 3, "field_f1": 0.5}
    )


def test_text_metrics_token_f1():
    m = text_metrics(["The cat sat", "yes"], ["the cat sat down", None])
    # sample 1: 3 common tokens, P 3/4, R 1 -> F1 6/7; sample 2 failed -> 0
    assert m["exact_match"] == 0.0
    assert m["token_f1"] == pytest.approx((6 / 7 + 0) / 2)


def test_percentile_linear_interpolation():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile(values, 99) == pytest.approx(4.96)
    assert percentile([], 50) is None


def test_operational_metrics():
    results = [
        {
            "status": "success",
            "inference_time_seconds": 1.0,
            "input_tokens": 100,
            "output_tokens": 10,
        },
        {
            "status": "success",
            "inference_time_seconds": 3.0,
            "input_tokens": 300,
            "output_tokens": 30,
        },
        {"status": "error", "error": "boom"},
    ]
    m = operational_metrics(results, cost=TokenPrices(0.5, 2.0))
    assert m["total_samples"] == 3
    assert m["successful_inferences"] == 2
    assert m["success_rate"] == pytest.approx(2 / 3)
    assert m["latency_p50_seconds"] == 2.0
    assert m["average_inference_time_seconds"] == 2.0
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens_used"]) == (400, 40, 440)
    assert m["average_tokens_per_sample"] == 220.0
    # 400/1000 * 0.5 + 40/1000 * 2.0
    assert m["estimated_cost_usd"] == pytest.approx(0.28)
    assert m["total_images"] == 3


def test_on_demand_prices_only_for_base_models():
    assert base_model_key("us.amazon.nova-lite-v1:0") == "amazon.nova-lite-v1"
    assert on_demand_prices("us.amazon.nova-lite-v1:0") == TokenPrices(0.00006, 0.00024)
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
    assert on_demand_prices(arn) is not None
    assert on_demand_prices("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc") is None
    assert on_demand_prices("my-endpoint") is None
    with pytest.raises(ValueError, match="must be >= 0"):
        TokenPrices(-1, 0)

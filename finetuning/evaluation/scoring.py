"""Turn raw answers into scored results and one model's metrics.

The task decides what "right" means: a class label, a JSON document, or free text.
``infer_task`` picks one from the references when the user does not say.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from finetuning.evaluation.metrics import (
    ERROR_LABEL,
    UNPARSED_LABEL,
    classification_metrics,
    extract_json,
    field_scores,
    normalize_label,
    operational_metrics,
    parse_label,
    structured_metrics,
    text_metrics,
)
from finetuning.evaluation.pricing import TokenPrices


class Task(StrEnum):
    CLASSIFICATION = "classification"
    JSON = "json"
    TEXT = "text"


# A reference this short, on one line, looks like a class label rather than free text.
_MAX_LABEL_CHARS = 64


def _strict_json(text: str) -> Any | None:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


def infer_task(references: Sequence[str | None]) -> tuple[Task, str | None]:
    """The task the references describe, and the JSON key holding the label if any.

    - every reference a one-key JSON object with the same key and a scalar value
      (``{"type": "invoice"}``): classification on that key;
    - every reference a JSON object or array: structured JSON;
    - every reference a short one-line string, and labels repeat: classification;
    - anything else: free text.
    """
    refs = [r for r in references if r is not None]
    if not refs:
        return Task.TEXT, None
    parsed = [_strict_json(r) for r in refs]
    if all(isinstance(p, dict) for p in parsed):
        keys = {tuple(p) for p in parsed}
        if len(keys) == 1 and len(next(iter(keys))) == 1:
            key = next(iter(keys))[0]
            if all(isinstance(p[key], str | int | float) for p in parsed):
                return Task.CLASSIFICATION, key
        return Task.JSON, None
    if all(isinstance(p, dict | list) for p in parsed):
        return Task.JSON, None
    short = all(len(r.strip()) <= _MAX_LABEL_CHARS and "\n" not in r.strip() for r in refs)
    distinct = {normalize_label(r) for r in refs}
    if short and len(distinct) < len(refs):
        return Task.CLASSIFICATION, None
    return Task.TEXT, None


def reference_label(reference: str, label_key: str | None) -> str:
    if label_key is not None:
        parsed = _strict_json(reference)
        if isinstance(parsed, dict) and label_key in parsed:
            return normalize_label(str(parsed[label_key]))
    return normalize_label(reference)


def score_results(
    results: list[dict[str, Any]],
    references: Sequence[str | None],
    *,
    task: Task,
    label_key: str | None = None,
    labels: Sequence[str] | None = None,
    prices: TokenPrices | None = None,
) -> dict[str, Any]:
    """Add per-sample scores to ``results`` (in place) and return the model's metrics.

    ``references`` is aligned with ``results``; samples without a reference get a prediction
    but no score and do not count in the quality metrics.
    """
    if len(results) != len(references):
        raise ValueError(f"{len(results)} results but {len(references)} references")
    metrics = operational_metrics(results, cost=prices)
    metrics["task"] = task.value
    key = label_key or "type"
    known = [normalize_label(label) for label in labels] if labels else None
    if task is Task.CLASSIFICATION:
        known_labels = sorted(set(known or ()) | {reference_label(r, key) for r in references if r})
        y_true: list[str] = []
        y_pred: list[str] = []
        for result, reference in zip(results, references, strict=True):
            if result["status"] == "success":
                predicted = parse_label(result["response_text"], label_key=key, labels=known_labels)
                result["prediction"] = predicted
            else:
                predicted = None
                result["prediction"] = None
            if reference is None:
                result["ground_truth"] = None
                continue
            truth = reference_label(reference, key)
            shown = predicted or (ERROR_LABEL if result["status"] != "success" else UNPARSED_LABEL)
            result["ground_truth"] = truth
            result["correct"] = predicted == truth
            y_true.append(truth)
            y_pred.append(shown)
        if y_true:
            metrics |= classification_metrics(y_true, y_pred, labels=known)
    elif task is Task.JSON:
        refs, preds = [], []
        for result, reference in zip(results, references, strict=True):
            predicted = (
                extract_json(result["response_text"]) if result["status"] == "success" else None
            )
            result["prediction"] = predicted
            result["prediction_json_valid"] = predicted is not None
            if reference is None:
                continue
            ref = _strict_json(reference)
            if ref is None:
                ref = extract_json(reference)
            result["ground_truth"] = ref
            scores = field_scores(ref, predicted) if predicted is not None else {"field_f1": 0.0}
            result["field_f1"] = scores["field_f1"]
            result["correct"] = predicted is not None and scores["field_f1"] == 1.0
            refs.append(ref)
            preds.append(predicted)
        if refs:
            metrics |= structured_metrics(refs, preds)
            metrics["correct_predictions"] = sum(1 for r in results if r.get("correct"))
    else:
        refs_text, preds_text = [], []
        for result, reference in zip(results, references, strict=True):
            predicted = result["response_text"] if result["status"] == "success" else None
            result["prediction"] = predicted
            if reference is None:
                continue
            result["ground_truth"] = reference
            single = text_metrics([reference], [predicted])
            result["correct"] = single["exact_match"] == 1.0
            result["token_f1"] = single["token_f1"]
            refs_text.append(reference)
            preds_text.append(predicted)
        if refs_text:
            metrics |= text_metrics(refs_text, preds_text)
            metrics["correct_predictions"] = sum(1 for r in results if r.get("correct"))
    return metrics

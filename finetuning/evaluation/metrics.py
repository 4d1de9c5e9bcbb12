"""Quality and operational metrics over evaluation results.

- Classification: accuracy, per-class precision/recall/F1, macro and weighted averages and a
  confusion matrix. Failed calls and unparseable answers count as wrong answers, so accuracy is
  correct answers over every labelled sample (as the old scripts reported it).
- Structured JSON answers: validity rate, exact match, and field-level precision/recall/F1 over
  flattened ``(field path, normalized value)`` pairs; list items match regardless of order.
- Free text: normalized exact match and token-overlap F1.
- Every run: success rate, latency percentiles, token counts and an estimated cost.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Names for predictions that are not a class: a failed call and an answer with no label in it.
ERROR_LABEL = "(error)"
UNPARSED_LABEL = "(no label)"

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?%?$")


def normalize_label(value: str) -> str:
    """Compare labels ignoring case, spaces and separators: 'News Article' = 'news_article'."""
    text = value.strip().strip("\"'`.").strip().lower()
    return re.sub(r"[\s\-_/]+", "_", text)


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in a model's answer (fenced or inline), or None."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                continue
            return value
    return None


def parse_label(
    text: str, *, label_key: str = "type", labels: Sequence[str] | None = None
) -> str | None:
    """The class label in a model's answer.

    Tried in order: a JSON object's ``label_key`` field (the old ``{"type": "invoice"}``
    answers), the whole answer when it is a known label, then the one known label that appears
    as a word in the answer, then a one- or two-word answer (an unknown, so wrong, label).
    Without known labels, a short one-line answer is the label.
    """
    parsed = extract_json(text)
    if isinstance(parsed, dict) and isinstance(parsed.get(label_key), str | int | float):
        return normalize_label(str(parsed[label_key]))
    normalized = normalize_label(text)
    if not normalized:
        return None
    if labels:
        known = {normalize_label(label) for label in labels}
        if normalized in known:
            return normalized
        words = f"_{normalized}_"
        found = [label for label in known if f"_{label}_" in words]
        if found:
            return max(found, key=len) if _unambiguous(found) else None
        # A one- or two-word answer is a label, just not a known one (a wrong class).
        return normalized if len(text.split()) <= 2 else None
    return normalized if "\n" not in text.strip() and len(normalized) <= 64 else None


def _unambiguous(found: list[str]) -> bool:
    # 'scientific_report' contains no other label as a whole word, but 'report' and
    # 'scientific_report' together mean the longer one; two unrelated labels are ambiguous.
    longest = max(found, key=len)
    return all(f"_{label}_" in f"_{longest}_" for label in found)


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, per-class scores, macro/weighted averages and the confusion matrix.

    Averages run over the classes present in ``y_true`` (plus ``labels`` when given): a
    prediction outside them is an error against the true class's recall and gets its own
    column in the confusion matrix, but is not a class of its own in the averages. Scores of a
    class with nothing predicted or no support are 0 (no division by zero).
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    classes = sorted(set(y_true) | set(labels or ()))
    extra = sorted(set(y_pred) - set(classes), key=lambda x: (x in (ERROR_LABEL,), x))
    columns = classes + extra
    index = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in classes]
    for truth, pred in zip(y_true, y_pred, strict=True):
        matrix[index[truth]][index[pred]] += 1

    per_class: dict[str, ClassScores] = {}
    for i, label in enumerate(classes):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision, recall, f1, support)

    total = len(y_true)
    correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    n_classes = len(classes) or 1
    weights = total or 1
    return {
        "accuracy": correct / total if total else 0.0,
        "correct_predictions": correct,
        "labelled_samples": total,
        "macro_precision": sum(s.precision for s in per_class.values()) / n_classes,
        "macro_recall": sum(s.recall for s in per_class.values()) / n_classes,
        "macro_f1": sum(s.f1 for s in per_class.values()) / n_classes,
        "weighted_f1": sum(s.f1 * s.support for s in per_class.values()) / weights,
        "per_class": {label: scores.as_dict() for label, scores in per_class.items()},
        "confusion_matrix": {"labels": classes, "predicted_labels": columns, "matrix": matrix},
    }


def _normalize_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    if isinstance(value, str):
        text = " ".join(value.split()).lower()
        if _NUMBER.match(text):
            try:
                return round(float(text.rstrip("%").replace(",", "")), 6)
            except ValueError:
                return text
        return text
    return value


def flatten_fields(value: Any, prefix: str = "") -> Counter[tuple[str, Any]]:
    """Leaf ``(path, normalized value)`` pairs; list positions are dropped so order is ignored.

    ``{"owners": [{"name": "A", "share": "50%"}]}`` gives
    ``{("owners[].name", "a"): 1, ("owners[].share", 50.0): 1}``.
    """
    pairs: Counter[tuple[str, Any]] = Counter()
    if isinstance(value, dict):
        for key, item in value.items():
            pairs.update(flatten_fields(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for item in value:
            pairs.update(flatten_fields(item, f"{prefix}[]"))
    else:
        pairs[(prefix or "$", _normalize_value(value))] += 1
    return pairs


def _prf(tp: int, n_pred: int, n_ref: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else (1.0 if n_ref == 0 else 0.0)
    recall = tp / n_ref if n_ref else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def field_scores(reference: Any, prediction: Any) -> dict[str, float]:
    """Field-level precision, recall and F1 of one structured answer against its reference."""
    ref, pred = flatten_fields(reference), flatten_fields(prediction)
    tp = sum((ref & pred).values())
    precision, recall, f1 = _prf(tp, sum(pred.values()), sum(ref.values()))
    return {"field_precision": precision, "field_recall": recall, "field_f1": f1}


def structured_metrics(references: Sequence[Any], predictions: Sequence[Any | None]) -> dict:
    """Metrics for JSON answers; ``None`` in ``predictions`` is an invalid or failed answer.

    Field scores are micro-averaged over all fields of all samples, and also reported per
    field path so a report can show which fields the model gets wrong.
    """
    if len(references) != len(predictions):
        raise ValueError(
            f"references has {len(references)} items but predictions has {len(predictions)}"
        )
    total = len(references)
    valid = sum(1 for p in predictions if p is not None)
    exact = 0
    tp = n_pred = n_ref = 0
    per_field: dict[str, list[int]] = {}
    for ref, pred in zip(references, predictions, strict=True):
        ref_pairs = flatten_fields(ref)
        pred_pairs = flatten_fields(pred) if pred is not None else Counter()
        if pred is not None and ref_pairs == pred_pairs:
            exact += 1
        matched = ref_pairs & pred_pairs
        tp += sum(matched.values())
        n_pred += sum(pred_pairs.values())
        n_ref += sum(ref_pairs.values())
        for source, slot in ((matched, 0), (pred_pairs, 1), (ref_pairs, 2)):
            for (path, _), count in source.items():
                per_field.setdefault(path, [0, 0, 0])[slot] += count
    precision, recall, f1 = _prf(tp, n_pred, n_ref)
    return {
        "json_validity_rate": valid / total if total else 0.0,
        "exact_match": exact / total if total else 0.0,
        "field_precision": precision,
        "field_recall": recall,
        "field_f1": f1,
        "per_field": {
            path: dict(zip(("precision", "recall", "f1"), _prf(*counts), strict=True))
            | {"support": counts[2]}
            for path, counts in sorted(per_field.items())
        },
    }


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def text_metrics(references: Sequence[str], predictions: Sequence[str | None]) -> dict:
    """Normalized exact match and mean token-overlap F1 (SQuAD-style) for free-text answers."""
    total = len(references)
    exact = 0
    f1_sum = 0.0
    for ref, pred in zip(references, predictions, strict=True):
        if pred is None:
            continue
        ref_tokens, pred_tokens = _tokens(ref), _tokens(pred)
        if ref_tokens == pred_tokens:
            exact += 1
        common = sum((Counter(ref_tokens) & Counter(pred_tokens)).values())
        f1_sum += _prf(common, len(pred_tokens), len(ref_tokens))[2]
    return {
        "exact_match": exact / total if total else 0.0,
        "token_f1": f1_sum / total if total else 0.0,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def operational_metrics(
    results: Iterable[Mapping[str, Any]], *, cost: Any | None = None
) -> dict[str, Any]:
    """Success rate, latency percentiles, tokens and cost over result records.

    ``cost`` is a :class:`finetuning.evaluation.pricing.TokenPrices` or None when unknown.
    """
    rows = list(results)
    total = len(rows)
    ok = [r for r in rows if r.get("status") == "success"]
    latencies = [float(r["inference_time_seconds"]) for r in ok]
    input_tokens = sum(int(r.get("input_tokens") or 0) for r in ok)
    output_tokens = sum(int(r.get("output_tokens") or 0) for r in ok)
    total_tokens = input_tokens + output_tokens
    metrics: dict[str, Any] = {
        "total_samples": total,
        "successful_inferences": len(ok),
        "failed_inferences": total - len(ok),
        "success_rate": len(ok) / total if total else 0.0,
        "average_inference_time_seconds": sum(latencies) / len(latencies) if latencies else None,
        "latency_p50_seconds": percentile(latencies, 50),
        "latency_p90_seconds": percentile(latencies, 90),
        "latency_p99_seconds": percentile(latencies, 99),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens_used": total_tokens,
        "average_tokens_per_sample": total_tokens / len(ok) if ok else None,
        "estimated_cost_usd": cost.cost(input_tokens, output_tokens) if cost else None,
    }
    # The old scripts' names, kept so their readers keep working.
    metrics["total_images"] = total
    metrics["average_tokens_per_image"] = metrics["average_tokens_per_sample"]
    return metrics

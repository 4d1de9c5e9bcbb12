"""Rewards for reinforcement fine-tuning: the platform's grader, reusing the evaluation's scoring.

Bedrock calls the grader Lambda with a batch of samples and expects one reward per sample.
The contract, from "Setting up reward functions" and the Nova RFT guide
(https://docs.aws.amazon.com/bedrock/latest/userguide/reward-functions.html,
https://docs.aws.amazon.com/nova/latest/nova2-userguide/nova-implementing-reward-functions.html):

- input: a list of ``{"id", "messages": [..., {"role": "assistant", "content": answer}],
  "reference_answer" | "metadata": {"reference_answer", ...}}`` (the model's answer is the
  last, assistant, turn; extra dataset fields arrive beside the reference or in ``metadata``);
- output: a list of ``{"id", "aggregate_reward_score": float, "metrics_list": [{"name",
  "value", "type": "Reward" | "Metric"}]}``.

The scoring chosen per sample (``grader`` key of the record, else from the reference's shape):
- ``classification``: 1 when the answer's label equals the reference label
  (``finetuning.evaluation.metrics.parse_label``), else 0;
- ``json_f1``: field-level F1 of the JSON in the answer against the reference object
  (``field_scores``), 0 when the answer has no JSON;
- ``exact_match``: 1 when the answer equals the reference text (case and surrounding
  whitespace ignored), else 0.

Pure Python: the grader Lambda ships ``finetuning/evaluation`` with no model libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from finetuning.evaluation.metrics import extract_json, field_scores, normalize_label, parse_label

__all__ = ["Scoring", "grade_batch", "grade_sample", "scoring_for"]


class Scoring(StrEnum):
    EXACT_MATCH = "exact_match"
    CLASSIFICATION = "classification"
    JSON_F1 = "json_f1"


# A one-key object whose value is a scalar is a class label ({"label": "invoice"}).
_LABEL_KEYS = ("label", "type", "class", "category")


def _reference(sample: Mapping[str, Any]) -> Any:
    if "reference_answer" in sample:
        return sample["reference_answer"]
    metadata = sample.get("metadata")
    if isinstance(metadata, Mapping):
        return metadata.get("reference_answer")
    return None


def _field(sample: Mapping[str, Any], name: str) -> Any:
    if name in sample:
        return sample[name]
    metadata = sample.get("metadata")
    return metadata.get(name) if isinstance(metadata, Mapping) else None


def _answer(sample: Mapping[str, Any]) -> str | None:
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return None


def scoring_for(reference: Any, requested: str | None = None) -> Scoring:
    """The scoring a sample asks for, else the one its reference's shape implies."""
    if requested:
        return Scoring(requested)
    if isinstance(reference, Mapping):
        keys = list(reference)
        if len(keys) == 1 and keys[0] in _LABEL_KEYS and _scalar(reference[keys[0]]):
            return Scoring.CLASSIFICATION
        return Scoring.JSON_F1
    if isinstance(reference, list):
        return Scoring.JSON_F1
    return Scoring.EXACT_MATCH


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _label(reference: Any) -> tuple[str, str]:
    """(label key, normalized reference label)."""
    if isinstance(reference, Mapping) and len(reference) == 1:
        key = next(iter(reference))
        return str(key), normalize_label(str(reference[key]))
    return "label", normalize_label(str(reference))


def grade_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The reward of one sample, in the output shape Bedrock reads."""
    sample_id = str(sample.get("id", ""))
    reference = _reference(sample)
    answer = _answer(sample)
    metrics: list[dict[str, Any]] = []
    if reference is None or answer is None:
        # Nothing to compare: no reward (the sample names what was missing in its metric).
        missing = "reference_answer" if reference is None else "assistant answer"
        metrics.append({"name": f"missing {missing}", "value": 1.0, "type": "Metric"})
        return {"id": sample_id, "aggregate_reward_score": 0.0, "metrics_list": metrics}
    scoring = scoring_for(reference, _field(sample, "grader"))
    if scoring is Scoring.CLASSIFICATION:
        key, expected = _label(reference)
        found = parse_label(answer, label_key=key, labels=[expected])
        score = 1.0 if found == expected else 0.0
    elif scoring is Scoring.JSON_F1:
        expected_json = reference if not isinstance(reference, str) else extract_json(reference)
        predicted = extract_json(answer)
        if predicted is None or expected_json is None:
            score = 0.0
        else:
            scores = field_scores(expected_json, predicted)
            score = scores["field_f1"]
            metrics.append(
                {"name": "field_precision", "value": scores["field_precision"], "type": "Metric"}
            )
            metrics.append(
                {"name": "field_recall", "value": scores["field_recall"], "type": "Metric"}
            )
        metrics.append(
            {"name": "json_parsed", "value": float(predicted is not None), "type": "Metric"}
        )
    else:
        expected_text = reference if isinstance(reference, str) else json.dumps(reference)
        score = 1.0 if answer.strip().lower() == expected_text.strip().lower() else 0.0
    metrics.insert(0, {"name": str(scoring), "value": score, "type": "Reward"})
    return {"id": sample_id, "aggregate_reward_score": score, "metrics_list": metrics}


def grade_batch(samples: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rewards of a batch, in order; a sample that is not an object gets 0."""
    results = []
    for sample in samples:
        if isinstance(sample, Mapping):
            results.append(grade_sample(sample))
        else:
            results.append({"id": "", "aggregate_reward_score": 0.0, "metrics_list": []})
    return results

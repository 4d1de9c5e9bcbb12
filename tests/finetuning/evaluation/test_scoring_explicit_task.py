"""An explicit task reads JSON references the way an inferred one does."""

from __future__ import annotations

import json

from finetuning.evaluation.scoring import Task, infer_task, score_results


def test_explicit_classification_reads_the_label_from_json_references() -> None:
    references = [json.dumps({"type": label}) for label in ("invoice", "letter", "memo")]
    answers = ["invoice", "letter", "letter"]

    def results() -> list[dict]:
        return [
            {
                "status": "success",
                "response_text": json.dumps({"type": a}),
                "inference_time_seconds": 1.0,
                "input_tokens": 10,
                "output_tokens": 2,
            }
            for a in answers
        ]

    inferred_task, key = infer_task(references)
    inferred = score_results(results(), references, task=inferred_task, label_key=key)
    explicit = score_results(results(), references, task=Task.CLASSIFICATION)
    assert inferred["accuracy"] == explicit["accuracy"] == 2 / 3

"""Shared helpers for the serving tests: results documents, the Lambda context and
environment (handlers load through ``tests.support.lambda_handlers``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetuning.evaluation.document import EvaluationDocument, ModelRun
from finetuning.evaluation.evaluator import regate
from finetuning.evaluation.gate import QualityGate
from finetuning.evaluation.scoring import Task, score_results

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"


def results_document(tuned_answers: list[str], base_answers: list[str], gate: dict) -> dict:
    """A comparison results JSON like `finetune evaluate` writes, with its gate verdict."""
    truth = ["invoice", "letter", "memo", "invoice", "letter", "memo"]

    def run(name: str, answers: list[str]) -> ModelRun:
        results = [
            {
                "sample_id": f"test.jsonl:{i + 1}",
                "status": "success",
                "response_text": json.dumps({"type": a}),
                "inference_time_seconds": 1.0,
                "input_tokens": 100,
                "output_tokens": 5,
            }
            for i, a in enumerate(answers)
        ]
        metrics = score_results(
            results,
            [json.dumps({"type": t}) for t in truth],
            task=Task.CLASSIFICATION,
            label_key="type",
        )
        return ModelRun(name, f"model-{name}", "bedrock", results, metrics)

    document = EvaluationDocument(
        tuned=run("Fine-tuned Model", tuned_answers),
        base=run("Base Model", base_answers),
        generated_at="2026-11-21T10:00:00+00:00",
    )
    regate(document, QualityGate.from_mapping(gate))
    return document.to_dict()


GOOD = ["invoice", "letter", "memo", "invoice", "letter", "letter"]  # 5/6
WEAK = ["invoice", "memo", "memo", "letter", "letter", "invoice"]  # 3/6
GATE = {"min": {"accuracy": 0.8}, "min_improvement_over_base": {"accuracy": 0.05}}


class FakeContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def lambda_environment(monkeypatch: Any, **values: str) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "llm-finetuning-test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "test")
    monkeypatch.setenv("AWS_REGION", REGION)
    for key, value in values.items():
        monkeypatch.setenv(key, value)

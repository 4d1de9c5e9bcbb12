"""The RFT grader function (``lambda/grader``) as Bedrock invokes it: a batch of samples in,
one reward per sample back, in order (the scoring: tests/finetuning/evaluation/test_rewards.py).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.finetuning.evaluation.test_rewards import sample
from tests.support.lambda_handlers import load_handler


def test_the_lambda_handler_answers_bedrocks_batch_in_order(monkeypatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    module = load_handler("grader")
    batch = [
        sample("x = 4", "x = 4", sample_id="a"),
        sample("receipt", {"label": "invoice"}, sample_id="b"),
        sample('{"total": 3}', {"total": 3, "vendor": "ACME"}, sample_id="c"),
    ]
    context = SimpleNamespace(
        function_name="grader",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:grader",
        aws_request_id="req-1",
    )
    result = module.handler(json.loads(json.dumps(batch)), context)
    assert [r["id"] for r in result] == ["a", "b", "c"]
    assert [r["aggregate_reward_score"] for r in result] == pytest.approx([1.0, 0.0, 2 / 3])
    assert json.loads(json.dumps(result)) == result  # JSON all the way back to Bedrock

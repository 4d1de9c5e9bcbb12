"""The quality gate: thresholds, improvement over base, missing metrics and bad definitions."""

from __future__ import annotations

import pytest

from finetuning.evaluation.gate import GateError, QualityGate, evaluate_gate

TUNED = {"accuracy": 0.88, "macro_f1": 0.8, "latency_p90_seconds": 2.5, "task": "classification"}
BASE = {"accuracy": 0.80, "macro_f1": 0.7, "latency_p90_seconds": 1.0}


def test_issue_example_passes_and_fails_on_improvement():
    gate = QualityGate(min={"accuracy": 0.85}, min_improvement_over_base={"accuracy": 0.05})
    result = evaluate_gate(gate, TUNED, BASE)
    assert result.passed
    assert [c.message for c in result.checks] == [
        "accuracy 0.88 >= 0.85",
        "accuracy improvement +0.08 (0.8 -> 0.88) >= +0.05",
    ]
    weaker = evaluate_gate(gate, TUNED, {"accuracy": 0.85})
    assert not weaker.passed
    assert weaker.checks[1].actual == pytest.approx(0.03)
    assert "quality gate failed: accuracy improvement +0.03" in weaker.summary


def test_max_checks_and_missing_metrics_fail_loudly():
    gate = QualityGate(max={"latency_p90_seconds": 2.0}, min={"field_f1": 0.9})
    result = evaluate_gate(gate, TUNED)
    assert not result.passed
    by_metric = {c.metric: c for c in result.checks}
    assert by_metric["latency_p90_seconds"].message == "latency_p90_seconds 2.5 > 2"
    assert by_metric["field_f1"].actual is None
    assert "field_f1 is not among the metrics (accuracy, latency_p90_seconds, macro_f1)" in (
        by_metric["field_f1"].message
    )


def test_improvement_without_base_fails():
    gate = QualityGate(min_improvement_over_base={"accuracy": 0.0})
    result = evaluate_gate(gate, TUNED, None)
    assert not result.passed
    assert "needs a base model run (--compare-with-base)" in result.checks[0].message


def test_gate_from_job_spec_file(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "job_name: deeds\nquality_gate:\n  min:\n    accuracy: 0.85\n"
        "  min_improvement_over_base:\n    accuracy: 0.05\n"
    )
    gate = QualityGate.from_file(spec)
    assert gate.min == {"accuracy": 0.85}
    assert gate.needs_base
    assert gate.min_improvement_over_base == {"accuracy": 0.05}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quality_gate: {}\n", "expected at least one check"),
        ("min: {accuracy: high}\n", "min.accuracy: Input should be a valid number"),
        ("minimum: {accuracy: 0.8}\n", "minimum: Extra inputs are not permitted"),
    ],
)
def test_bad_gate_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(GateError) as info:
        QualityGate.from_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_gate_file(tmp_path):
    with pytest.raises(GateError, match="quality gate file not found"):
        QualityGate.from_file(tmp_path / "none.yaml")

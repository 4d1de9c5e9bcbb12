"""The quality gate: may a tuned model go on to the registry and serving?

A gate lives in the job spec under ``quality_gate`` (or in a file of its own)::

    quality_gate:
      min:                        # the tuned model's metric must be at least this
        accuracy: 0.85
      min_improvement_over_base:  # tuned minus base must be at least this
        accuracy: 0.05
      max:                        # and at most this (latency, cost)
        latency_p90_seconds: 3.0

Metric names are the keys of the results' ``metrics`` object (``accuracy``, ``macro_f1``,
``field_f1``, ``success_rate``, ...). A check whose metric is missing fails with the list of
metrics that exist, rather than passing silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from finetuning.settings import StrictModel


class GateError(ValueError):
    """A gate definition that cannot be used; names the file and field."""


class QualityGate(StrictModel):
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    min_improvement_over_base: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> QualityGate:
        if not (self.min or self.max or self.min_improvement_over_base):
            raise ValueError(
                "expected at least one check under min, max or min_improvement_over_base"
            )
        return self

    @property
    def needs_base(self) -> bool:
        return bool(self.min_improvement_over_base)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "quality gate") -> QualityGate:
        if isinstance(data, dict) and "quality_gate" in data:
            data = data["quality_gate"]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: "
                f"{err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise GateError(f"{source}: invalid quality gate: {problems}") from None

    @classmethod
    def from_file(cls, path: Path) -> QualityGate:
        """Read a gate from YAML or JSON: the gate itself or a job spec with ``quality_gate``."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GateError(f"{path}: quality gate file not found") from None
        # Imported here: the workflow's functions ship this module without PyYAML.
        import yaml

        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise GateError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
            ) from None
        return cls.from_mapping(data, str(path))


@dataclass(frozen=True)
class CheckResult:
    check: str
    metric: str
    threshold: float
    actual: float | None
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "metric": self.metric,
            "threshold": self.threshold,
            "actual": self.actual,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[CheckResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.as_dict() for c in self.checks]}

    @property
    def summary(self) -> str:
        failed = [c.message for c in self.checks if not c.passed]
        if not failed:
            return f"quality gate passed ({len(self.checks)} checks)"
        return "quality gate failed: " + "; ".join(failed)


def _number(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _available(metrics: Mapping[str, Any]) -> str:
    names = sorted(k for k, v in metrics.items() if _number(metrics, k) is not None)
    return ", ".join(names) or "(none)"


def evaluate_gate(
    gate: QualityGate, tuned: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> GateResult:
    """Run every check of ``gate`` on the tuned (and base) model's metrics."""
    checks: list[CheckResult] = []
    for metric, threshold in gate.min.items():
        actual = _number(tuned, metric)
        if actual is None:
            message = f"{metric} is not among the metrics ({_available(tuned)})"
            checks.append(CheckResult("min", metric, threshold, None, False, message))
            continue
        ok = actual >= threshold
        sign = ">=" if ok else "<"
        checks.append(
            CheckResult(
                "min", metric, threshold, actual, ok, f"{metric} {actual:.4g} {sign} {threshold:g}"
            )
        )
    for metric, threshold in gate.max.items():
        actual = _number(tuned, metric)
        if actual is None:
            message = f"{metric} is not among the metrics ({_available(tuned)})"
            checks.append(CheckResult("max", metric, threshold, None, False, message))
            continue
        ok = actual <= threshold
        sign = "<=" if ok else ">"
        checks.append(
            CheckResult(
                "max", metric, threshold, actual, ok, f"{metric} {actual:.4g} {sign} {threshold:g}"
            )
        )
    for metric, threshold in gate.min_improvement_over_base.items():
        check = "min_improvement_over_base"
        if base is None:
            message = f"{metric} improvement needs a base model run (--compare-with-base)"
            checks.append(CheckResult(check, metric, threshold, None, False, message))
            continue
        tuned_value, base_value = _number(tuned, metric), _number(base, metric)
        if tuned_value is None or base_value is None:
            message = f"{metric} is not among both models' metrics ({_available(tuned)})"
            checks.append(CheckResult(check, metric, threshold, None, False, message))
            continue
        delta = tuned_value - base_value
        ok = delta >= threshold
        sign = ">=" if ok else "<"
        message = (
            f"{metric} improvement {delta:+.4g} ({base_value:.4g} -> {tuned_value:.4g}) "
            f"{sign} {threshold:+g}"
        )
        checks.append(CheckResult(check, metric, threshold, delta, ok, message))
    return GateResult(all(c.passed for c in checks), tuple(checks))

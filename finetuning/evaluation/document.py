"""The results JSON and the printed summary, in the shape the old inference script used.

Single model::

    {"model_id": ..., "model_name": ..., "results": [...], "metrics": {...}, ...}

Comparison (``--compare-with-base``): the same keys for the tuned model, plus
``"comparison_type": "model_comparison"``, ``"models": {name: {"model_id", "metrics",
"results"}}`` for both models and ``"improvement": {metric: tuned - base}``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetuning import __version__

TUNED_NAME = "Fine-tuned Model"
BASE_NAME = "Base Model"

# Metrics compared between the two models, when both have them.
COMPARED_METRICS = (
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "json_validity_rate",
    "exact_match",
    "field_f1",
    "token_f1",
    "success_rate",
    "average_inference_time_seconds",
    "latency_p50_seconds",
    "latency_p90_seconds",
    "latency_p99_seconds",
    "total_tokens_used",
    "estimated_cost_usd",
)


class DocumentError(ValueError):
    """A results file that is not an evaluation results document."""


@dataclass
class ModelRun:
    """One model's answers and metrics."""

    name: str
    model_id: str
    target_type: str
    results: list[dict[str, Any]]
    metrics: dict[str, Any]

    def as_entry(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "target_type": self.target_type,
            "metrics": self.metrics,
            "results": self.results,
        }


@dataclass
class EvaluationDocument:
    tuned: ModelRun
    base: ModelRun | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    training_metrics: dict[str, Any] | None = None
    quality_gate: dict[str, Any] | None = None
    generated_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    @property
    def runs(self) -> list[ModelRun]:
        return [self.tuned] + ([self.base] if self.base else [])

    def improvement(self) -> dict[str, float]:
        if self.base is None:
            return {}
        deltas = {}
        for metric in COMPARED_METRICS:
            tuned, base = self.tuned.metrics.get(metric), self.base.metrics.get(metric)
            if _is_number(tuned) and _is_number(base):
                deltas[metric] = round(float(tuned) - float(base), 6)
        return deltas

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model_id": self.tuned.model_id,
            "model_name": self.tuned.name,
            "target_type": self.tuned.target_type,
            "generated_at": self.generated_at,
            "generator": f"finetune evaluate {__version__}",
            "parameters": self.parameters,
            "inputs": self.inputs,
            "results": self.tuned.results,
            "metrics": self.tuned.metrics,
        }
        if self.base is not None:
            data["comparison_type"] = "model_comparison"
            data["models"] = {run.name: run.as_entry() for run in self.runs}
            data["improvement"] = self.improvement()
        if self.training_metrics:
            data["training_metrics"] = self.training_metrics
        if self.quality_gate is not None:
            data["quality_gate"] = self.quality_gate
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "results") -> EvaluationDocument:
        if not isinstance(data, dict) or "results" not in data or "metrics" not in data:
            raise DocumentError(
                f"{source}: not an evaluation results document: expected an object with "
                "'results' and 'metrics'"
            )
        name = data.get("model_name", TUNED_NAME)
        tuned = ModelRun(
            name,
            data.get("model_id", "?"),
            data.get("target_type", "?"),
            data["results"],
            data["metrics"],
        )
        base = None
        for other, entry in (data.get("models") or {}).items():
            if other != name:
                base = ModelRun(
                    other,
                    entry.get("model_id", "?"),
                    entry.get("target_type", "?"),
                    entry.get("results", []),
                    entry.get("metrics", {}),
                )
        return cls(
            tuned=tuned,
            base=base,
            parameters=data.get("parameters", {}),
            inputs=data.get("inputs", {}),
            training_metrics=data.get("training_metrics"),
            quality_gate=data.get("quality_gate"),
            generated_at=data.get("generated_at", ""),
        )

    @classmethod
    def load(cls, path: Path) -> EvaluationDocument:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DocumentError(f"{path}: results file not found") from None
        except json.JSONDecodeError as exc:
            raise DocumentError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data, str(path))

    def write(self, path: Path) -> None:
        """Write atomically: a reader never sees half a results file."""
        write_json_atomic(path, self.to_dict())


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    # mkstemp makes 0600; the output follows the umask (os.umask is read by setting it).
    umask = os.umask(0o022)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt_pct(value: Any) -> str:
    return f"{value:.2%}" if _is_number(value) else "n/a"


def _fmt_seconds(value: Any) -> str:
    return f"{value:.2f}s" if _is_number(value) else "n/a"


def format_summary(run: ModelRun) -> str:
    """The printed block the old script showed, with the new metrics under it."""
    m = run.metrics
    lines = [
        f"{run.name} Results Summary ({run.model_id}):",
        "=" * 50,
        f"Total Samples: {m.get('total_samples', 0)}",
        f"Successful Inferences: {m.get('successful_inferences', 0)}",
        f"Success Rate: {_fmt_pct(m.get('success_rate'))}",
    ]
    if "accuracy" in m:
        lines += [
            f"Correct Predictions: {m.get('correct_predictions', 0)}",
            f"Accuracy: {_fmt_pct(m['accuracy'])}",
            f"Macro F1: {m['macro_f1']:.4f}   Weighted F1: {m['weighted_f1']:.4f}",
        ]
    if "field_f1" in m:
        lines += [
            f"JSON Validity Rate: {_fmt_pct(m['json_validity_rate'])}",
            f"Exact Match: {_fmt_pct(m['exact_match'])}",
            f"Field F1: {m['field_f1']:.4f}",
        ]
    elif "token_f1" in m:
        lines += [
            f"Exact Match: {_fmt_pct(m['exact_match'])}",
            f"Token F1: {m['token_f1']:.4f}",
        ]
    rate = m.get("samples_per_second")
    if _is_number(rate):
        batch = m.get("batch_size")
        batched = f" (batch size {batch})" if _is_number(batch) and batch > 1 else ""
        lines.append(
            f"Throughput: {rate:.2f} samples/s{batched}, "
            f"{_fmt_seconds(m.get('generation_seconds'))} for the answers made in this run"
        )
    lines += [
        f"Average Inference Time: {_fmt_seconds(m.get('average_inference_time_seconds'))}",
        "Latency p50/p90/p99: "
        + " / ".join(
            _fmt_seconds(m.get(k))
            for k in ("latency_p50_seconds", "latency_p90_seconds", "latency_p99_seconds")
        ),
        f"Total Tokens Used: {m.get('total_tokens_used', 0):,} "
        f"(input {m.get('input_tokens', 0):,}, output {m.get('output_tokens', 0):,})",
    ]
    per_sample = m.get("average_tokens_per_sample")
    if _is_number(per_sample):
        lines.append(f"Average Tokens per Sample: {per_sample:.1f}")
    cost = m.get("estimated_cost_usd")
    lines.append(
        f"Estimated Cost: ${cost:.4f}" if _is_number(cost) else "Estimated Cost: n/a (no prices)"
    )
    return "\n".join(lines)


def format_comparison(document: EvaluationDocument) -> str:
    if document.base is None:
        return ""
    lines = ["Comparison (fine-tuned minus base):", "=" * 50]
    for metric, delta in document.improvement().items():
        lines.append(f"{metric}: {delta:+.4f}")
    return "\n".join(lines)

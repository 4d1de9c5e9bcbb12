"""One evaluation end to end: answers, scores, comparison, quality gate, results file.

This is what ``finetune evaluate`` and the platform's evaluation step both call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetuning.evaluation.curves import LossCurves
from finetuning.evaluation.document import BASE_NAME, TUNED_NAME, EvaluationDocument, ModelRun
from finetuning.evaluation.gate import GateError, QualityGate, evaluate_gate
from finetuning.evaluation.pricing import TokenPrices, on_demand_prices
from finetuning.evaluation.runner import ResultJournal, RunOptions, RunStats, run_target
from finetuning.evaluation.samples import EvaluationSample
from finetuning.evaluation.scoring import Task, infer_task, score_results
from finetuning.evaluation.targets import InferenceParameters, Target, check_inputs


@dataclass
class EvaluationSettings:
    params: InferenceParameters = field(default_factory=InferenceParameters)
    run: RunOptions = field(default_factory=RunOptions)
    task: Task | None = None
    label_key: str | None = None
    labels: Sequence[str] | None = None
    prices: TokenPrices | None = None
    gate: QualityGate | None = None
    tuned_name: str = TUNED_NAME
    base_name: str = BASE_NAME


def journal_path(output_file: Path, role: str) -> Path:
    """``results.json`` -> ``results.json.partial.jsonl`` (tuned) / ``.base.partial.jsonl``."""
    suffix = ".partial.jsonl" if role == "tuned" else f".{role}.partial.jsonl"
    return output_file.with_name(output_file.name + suffix)


def training_summary(curves: LossCurves | None) -> dict[str, Any] | None:
    if not curves:
        return None
    summary: dict[str, Any] = {"sources": curves.sources}
    if curves.training:
        summary["final_training_loss"] = curves.training[-1].loss
        summary["training_steps"] = curves.training[-1].step
    if curves.validation:
        summary["final_validation_loss"] = curves.validation[-1].loss
        summary["best_validation_loss"] = min(p.loss for p in curves.validation)
    return summary


def throughput_metrics(stats: RunStats) -> dict[str, Any]:
    """Samples per second over the answers this run made (resumed answers are not timed),
    the seconds they took and the batch size (1: one sample per call)."""
    rate = stats.samples_per_second
    return {
        "samples_per_second": round(rate, 4) if rate is not None else None,
        "generation_seconds": round(stats.seconds, 3) if stats.generated else None,
        "batch_size": stats.batch_size,
    }


def evaluate(
    tuned: Target,
    samples: Sequence[EvaluationSample],
    settings: EvaluationSettings,
    *,
    base: Target | None = None,
    output_file: Path | None = None,
    curves: LossCurves | None = None,
    inputs: dict[str, Any] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> EvaluationDocument:
    """Evaluate ``tuned`` (and ``base``) on ``samples``; write ``output_file`` when given.

    Raises :class:`finetuning.evaluation.targets.TargetError` before any call when a target
    cannot serve these inputs, and :class:`finetuning.evaluation.runner.EvaluationAborted` when
    calls fail for a reason every call shares.
    """
    if settings.gate is not None and settings.gate.needs_base and base is None:
        raise GateError(
            "the quality gate checks improvement over the base model: add --compare-with-base "
            "and a base model"
        )
    targets = [(tuned, "tuned", settings.tuned_name)]
    if base is not None:
        targets.append((base, "base", settings.base_name))
    for target, _, _ in targets:
        check_inputs(target, list(samples), settings.params)

    references = [s.reference for s in samples]
    task, detected_key = (
        (settings.task, settings.label_key) if settings.task else infer_task(references)
    )
    label_key = settings.label_key or detected_key
    runs = []
    for target, role, name in targets:
        journal = ResultJournal(journal_path(output_file, role)) if output_file else None
        extra = {"sleep": sleep} if sleep else {}
        stats = RunStats()
        results = run_target(
            target,
            samples,
            settings.params,
            journal,
            settings.run,
            description=name,
            stats=stats,
            **extra,
        )
        prices = settings.prices or on_demand_prices(target.model_id)
        metrics = score_results(
            results,
            references,
            task=task,
            label_key=label_key,
            labels=settings.labels,
            prices=prices,
        )
        metrics |= throughput_metrics(stats)
        runs.append(ModelRun(name, target.model_id, target.target_type, results, metrics))

    document = EvaluationDocument(
        tuned=runs[0],
        base=runs[1] if len(runs) > 1 else None,
        parameters=settings.params.as_dict() | {"task": task.value, "label_key": label_key},
        inputs=inputs or {"samples": len(samples)},
        training_metrics=training_summary(curves),
    )
    if settings.gate is not None:
        result = evaluate_gate(
            settings.gate, document.tuned.metrics, document.base.metrics if document.base else None
        )
        document.quality_gate = result.as_dict()
    if output_file is not None:
        document.write(output_file)
    return document


def regate(document: EvaluationDocument, gate: QualityGate) -> EvaluationDocument:
    """Apply a (new) gate to an existing results document."""
    result = evaluate_gate(
        gate, document.tuned.metrics, document.base.metrics if document.base else None
    )
    document.quality_gate = result.as_dict()
    return document

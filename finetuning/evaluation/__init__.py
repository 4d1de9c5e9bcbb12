"""Evaluate base and fine-tuned models, report on them and gate on quality.

Modules, in the order an evaluation uses them:

- ``samples``: inputs (images, image folders, JSONL test sets, ground-truth files);
- ``targets``: Bedrock Converse, SageMaker endpoints and local model folders;
- ``runner``: concurrency, rate limiting, retries and the resumable results journal;
- ``metrics`` and ``scoring``: classification, structured JSON, text and operational metrics;
- ``gate``: the quality gate from the job spec;
- ``document``: the results JSON (the old scripts' shape) and the printed summary;
- ``curves`` and ``report``: loss curves, charts, ``report.md`` and ``report.html``;
- ``evaluator``: all of the above in one call.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names and their modules. Imports are lazy: the CLI and Lambda handlers load only
# what they use (matplotlib for reports, transformers for local models).
_EXPORTS = {
    "LossCurves": "curves",
    "read_loss_curves": "curves",
    "EvaluationDocument": "document",
    "ModelRun": "document",
    "EvaluationSettings": "evaluator",
    "evaluate": "evaluator",
    "GateResult": "gate",
    "QualityGate": "gate",
    "evaluate_gate": "gate",
    "ReportFiles": "report",
    "upload_report": "report",
    "write_report": "report",
    "EvaluationAborted": "runner",
    "RetryPolicy": "runner",
    "RunOptions": "runner",
    "EvaluationSample": "samples",
    "GroundTruth": "samples",
    "image_samples": "samples",
    "read_test_set": "samples",
    "Task": "scoring",
    "BedrockConverseTarget": "targets",
    "InferenceParameters": "targets",
    "LocalModelTarget": "targets",
    "SageMakerEndpointTarget": "targets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

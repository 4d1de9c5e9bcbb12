"""``finetune grader``: try an RFT grader locally before paying for a job.

``finetune grader test --data rft.jsonl --responses answers.jsonl`` sends each record, with
its answer appended as the assistant turn, to the grader in the batch shape Bedrock uses
(``finetuning/evaluation/rewards.py``) and shows the rewards: the platform's grader by
default, or your own Lambda handler (``--grader path/to/handler.py:lambda_handler``), run
in-process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetuning.cli import EXIT_FAILED, EXIT_OK, UsageError
from finetuning.cli._service_common import print_json

# Samples per grader call: Bedrock batches samples; small batches keep errors local.
BATCH_SIZE = 32


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "grader",
        help="try a reinforcement fine-tuning grader locally",
        description="Run an RFT grader (reward function) over a dataset on this machine.",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    test = commands.add_parser(
        "test",
        help="score answers with a grader and show the rewards",
        description=(
            "Each RFT record (messages + reference_answer) gets an answer: from --responses "
            "(JSONL of {id, response} or one answer per line, in record order), from the "
            "record's own last assistant turn, or, with --reference-as-answer, its reference "
            "(a grader that does not give those full marks is wrong). The grader is the "
            "platform's (exact match, classification label or JSON field F1; see "
            "docs/bedrock.md) unless --grader names your handler."
        ),
    )
    test.add_argument("--data", type=Path, required=True, help="RFT dataset (JSONL)")
    answers = test.add_mutually_exclusive_group()
    answers.add_argument("--responses", type=Path, help="answers to score (JSONL)")
    answers.add_argument(
        "--reference-as-answer",
        action="store_true",
        help="score each reference answer against itself (a grader self-check)",
    )
    test.add_argument(
        "--grader",
        metavar="FILE.py:FUNCTION",
        help="your grader: a Lambda handler taking (event, context) (default: the platform's)",
    )
    test.add_argument("--limit", type=int, help="score only the first N records")
    test.add_argument("--json", action="store_true", help="print the rewards as JSON")
    test.set_defaults(handler=grader_test)


def load_grader(spec: str | None) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The platform's grader, or ``FILE.py:FUNCTION`` called as a Lambda handler."""
    if spec is None:
        from finetuning.evaluation.rewards import grade_batch

        return grade_batch
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not name or path.suffix != ".py":
        raise UsageError(f"--grader {spec!r}: expected FILE.py:FUNCTION")
    if not path.is_file():
        raise UsageError(f"--grader: {path}: no such file")
    module_spec = importlib.util.spec_from_file_location(f"_grader_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    try:
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # the user's file: report it, not a traceback
        raise UsageError(f"--grader: {path} failed to load: {type(exc).__name__}: {exc}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"--grader: {path} has no function {name!r}")
    return lambda batch: function(batch, None)


def _read_jsonl(path: Path, what: str) -> list[Any]:
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise UsageError(f"{path}:{number}: not valid JSON: {exc}") from None
    return rows


def _answers(path: Path, count: int) -> tuple[dict[str, str], list[str]]:
    """Answers by id and in order, from {id, response} objects or bare strings."""
    by_id: dict[str, str] = {}
    ordered: list[str] = []
    for number, row in enumerate(_read_jsonl(path, "--responses"), start=1):
        if isinstance(row, str):
            ordered.append(row)
        elif isinstance(row, dict) and isinstance(row.get("response"), str):
            ordered.append(row["response"])
            if "id" in row:
                by_id[str(row["id"])] = row["response"]
        else:
            raise UsageError(
                f"{path}:{number}: expected a JSON string or {{'id', 'response'}}, "
                f"found {json.dumps(row)[:80]}"
            )
    if not by_id and len(ordered) < count:
        raise UsageError(f"{path}: {len(ordered)} answers for {count} records")
    return by_id, ordered


def build_samples(
    records: list[Any], *, responses: Path | None, reference_as_answer: bool
) -> list[dict[str, Any]]:
    """The grader's input: each record with an id and the answer as its last turn."""
    by_id, ordered = _answers(responses, len(records)) if responses else ({}, [])
    samples = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise UsageError(f"record {index + 1}: expected an RFT record with messages")
        sample = dict(record)
        sample_id = str(record.get("id", f"sample-{index + 1:05d}"))
        sample["id"] = sample_id
        messages = list(record["messages"])
        if reference_as_answer:
            reference = record.get("reference_answer")
            answer = reference if isinstance(reference, str) else json.dumps(reference)
        elif responses is not None:
            answer = by_id.get(sample_id) if by_id else ordered[index]
            if answer is None:
                raise UsageError(f"--responses has no answer for id {sample_id!r}")
        elif (
            messages
            and isinstance(messages[-1], dict)
            and messages[-1].get("role") == ("assistant")
        ):
            answer = None  # the record carries its answer
        else:
            raise UsageError(
                f"record {index + 1} ({sample_id}) has no answer: give --responses, or "
                "--reference-as-answer to check the grader itself"
            )
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
        sample["messages"] = messages
        samples.append(sample)
    return samples


def grader_test(args: argparse.Namespace) -> int:
    records = _read_jsonl(args.data, "--data")
    if args.limit is not None:
        records = records[: args.limit]
    if not records:
        raise UsageError(f"{args.data}: no records")
    samples = build_samples(
        records, responses=args.responses, reference_as_answer=args.reference_as_answer
    )
    grade = load_grader(args.grader)
    rewards: list[dict[str, Any]] = []
    for start in range(0, len(samples), BATCH_SIZE):
        batch = samples[start : start + BATCH_SIZE]
        try:
            out = grade(batch)
        except Exception as exc:  # the user's grader failed: say where, not a traceback
            print(
                f"finetune: grader failed on records {start + 1}-{start + len(batch)}: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        problem = _contract_problem(out, batch)
        if problem:
            print(f"finetune: grader output breaks the RFT contract: {problem}", file=sys.stderr)
            return EXIT_FAILED
        rewards.extend(out)
    scores = [float(r["aggregate_reward_score"]) for r in rewards]
    summary = {
        "records": len(scores),
        "mean_reward": statistics.fmean(scores),
        "min_reward": min(scores),
        "max_reward": max(scores),
        "full_marks": sum(score >= 1.0 for score in scores),
        "zero": sum(score <= 0.0 for score in scores),
    }
    if args.json:
        print_json({"summary": summary, "rewards": rewards})
        return EXIT_OK
    for reward in rewards:
        extra = ", ".join(
            f"{m['name']}={float(m['value']):.3f}" for m in reward.get("metrics_list") or []
        )
        print(f"{reward['id']}: {float(reward['aggregate_reward_score']):.3f}  {extra}")
    print(
        f"{summary['records']} records: mean reward {summary['mean_reward']:.3f} "
        f"(min {summary['min_reward']:.3f}, max {summary['max_reward']:.3f}; "
        f"{summary['full_marks']} full marks, {summary['zero']} zero)"
    )
    return EXIT_OK


def _contract_problem(out: Any, batch: list[dict[str, Any]]) -> str | None:
    """What is wrong with a grader's answer to ``batch`` (None when it is well formed)."""
    if not isinstance(out, list) or len(out) != len(batch):
        size = len(out) if isinstance(out, list) else type(out).__name__
        return f"expected a list of {len(batch)} results, got {size}"
    for sample, result in zip(batch, out, strict=True):
        if not isinstance(result, dict) or str(result.get("id")) != sample["id"]:
            return f"expected a result with id {sample['id']!r}, got {str(result)[:80]}"
        score = result.get("aggregate_reward_score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            return f"{sample['id']}: aggregate_reward_score must be a number, got {score!r}"
    return None

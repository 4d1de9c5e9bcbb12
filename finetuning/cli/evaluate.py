"""``finetune evaluate``: run a model over a test set, score it, compare it, report and gate.

Only argparse is imported at start-up; the evaluation library (boto3, matplotlib,
transformers) loads when the command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from finetuning.cli import EXIT_FAILED, EXIT_OK, SetupError, UsageError
from finetuning.evaluation.generation import DEFAULT_BATCH_SIZE

EXAMPLES = """\
examples:
  # a base model on one image
  finetune evaluate --model-id us.amazon.nova-lite-v1:0 --image-path document.png

  # a fine-tuned model behind provisioned throughput against the base model, with labels
  finetune evaluate --provisioned-model-arn arn:aws:bedrock:...:provisioned-model/abc \\
      --image-directory images/ --ground-truth-file labels.json \\
      --compare-with-base --base-model-id us.amazon.nova-lite-v1:0 --output-file comparison.json

  # a JSONL test set (last assistant turn = reference) on a local model, with loss curves
  finetune evaluate --local-model out/model --test-set test.jsonl \\
      --training-metrics out/training_metrics.csv --quality-gate job.yaml

  # rebuild the report and re-apply a gate from an earlier results file (no model calls)
  finetune evaluate --from-results comparison.json --min-accuracy 0.85 --min-improvement 0.05

An interrupted run resumes where it stopped: run the same command again (--restart discards
what was recorded). Exit codes: 0 ok, 1 failed (calls failed, or the quality gate failed),
2 bad usage (arguments, unreadable or invalid inputs), 3 setup (AWS credentials, region or
network, or a --device this machine does not have); they stop the run before the first sample.
"""

MODEL_FAMILIES = ("nova", "anthropic", "meta", "titan", "mistral")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a base or fine-tuned model: metrics, comparison, report, quality gate",
        description=(
            "Run a model (Bedrock model id, provisioned model, custom model deployment, "
            "SageMaker endpoint or local model folder) over images or a JSONL test set; score "
            "the answers; compare with the base model; write the results JSON, report.md and "
            "report.html; apply a quality gate."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("model to evaluate (exactly one)")
    which = target.add_mutually_exclusive_group()
    which.add_argument("--model-id", help="Bedrock model id, inference profile or model ARN")
    which.add_argument("--provisioned-model-arn", help="ARN of Bedrock provisioned throughput")
    which.add_argument(
        "--custom-model-deployment-arn", help="ARN of a Bedrock on-demand custom model deployment"
    )
    which.add_argument("--endpoint-name", help="name of a SageMaker real-time endpoint")
    which.add_argument(
        "--local-model",
        type=Path,
        metavar="DIR",
        help="local model folder, or the id of a model `finetune local models` lists",
    )
    which.add_argument(
        "--from-results",
        type=Path,
        metavar="FILE",
        help="make no calls: rebuild the report and re-apply the gate from a results JSON",
    )
    target.add_argument("--model-name", default=None, help="name in results and reports")
    target.add_argument(
        "--model-family",
        choices=MODEL_FAMILIES,
        help="Bedrock model family, for --top-k when the ARN does not say (looked up otherwise)",
    )
    target.add_argument(
        "--endpoint-payload",
        choices=("chat", "openai", "inputs"),
        default="chat",
        help=(
            "SageMaker request body: 'chat' (the platform's inference.py, default), 'openai' "
            "(chat completions: vLLM/LMI, TGI; images) or 'inputs' (Hugging Face toolkit)"
        ),
    )
    target.add_argument("--inference-component", help="SageMaker inference component name")
    target.add_argument("--device", help="torch device for --local-model (default: cuda if any)")
    target.add_argument("--region", help="AWS region (default: from the AWS configuration)")

    base = parser.add_argument_group("base model comparison")
    base.add_argument(
        "--compare-with-base", action="store_true", help="also evaluate a base model and compare"
    )
    base_which = base.add_mutually_exclusive_group()
    base_which.add_argument("--base-model-id", help="Bedrock base model id or ARN")
    base_which.add_argument("--base-endpoint-name", help="SageMaker endpoint of the base model")
    base_which.add_argument(
        "--base-model-path", type=Path, metavar="DIR", help="local folder of the base model"
    )
    base.add_argument("--base-model-name", default=None, help="name in results and reports")

    inputs = parser.add_argument_group("inputs (exactly one)")
    source = inputs.add_mutually_exclusive_group()
    source.add_argument(
        "--image-path", type=Path, action="append", metavar="FILE", help="an image (repeatable)"
    )
    source.add_argument("--image-directory", type=Path, metavar="DIR", help="a folder of images")
    source.add_argument(
        "--test-set",
        type=Path,
        metavar="JSONL",
        help="JSONL test set; each record's last assistant turn is the reference answer",
    )
    inputs.add_argument(
        "--ground-truth-file", type=Path, metavar="FILE", help='labels: {"path": "label", ...}'
    )
    inputs.add_argument("--labels", help="comma-separated class labels (default: from the labels)")
    inputs.add_argument("--system-prompt-file", type=Path, metavar="FILE")
    inputs.add_argument("--task-prompt-file", type=Path, metavar="FILE")
    inputs.add_argument(
        "--task",
        choices=("auto", "classification", "json", "text"),
        default="auto",
        help="how answers are scored (default: auto, from the references)",
    )
    inputs.add_argument(
        "--label-key", default=None, help="JSON field holding the label (default: type)"
    )
    inputs.add_argument("--limit", type=int, metavar="N", help="evaluate the first N samples only")

    sampling = parser.add_argument_group("inference parameters")
    sampling.add_argument("--temperature", type=float)
    sampling.add_argument("--top-p", type=float)
    sampling.add_argument(
        "--top-k", type=int, help="only where the model has one (Bedrock: Nova, Anthropic)"
    )
    sampling.add_argument("--max-tokens", type=int, default=512)

    running = parser.add_argument_group("running")
    running.add_argument("--concurrency", type=int, default=4, help="calls in flight (default 4)")
    running.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=(
            f"local models: prompts answered together in one batch (default {DEFAULT_BATCH_SIZE}; "
            "1 answers one at a time); greedy answers are the same at any batch size"
        ),
    )
    running.add_argument(
        "--requests-per-second", type=float, help="rate limit across all calls (default: none)"
    )
    running.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="retries per sample on throttling and transient errors (default 5)",
    )
    running.add_argument(
        "--output-file",
        type=Path,
        default=Path("evaluation_results.json"),
        help="results JSON (default: evaluation_results.json); progress is kept beside it",
    )
    running.add_argument(
        "--restart", action="store_true", help="discard answers recorded by an earlier run"
    )
    running.add_argument(
        "--input-price-per-1k", type=float, help="USD per 1,000 input tokens, for the cost"
    )
    running.add_argument(
        "--output-price-per-1k", type=float, help="USD per 1,000 output tokens, for the cost"
    )

    reporting = parser.add_argument_group("report and quality gate")
    reporting.add_argument(
        "--report-dir", type=Path, help="report folder (default: <output file stem>-report)"
    )
    reporting.add_argument("--no-report", action="store_true", help="write no report")
    reporting.add_argument(
        "--training-metrics",
        action="append",
        metavar="PATH",
        help="loss curves: a metrics CSV, a job output folder or s3:// prefix (repeatable)",
    )
    reporting.add_argument(
        "--report-s3-uri", help="also upload the report and results here (s3://bucket/prefix/)"
    )
    reporting.add_argument(
        "--quality-gate", type=Path, metavar="FILE", help="gate file, or a job spec with one"
    )
    reporting.add_argument("--min-accuracy", type=float, help="gate: accuracy at least this")
    reporting.add_argument(
        "--min-improvement", type=float, help="gate: accuracy at least this above the base"
    )

    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print a JSON summary")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument("--verbose", action="store_true", help="log each call")
    parser.set_defaults(handler=run)


def _target_flags(args: argparse.Namespace) -> list[str]:
    names = ("model_id", "provisioned_model_arn", "custom_model_deployment_arn", "endpoint_name")
    return [n for n in (*names, "local_model") if getattr(args, n) is not None]


def _check_usage(args: argparse.Namespace) -> None:
    if args.from_results is not None:
        return
    if not _target_flags(args):
        raise UsageError(
            "choose the model to evaluate: --model-id, --provisioned-model-arn, "
            "--custom-model-deployment-arn, --endpoint-name or --local-model"
        )
    if not (args.image_path or args.image_directory or args.test_set):
        raise UsageError("choose the inputs: --image-path, --image-directory or --test-set")
    has_base = bool(args.base_model_id or args.base_endpoint_name or args.base_model_path)
    if args.compare_with_base and not has_base:
        raise UsageError(
            "--compare-with-base needs the base model: --base-model-id, "
            "--base-endpoint-name or --base-model-path"
        )
    if has_base and not args.compare_with_base:
        raise UsageError("a base model was given without --compare-with-base")
    if args.min_improvement is not None and not args.compare_with_base:
        raise UsageError("--min-improvement compares with the base model: add --compare-with-base")
    if (args.input_price_per_1k is None) != (args.output_price_per_1k is None):
        raise UsageError("give both --input-price-per-1k and --output-price-per-1k, or neither")
    for flag, value, minimum in (
        ("--concurrency", args.concurrency, 1),
        ("--batch-size", args.batch_size, 1),
        ("--max-retries", args.max_retries, 0),
        ("--limit", args.limit, 1),
        ("--max-tokens", args.max_tokens, 1),
    ):
        if value is not None and value < minimum:
            raise UsageError(f"{flag}: expected an integer >= {minimum}, got {value}")
    if args.requests_per_second is not None and args.requests_per_second <= 0:
        raise UsageError(f"--requests-per-second: expected > 0, got {args.requests_per_second}")
    for flag, price in (
        ("--input-price-per-1k", args.input_price_per_1k),
        ("--output-price-per-1k", args.output_price_per_1k),
    ):
        if price is not None and price < 0:
            raise UsageError(f"{flag}: expected a price >= 0, got {price}")
    if args.image_path is None and args.image_directory is None and args.ground_truth_file:
        raise UsageError("--ground-truth-file labels images; a --test-set carries its references")
    if args.report_s3_uri and not args.report_s3_uri.startswith("s3://"):
        raise UsageError(f"--report-s3-uri: expected s3://bucket/prefix/, got {args.report_s3_uri}")


def _gate(args: argparse.Namespace) -> Any:
    from finetuning.evaluation.gate import QualityGate

    gate = QualityGate.from_file(args.quality_gate) if args.quality_gate else None
    if args.min_accuracy is None and args.min_improvement is None:
        return gate
    data = gate.model_dump() if gate else {"min": {}, "max": {}, "min_improvement_over_base": {}}
    if args.min_accuracy is not None:
        data["min"]["accuracy"] = args.min_accuracy
    if args.min_improvement is not None:
        data["min_improvement_over_base"]["accuracy"] = args.min_improvement
    return QualityGate.from_mapping(data, "command line")


def _session(args: argparse.Namespace) -> Any:
    """Region as the AWS CLI resolves it; credentials, region and network are checked now
    (exit 3 with a hint), before any sample is sent: the runner would otherwise record one
    failed call per sample."""
    from finetuning.cli import _aws

    session = _aws.session(args.region, preflight=False)
    _aws.check(session)
    return session


def _client_config() -> Any:
    from botocore.config import Config

    from finetuning.cli._aws import CONNECT_TIMEOUT_SECONDS

    # One attempt per botocore call: the runner retries with backoff and counts attempts.
    return Config(
        retries={"mode": "standard", "max_attempts": 1},
        read_timeout=300,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )


def _check_device(device: str | None) -> None:
    """A --device that torch cannot use here stops the command before any model loads."""
    if not device or device == "cpu":
        return
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise SetupError(
            f"--device {device}: CUDA is not available on this machine (torch "
            f"{torch.__version__}, no usable NVIDIA GPU); use --device cpu or leave --device out"
        )
    if (
        kind == "cuda"
        and ":" in device
        and int(device.split(":", 1)[1] or 0) >= (torch.cuda.device_count())
    ):
        raise SetupError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SetupError(f"--device {device}: MPS is not available on this machine")


def _bedrock_target(model_id: str, args: argparse.Namespace, session: Any) -> Any:
    from finetuning.evaluation.targets import BedrockConverseTarget, family_of

    # Only an ARN that hides its base model needs the control plane, and only for top-k.
    lookup = args.top_k is not None and args.model_family is None and not family_of(model_id)
    control = session.client("bedrock") if lookup else None
    return BedrockConverseTarget(
        model_id,
        session.client("bedrock-runtime", config=_client_config()),
        family=args.model_family,
        control_client=control,
    )


def _targets(args: argparse.Namespace) -> tuple[Any, Any | None]:
    from finetuning.evaluation.targets import LocalModelTarget, SageMakerEndpointTarget

    if args.local_model is not None or args.base_model_path is not None:
        _check_device(args.device)
    session = None
    if args.local_model is None or args.base_model_id or args.base_endpoint_name:
        session = _session(args)
    bedrock_id = args.model_id or args.provisioned_model_arn or args.custom_model_deployment_arn
    if bedrock_id:
        tuned = _bedrock_target(bedrock_id, args, session)
    elif args.endpoint_name:
        tuned = SageMakerEndpointTarget(
            args.endpoint_name,
            session.client("sagemaker-runtime", config=_client_config()),
            payload=args.endpoint_payload,
            inference_component=args.inference_component,
        )
    else:
        tuned = LocalModelTarget(_local_model(args.local_model), device=args.device)
    base = None
    if args.base_model_id:
        base = _bedrock_target(args.base_model_id, args, session)
    elif args.base_endpoint_name:
        base = SageMakerEndpointTarget(
            args.base_endpoint_name,
            session.client("sagemaker-runtime", config=_client_config()),
            payload=args.endpoint_payload,
        )
    elif args.base_model_path:
        base = LocalModelTarget(args.base_model_path, device=args.device)
    return tuned, base


def _local_model(path: Path) -> Path:
    """A model folder, or the id of a model in the local registry (`finetune local models`)."""
    if path.exists():
        return path
    from finetuning.local.service import default_home

    database = default_home() / "state.db"
    if not database.is_file():
        return path
    from finetuning.errors import ModelNotFoundError
    from finetuning.local.model_registry import LocalModelRegistry
    from finetuning.local.store import JobStore

    try:
        return LocalModelRegistry(JobStore(database)).get(str(path)).path
    except ModelNotFoundError:
        return path


def _samples(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any], list[str] | None]:
    from finetuning.evaluation import prompts
    from finetuning.evaluation.samples import GroundTruth, image_samples, list_images, read_test_set

    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    system = (
        prompts.read_prompt(args.system_prompt_file, "system prompt")
        if args.system_prompt_file
        else None
    )
    if args.test_set:
        samples = read_test_set(args.test_set, system_prompt=system)
        inputs: dict[str, Any] = {"test_set": str(args.test_set)}
    else:
        truth = GroundTruth.from_file(args.ground_truth_file) if args.ground_truth_file else None
        labels = labels or (truth.labels if truth else None)
        task = (
            prompts.read_prompt(args.task_prompt_file, "task prompt")
            if args.task_prompt_file
            else prompts.task_prompt(labels)
        )
        images = args.image_path or list_images(args.image_directory)
        samples = image_samples(
            images,
            task_prompt=task,
            system_prompt=system or prompts.DEFAULT_SYSTEM_PROMPT,
            ground_truth=truth,
        )
        inputs = {
            "images": str(args.image_directory) if args.image_directory else len(images),
            "ground_truth_file": str(args.ground_truth_file) if truth else None,
            "labelled": sum(1 for s in samples if s.reference is not None),
        }
    if args.limit:
        samples = samples[: args.limit]
    inputs["samples"] = len(samples)
    return samples, inputs, labels


def _report(args: argparse.Namespace, document: Any, curves: Any) -> Any:
    from finetuning.evaluation.report import write_report

    directory = args.report_dir or args.output_file.with_name(f"{args.output_file.stem}-report")
    return write_report(document, directory, curves=curves)


def _upload(args: argparse.Namespace, files: Any, results_file: Path | None) -> list[str]:
    from finetuning.evaluation.report import upload_report

    s3 = _session(args).client("s3")
    uris = upload_report(files.all, files.directory, args.report_s3_uri, s3)
    if results_file is not None and results_file.exists():
        uris += upload_report([results_file], results_file.parent, args.report_s3_uri, s3)
    return uris


def _print(args: argparse.Namespace, document: Any, files: Any, uploaded: list[str]) -> None:
    from finetuning.evaluation.document import format_comparison, format_summary

    if args.json:
        summary = {
            "output_file": str(args.output_file) if args.from_results is None else None,
            "metrics": _headline(document.tuned.metrics),
            "base_metrics": _headline(document.base.metrics) if document.base else None,
            "improvement": document.improvement() or None,
            "quality_gate": document.quality_gate,
            "report": {"markdown": str(files.markdown), "html": str(files.html)} if files else None,
            "uploaded": uploaded or None,
        }
        print(json.dumps(summary, indent=2))
        return
    for run in document.runs:
        print(format_summary(run))
        print()
    if document.base:
        print(format_comparison(document))
        print()
    if document.quality_gate is not None:
        verdict = "PASSED" if document.quality_gate["passed"] else "FAILED"
        print(f"Quality gate {verdict}:")
        for check in document.quality_gate["checks"]:
            print(f"  [{'pass' if check['passed'] else 'FAIL'}] {check['message']}")
        print()
    if args.from_results is None:
        print(f"Results: {args.output_file}")
    if files:
        print(f"Report: {files.html} (and {files.markdown.name})")
    for uri in uploaded:
        print(f"Uploaded: {uri}")


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    skip = ("per_class", "per_field", "confusion_matrix")
    return {k: v for k, v in metrics.items() if k not in skip}


def run(args: argparse.Namespace) -> int:
    _check_usage(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from finetuning.cli._errors import EXIT_SETUP, classify
    from finetuning.evaluation.curves import CurveError, read_loss_curves
    from finetuning.evaluation.document import DocumentError, EvaluationDocument
    from finetuning.evaluation.evaluator import (
        EvaluationSettings,
        evaluate,
        regate,
        training_summary,
    )
    from finetuning.evaluation.gate import GateError
    from finetuning.evaluation.pricing import TokenPrices
    from finetuning.evaluation.runner import (
        EvaluationAborted,
        JournalMismatch,
        RetryPolicy,
        RunOptions,
    )
    from finetuning.evaluation.samples import SampleError
    from finetuning.evaluation.scoring import Task
    from finetuning.evaluation.targets import InferenceParameters, TargetError

    try:
        gate = _gate(args)
        curves = None
        if args.training_metrics:
            s3 = None
            if any(p.startswith("s3://") for p in args.training_metrics):
                s3 = _session(args).client("s3")
            curves = read_loss_curves(args.training_metrics, s3_client=s3)
        if args.from_results is not None:
            document = EvaluationDocument.load(args.from_results)
            if gate is not None:
                regate(document, gate)
            results_file = None
        else:
            samples, inputs, labels = _samples(args)
            tuned, base = _targets(args)
            prices = None
            if args.input_price_per_1k is not None:
                prices = TokenPrices(args.input_price_per_1k, args.output_price_per_1k)
            settings = EvaluationSettings(
                params=InferenceParameters(
                    max_tokens=args.max_tokens,
                    temperature=args.temperature,
                    top_p=args.top_p,
                    top_k=args.top_k,
                ),
                run=RunOptions(
                    concurrency=args.concurrency,
                    requests_per_second=args.requests_per_second,
                    retry=RetryPolicy(max_attempts=args.max_retries + 1),
                    restart=args.restart,
                    progress=not args.no_progress and sys.stderr.isatty(),
                    batch_size=args.batch_size,
                ),
                task=None if args.task == "auto" else Task(args.task),
                label_key=args.label_key,
                labels=labels,
                prices=prices,
                gate=gate,
                tuned_name=args.model_name or "Fine-tuned Model",
                base_name=args.base_model_name or "Base Model",
            )
            document = evaluate(
                tuned,
                samples,
                settings,
                base=base,
                output_file=args.output_file,
                curves=curves,
                inputs=inputs,
            )
            results_file = args.output_file
        if curves and document.training_metrics is None:
            document.training_metrics = training_summary(curves)
        files = None if args.no_report else _report(args, document, curves)
        uploaded = _upload(args, files, results_file) if args.report_s3_uri and files else []
    except (
        SampleError,
        TargetError,
        GateError,
        CurveError,
        DocumentError,
        JournalMismatch,
    ) as exc:
        raise UsageError(str(exc)) from None
    except EvaluationAborted as exc:
        # The same AWS error gives the same exit code as in every other command.
        code = classify(exc.__cause__)[0] if exc.__cause__ is not None else EXIT_FAILED
        if code == EXIT_SETUP:
            print(f"finetune: error: {classify(exc.__cause__)[1]}", file=sys.stderr)
        else:
            print(f"finetune evaluate: stopped: {exc}", file=sys.stderr)
        print(
            f"Answers so far are kept beside {args.output_file}; fix the cause and run the "
            "same command again to resume.",
            file=sys.stderr,
        )
        return code if code in (EXIT_SETUP, EXIT_FAILED) else EXIT_FAILED
    _print(args, document, files, uploaded)
    if document.quality_gate is not None and not document.quality_gate["passed"]:
        return EXIT_FAILED
    if any(run.metrics.get("successful_inferences") == 0 for run in document.runs):
        print(
            "finetune evaluate: every call failed; see the errors in the results", file=sys.stderr
        )
        return EXIT_FAILED
    return EXIT_OK

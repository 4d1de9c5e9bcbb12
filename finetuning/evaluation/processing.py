"""The evaluation Processing job for open models (``python -m finetuning.evaluation.processing``).

The workflow starts it (``finetuning.orchestration.evaluation_job``) for models that
``training_scripts/train.py`` trained on SageMaker. It evaluates the tuned model (and, when the
request names a base model, the base model) on a JSONL test set with transformers on the job's
GPU, applies the quality gate and writes the results, the report and the step outcome. The job
runs with network isolation, so everything arrives through input channels and leaves through
the output directory; nothing here calls AWS.

Layout (SageMaker downloads each input under ``/opt/ml/processing/input/<name>/`` and uploads
``/opt/ml/processing/output/`` at the end of the job; every ``LocalPath`` must begin with
``/opt/ml/processing/``, see
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html and
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Output.html)::

    input/config/            evaluation.json (or the one .json file there): the request
    input/model/             model.tar.gz from the training job, or the extracted folder
    input/test/              the JSONL test set (one file)
    input/base/              optional: the base model folder (or a .tar.gz of it)
    input/training-metrics/  optional: train.py's output.tar.gz or its CSV files
    output/                  results.json, report.md, report.html, charts/, outcome.json

Exit codes: 0 evaluated (whatever the gate says: the verdict is in outcome.json and the
workflow decides); 2 bad input (config, model, test set), one ``error:`` line on stderr;
1 anything else (traceback, then an ``error:`` line). The same line goes to
``/opt/ml/output/message``, which DescribeProcessingJob returns as ``ExitMessage``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tarfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from finetuning.evaluation.generation import DEFAULT_BATCH_SIZE

PROCESSING_ROOT = Path("/opt/ml/processing")
DEFAULT_INPUT_DIR = PROCESSING_ROOT / "input"
DEFAULT_OUTPUT_DIR = PROCESSING_ROOT / "output"
# Where archives are extracted. Assumed to be on the job's ML storage volume (the inputs are
# downloaded under the same root), which is sized for the model; override with --work-dir.
DEFAULT_WORK_DIR = PROCESSING_ROOT / "work"
# "containers can write UTF-8 encoded text to the /opt/ml/output/message file. After the
# processing job enters any terminal status ... the ExitMessage field in DescribeProcessingJob
# contains the first 1 KB of this file": Processing's counterpart of training's
# /opt/ml/output/failure (DescribeProcessingJob's FailureReason is SageMaker's own text).
# https://docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html
MESSAGE_FILE = Path("/opt/ml/output/message")
EXIT_MESSAGE_BYTES = 1024
# Present in every Processing container, so its existence tells this script it runs in one.
# https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html
PROCESSING_JOB_CONFIG = Path("/opt/ml/config/processingjobconfig.json")

CONFIG_CHANNEL = "config"
MODEL_CHANNEL = "model"
TEST_CHANNEL = "test"
BASE_CHANNEL = "base"
METRICS_CHANNEL = "training-metrics"
CONFIG_FILE = "evaluation.json"
RESULTS_FILE = "results.json"
OUTCOME_FILE = "outcome.json"
# What train.py writes (docs/training.md, "Outputs").
MERGED_DIR = "merged"
MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DESCRIPTION = f"""\
Evaluate a model trained by training_scripts/train.py on a JSONL test set, inside a SageMaker
Processing job (or on any machine, pointed at a folder laid out the same way).

channels under --input-dir:
  config/            evaluation.json (or the one .json file there): job_name, test_set_uri,
                     output_uri (the S3 prefix the output directory is uploaded to), and
                     optionally model_id, base_model_id, quality_gate, inference, task,
                     label_key, max_samples (default 200), concurrency, batch_size
                     (prompts answered together, default {DEFAULT_BATCH_SIZE})
  model/             model.tar.gz as the training job wrote it, or the extracted folder;
                     merged/ (train.py --merge_adapter) is preferred, then a fully fine-tuned
                     model (config.json), then a LoRA adapter on the base/ channel
  test/              the JSONL test set: one file; each record's last assistant turn is the
                     reference answer
  base/              optional: the base model folder (or .tar.gz); needed for an adapter
                     without merged/, and to compare with the base (base_model_id set)
  training-metrics/  optional: train.py's output.tar.gz or training_metrics.csv and
                     eval_metrics.csv, drawn as loss curves in the report

writes to --output-dir: results.json, report.md, report.html, charts/*.png and outcome.json
(where those files are once uploaded, the headline metrics and the quality gate's verdict).
"""

EPILOG = """\
exit codes: 0 evaluated (a failed quality gate included: see outcome.json); 1 failed;
2 bad input. On failure, one error line goes to stderr and to --message-file.
"""


class InputError(ValueError):
    """A channel or request the job cannot use; the message names the file and what is wrong."""


# --------------------------------------------------------------------------------------------
# Channels


def read_config(channel: Path) -> dict[str, Any]:
    """The request: ``evaluation.json``, or the only ``.json`` file in the channel (the
    platform uploads it as ``evaluation-request.json``)."""
    path = channel / CONFIG_FILE
    if not path.is_file():
        found = sorted(channel.glob("*.json")) if channel.is_dir() else []
        if len(found) != 1:
            raise InputError(
                f"{channel}: expected {CONFIG_FILE} or exactly one .json file, found "
                f"{', '.join(p.name for p in found) or 'none'}"
            )
        path = found[0]
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a tar archive, refusing members that would land outside ``destination``
    (absolute paths, ``..``) and links, devices and other special files."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise InputError(
                        f"{archive}: member {member.name!r} points outside the archive's folder"
                    )
                if not (member.isfile() or member.isdir()):
                    raise InputError(
                        f"{archive}: member {member.name!r} is a link or special file; "
                        "expected regular files and folders only"
                    )
            # The "data" filter repeats the checks above and drops permission bits.
            tar.extractall(destination, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"{archive}: cannot extract ({type(exc).__name__}: {exc})") from None


def unpack_channel(channel: Path, work_dir: Path) -> Path:
    """The folder a channel's content is in: the channel itself, or where its one ``.tar.gz``
    was extracted (under ``work_dir/<channel name>``)."""
    archives = sorted(channel.glob("*.tar.gz"))
    if not archives:
        return channel
    if len(archives) > 1:
        raise InputError(
            f"{channel}: expected one .tar.gz archive, found {', '.join(a.name for a in archives)}"
        )
    target = work_dir / channel.name
    safe_extract(archives[0], target)
    return target


def _model_folder(root: Path) -> Path:
    """``root``, or its only subfolder when the archive wrapped everything in one folder."""
    markers = (MODEL_CONFIG, ADAPTER_CONFIG, MERGED_DIR)
    if any((root / m).exists() for m in markers):
        return root
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if len(folders) == 1 and any((folders[0] / m).exists() for m in markers):
        return folders[0]
    return root


@dataclass(frozen=True)
class ModelChoice:
    """Which folder of train.py's output is evaluated, and on which base an adapter loads."""

    path: Path
    kind: str  # "merged" | "full" | "adapter"
    base: Path | None = None


def choose_model(root: Path, base: Path | None) -> ModelChoice:
    """Pick what to evaluate in train.py's output, as ``training_scripts/inference.py`` does:

    1. ``merged/``: the adapter merged into its base (``--merge_adapter``), a full model;
    2. ``adapter_config.json``: a LoRA adapter, loaded on the ``base`` channel's model, else on
       the adapter's ``base_model_name_or_path`` when that is a folder here; without either
       the job cannot build the model and says so;
    3. ``config.json``: a fully fine-tuned model.
    """
    root = _model_folder(root)
    merged = root / MERGED_DIR
    if (merged / MODEL_CONFIG).is_file():
        return ModelChoice(merged, "merged")
    adapter_config = root / ADAPTER_CONFIG
    if adapter_config.is_file():
        if base is not None:
            return ModelChoice(root, "adapter", base)
        try:
            recorded = json.loads(adapter_config.read_text(encoding="utf-8")).get(
                "base_model_name_or_path"
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            recorded = None
        if recorded and (Path(recorded) / MODEL_CONFIG).is_file():
            return ModelChoice(root, "adapter", Path(recorded))
        raise InputError(
            f"{root}: the model is a LoRA adapter ({ADAPTER_CONFIG}) without {MERGED_DIR}/, and "
            f"its base model ({recorded or 'not recorded'}) is not here: give the job the base "
            "model (the base channel, processing.base_model_uri) or train with "
            "--merge_adapter true"
        )
    if (root / MODEL_CONFIG).is_file():
        return ModelChoice(root, "full")
    found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    raise InputError(
        f"{root}: no model found: expected {MERGED_DIR}/{MODEL_CONFIG}, {ADAPTER_CONFIG} or "
        f"{MODEL_CONFIG} (train.py's output); found {', '.join(found[:20]) or 'nothing'}"
    )


def find_test_set(channel: Path) -> Path:
    files = sorted(p for p in channel.rglob("*") if p.is_file()) if channel.is_dir() else []
    if len(files) != 1:
        raise InputError(
            f"{channel}: expected one JSONL test set file, found "
            f"{', '.join(p.name for p in files[:20]) or 'none'}"
        )
    return files[0]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def find_curves(metrics_dir: Path | None, model_root: Path) -> Any:
    """Loss curves for the report: the training-metrics channel, else CSV files inside the
    model archive (a local train.py run writes them next to the model). Curves illustrate the
    report; a missing or unreadable file is a warning, not a failed evaluation."""
    from finetuning.evaluation.curves import CurveError, find_metric_files, read_loss_curves

    for folder in (metrics_dir, model_root):
        if folder is None:
            continue
        files = find_metric_files(folder)
        if not files:
            if folder is metrics_dir:
                _warn(f"{folder}: no training_metrics.csv or eval_metrics.csv; no loss curves")
            continue
        try:
            return read_loss_curves([str(f) for f in files])
        except CurveError as exc:
            _warn(f"{exc}; the report has no loss curves")
            return None
    return None


def _check_writable(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / ".write-test"
    try:
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise OSError(
            f"{directory} is not writable by uid {os.getuid()} ({exc.strerror}); SageMaker "
            "creates the Processing folders as root when the job starts, so the image must run "
            "as root (containers/evaluation/Dockerfile)"
        ) from None


def _channel(input_dir: Path, name: str) -> Path | None:
    path = input_dir / name
    return path if path.is_dir() and any(path.iterdir()) else None


# --------------------------------------------------------------------------------------------
# The job


def run(input_dir: Path, output_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Evaluate, write the results, report and outcome; return the outcome."""
    from finetuning.evaluation.document import write_json_atomic
    from finetuning.evaluation.evaluator import EvaluationSettings, evaluate
    from finetuning.evaluation.report import write_report
    from finetuning.evaluation.request import S3_URI, EvaluationStepRequest, StepError
    from finetuning.evaluation.runner import RunOptions
    from finetuning.evaluation.samples import read_test_set
    from finetuning.evaluation.step import step_outcome
    from finetuning.evaluation.targets import LocalModelTarget

    # Cheap checks first: nothing is extracted or loaded for a request that cannot run.
    config_dir = _channel(input_dir, CONFIG_CHANNEL)
    if config_dir is None:
        raise InputError(f"{input_dir / CONFIG_CHANNEL}: the config channel is missing or empty")
    config = read_config(config_dir)
    output_uri = config.pop("output_uri", None)
    if not isinstance(output_uri, str) or not S3_URI.match(output_uri):
        raise InputError(f"output_uri: expected an s3://bucket/prefix/ URI, got {output_uri!r}")
    output_uri = output_uri if output_uri.endswith("/") else output_uri + "/"
    model_dir = _channel(input_dir, MODEL_CHANNEL)
    if model_dir is None:
        raise InputError(f"{input_dir / MODEL_CHANNEL}: the model channel is missing or empty")
    # model_id only names the model in the results; the folder is what is evaluated.
    try:
        request = EvaluationStepRequest.from_event(
            {**config, "model_id": config.get("model_id") or str(model_dir)}
        )
    except StepError as exc:
        raise InputError(f"config: {exc}") from None
    gate = request.quality_gate
    if gate is not None and gate.needs_base and not request.base_model_id:
        raise InputError(
            "config: the quality gate checks improvement over the base model "
            "(min_improvement_over_base) but base_model_id is not set"
        )
    base_channel = _channel(input_dir, BASE_CHANNEL)
    if request.base_model_id and base_channel is None:
        raise InputError(
            f"config: base_model_id {request.base_model_id!r} asks for a comparison with the "
            f"base model, but {input_dir / BASE_CHANNEL} is missing or empty"
        )
    test_dir = _channel(input_dir, TEST_CHANNEL)
    if test_dir is None:
        raise InputError(f"{input_dir / TEST_CHANNEL}: the test channel is missing or empty")
    samples = read_test_set(find_test_set(test_dir))[: request.max_samples]
    if not samples:
        raise InputError(f"{test_dir}: the test set has no records")
    _check_writable(output_dir)

    # The expensive part: archives, weights.
    _check_writable(work_dir)
    model_root = unpack_channel(model_dir, work_dir)
    base_root = _model_folder(unpack_channel(base_channel, work_dir)) if base_channel else None
    if base_root is not None and not (base_root / MODEL_CONFIG).is_file():
        raise InputError(f"{base_root}: the base channel holds no model ({MODEL_CONFIG})")
    choice = choose_model(model_root, base_root)
    print(f"model: {choice.kind} model in {choice.path}", flush=True)
    tuned = LocalModelTarget(choice.path, base_model=choice.base, model_id=request.model_id)
    base = None
    if request.base_model_id and base_root is not None:
        base = LocalModelTarget(base_root, model_id=request.base_model_id)
    for target, what in ((tuned, "model"), (base, "base model")):
        if target is None:
            continue
        try:
            target.load()
        except Exception as exc:
            raise InputError(f"{what} {target.model_id}: cannot load: {exc}") from exc
    metrics_channel = _channel(input_dir, METRICS_CHANNEL)
    metrics_dir = unpack_channel(metrics_channel, work_dir) if metrics_channel else None
    curves = find_curves(metrics_dir, model_root)

    settings = EvaluationSettings(
        params=request.inference,
        run=RunOptions(
            concurrency=request.concurrency, progress=False, batch_size=request.batch_size
        ),
        task=request.task,
        label_key=request.label_key,
        gate=request.quality_gate,
    )
    print(f"evaluating: {len(samples)} samples{' (tuned and base)' if base else ''}", flush=True)
    document = evaluate(
        tuned,
        samples,
        settings,
        base=base,
        curves=curves,
        inputs={
            "test_set": request.test_set_uri,
            "samples": len(samples),
            "model": request.model_id,
            "model_folder": choice.kind,
        },
    )
    for model_run in document.runs:
        rate = model_run.metrics.get("samples_per_second")
        if rate is not None:
            print(
                f"{model_run.name}: {rate:.2f} samples/s "
                f"(batch size {model_run.metrics.get('batch_size')})",
                flush=True,
            )
    document.write(output_dir / RESULTS_FILE)
    write_report(document, output_dir, curves=curves, title=f"Evaluation: {request.job_name}")
    outcome = step_outcome(document, request.job_name, output_uri)
    # Last, so its presence means everything else was written.
    write_json_atomic(output_dir / OUTCOME_FILE, outcome)
    return outcome


def write_message(message: str, path: Path | None) -> None:
    """The job's ExitMessage: UTF-8, cut to 1 KB on a character boundary (SageMaker keeps the
    first 1 KB, and text that is not UTF-8 fails the job)."""
    if path is None:
        return
    data = message.encode("utf-8")[:EXIT_MESSAGE_BYTES].decode("utf-8", errors="ignore")
    with contextlib.suppress(OSError):  # best effort: the stderr line is the contract
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data, encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m finetuning.evaluation.processing",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-dir",
        type=Path,
        default=DEFAULT_INPUT_DIR,
        help=f"folder holding the channels (default: {DEFAULT_INPUT_DIR})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"where results, report and outcome go (default: {DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help=f"where archives are extracted, room for the model (default: {DEFAULT_WORK_DIR})",
    )
    parser.add_argument(
        "--message-file",
        type=Path,
        default=None,
        help=(
            f"where the one-line outcome or error goes (default: {MESSAGE_FILE} inside a "
            "Processing job, which SageMaker returns as the job's ExitMessage; none elsewhere)"
        ),
    )
    args = parser.parse_args(argv)
    if args.message_file is None and PROCESSING_JOB_CONFIG.is_file():
        args.message_file = MESSAGE_FILE
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; turn every failure into an exit code and one ``error:`` line."""
    args = parse_args(argv)
    from finetuning.evaluation.curves import CurveError
    from finetuning.evaluation.gate import GateError
    from finetuning.evaluation.samples import SampleError
    from finetuning.evaluation.targets import TargetError

    try:
        outcome = run(args.input_dir, args.output_dir, args.work_dir)
    except (InputError, SampleError, TargetError, GateError, CurveError) as exc:
        message = " ".join(str(exc).split())
        code = EXIT_BAD_INPUT
    except Exception as exc:
        traceback.print_exc()
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        code = EXIT_FAILED
    else:
        print(f"done: {outcome['reason']}", flush=True)
        write_message(outcome["reason"], args.message_file)
        return EXIT_OK
    print(f"error: {message}", file=sys.stderr, flush=True)
    write_message(f"error: {message}", args.message_file)
    return code


if __name__ == "__main__":
    sys.exit(main())

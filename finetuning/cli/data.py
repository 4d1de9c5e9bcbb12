"""``finetune data``: validate, convert, split, prepare and estimate training data."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetuning.aws_jobs.bedrock_customization import CUSTOMIZATION_TYPES
from finetuning.cli import EXIT_FAILED, EXIT_OK, UsageError
from finetuning.data.split import DEFAULT_VALIDATION_SPLIT

HELP = "validate, convert, split and prepare training data (Bedrock and SageMaker)"

# CLI names of the output formats of `convert` (the enum value of Bedrock's is dated).
CONVERT_TARGETS = ("bedrock-conversation", "prompt-completion", "messages", "alpaca")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "data",
        help=HELP,
        description=(
            "Catch every defect in training data before it is uploaded: validate JSONL "
            "against a model family's documented limits, convert between formats, split "
            "deterministically, build image datasets and estimate training cost."
        ),
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_validate(commands)
    _register_convert(commands)
    _register_split(commands)
    _register_prepare_images(commands)
    _register_estimate(commands)


# -- validate ------------------------------------------------------------------------------


def _register_validate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a JSONL file against a model's format and limits",
        description=(
            "Stream a JSONL file (local or s3://) and report every problem, one per line: "
            "PATH:LINE: error|warning: message, then a summary. Exit 0 when there is no "
            "error, 1 when there are errors, 2 for bad usage."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="JSONL file, local path or s3://bucket/key")
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL_ID",
        help=(
            "Bedrock model id or ARN (picks the format and limits), or a Hugging Face id or "
            "path for the SageMaker backend"
        ),
    )
    parser.add_argument(
        "--role",
        choices=("train", "validation"),
        default="train",
        help="which dataset of the job this file is; record limits differ (default: train)",
    )
    parser.add_argument(
        "--validation-file",
        metavar="PATH",
        help=(
            "the job's validation file: validated too, with the limits on both files "
            "together (PATH is then the training file)"
        ),
    )
    parser.add_argument(
        "--dataset-uri",
        metavar="S3_URI",
        help="where a local file will be uploaded, to check that images share its bucket",
    )
    parser.add_argument("--json", action="store_true", help="write the report as JSON")
    parser.add_argument(
        "--max-errors",
        type=_non_negative_int,
        default=100,
        metavar="N",
        help="print at most N errors and N warnings; all are still counted (default: 100)",
    )
    parser.add_argument(
        "--tokenizer",
        metavar="NAME_OR_PATH",
        help="count tokens exactly with this Hugging Face tokenizer instead of estimating",
    )
    parser.add_argument(
        "--max-tokens",
        type=_positive_int,
        metavar="N",
        help="open models: warn about records longer than N tokens (train.py truncates them)",
    )
    _add_customization_type(parser)
    parser.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from finetuning.data.models import UnknownModelError
    from finetuning.data.sources import S3UriError
    from finetuning.data.validate import validate_job_files, validate_path

    _require_input(args.path)
    if args.validation_file:
        _require_input(args.validation_file)
        if args.role != "train":
            raise UsageError("--validation-file needs PATH to be the training file (--role train)")
    counter = _token_counter(args.tokenizer) if args.tokenizer else None
    options = dict(
        dataset_uri=args.dataset_uri,
        max_problems=args.max_errors,
        token_counter=counter,
        max_tokens=args.max_tokens,
    )
    if args.customization_type in ("REINFORCEMENT_FINE_TUNING", "DISTILLATION"):
        options["customization"] = args.customization_type
    try:
        if args.validation_file:
            reports = validate_job_files(args.path, args.model, args.validation_file, **options)
        else:
            reports = [validate_path(args.path, args.model, role=args.role, **options)]
    except (UnknownModelError, S3UriError) as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        _raise_if_unreadable(exc, args.path)
        raise
    if args.json:
        payload = [report.to_dict() for report in reports]
        print(json.dumps(payload if len(payload) > 1 else payload[0], indent=2, ensure_ascii=False))
    else:
        for report in reports:
            for problem in report.problems:
                print(problem.format(report.path))
            if report.problems_not_kept:
                print(
                    f"{report.path}: note: {report.problems_not_kept:,} more problems not shown "
                    f"(raise --max-errors to see them)"
                )
        for report in reports:
            print(report.summary())
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FAILED


def _token_counter(name: str) -> Callable[[str], int]:
    """Exact token counting with a Hugging Face tokenizer (folder or Hub id).

    A folder with a ``tokenizer.json`` loads with the ``tokenizers`` library alone, which is
    fast and needs no torch; anything else goes through ``transformers.AutoTokenizer``.
    """
    local = Path(name) / "tokenizer.json"
    if local.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(local))
        return lambda text: len(fast.encode(text, add_special_tokens=False).ids)
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - transformers is in requirements-ml.txt
        raise UsageError("--tokenizer needs the transformers package") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--tokenizer {name}: cannot load it ({exc})") from None
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- convert -------------------------------------------------------------------------------


def _register_convert(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert records between formats (JSONL, CSV or Parquet in; JSONL out)",
        description=(
            "Read prompt/completion, messages, alpaca or bedrock-conversation records from "
            "JSONL, CSV or Parquet and write JSONL in the target format. Nothing is written "
            "if any record cannot be converted."
        ),
    )
    parser.add_argument("input", metavar="IN", help="input file (.jsonl, .csv or .parquet)")
    parser.add_argument(
        "output",
        metavar="OUT",
        help="output JSONL file or s3:// URI; missing parent folders are created (as every "
        "finetune command does for its outputs)",
    )
    parser.add_argument("--to", required=True, choices=CONVERT_TARGETS, help="output format")
    parser.add_argument(
        "--from",
        dest="source_format",
        choices=CONVERT_TARGETS,
        help="input format (default: detected per record)",
    )
    parser.add_argument(
        "--system-prompt-file", metavar="FILE", help="system prompt for every record"
    )
    parser.add_argument(
        "--task-prompt-file",
        metavar="FILE",
        help="text put before the first user turn of every record",
    )
    parser.add_argument(
        "--map",
        dest="field_map",
        action="append",
        default=[],
        metavar="SOURCE=TARGET",
        help="rename an input column or key, e.g. --map question=prompt (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(handler=_convert)


def _convert(args: argparse.Namespace) -> int:
    from finetuning.data.convert import ConversionError, convert_file

    _require_input(args.input)
    field_map = {}
    for item in args.field_map:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise UsageError(f"--map {item!r}: expected SOURCE=TARGET")
        field_map[source] = target
    try:
        result = convert_file(
            args.input,
            args.output,
            to=args.to,
            source_format=args.source_format,
            system_prompt=_read_text(args.system_prompt_file),
            task_prompt=_read_text(args.task_prompt_file),
            field_map=field_map,
            overwrite=args.force,
        )
    except ConversionError as exc:
        for line in exc.problems:
            print(line)
        print(f"finetune: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        _raise_if_unreadable(exc, args.input)
        raise
    print(f"{result.output}: {result.records:,} records written in {result.format} format")
    return EXIT_OK


# -- split ---------------------------------------------------------------------------------


def _register_split(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "split",
        help="split a JSONL file into train.jsonl and validation.jsonl, reproducibly",
        description=(
            "Write train.jsonl and validation.jsonl; the input is never modified and the same "
            "input and seed give byte-identical outputs on every run and machine."
        ),
    )
    parser.add_argument("input", metavar="IN", help="input JSONL file")
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        default=DEFAULT_VALIDATION_SPLIT,
        metavar="FRACTION",
        help="fraction of records for validation, between 0 and 1 "
        f"(default: {DEFAULT_VALIDATION_SPLIT}, as job create's automatic split)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--stratify-by",
        metavar="FIELD",
        help="keep each value of this field (dotted for nested) in proportion on both sides",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where to write the two files (default: the input's directory); created if missing",
    )
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_split)


def _split(args: argparse.Namespace) -> int:
    from finetuning.data.split import SplitError, split_file

    _require_input(args.input)
    try:
        result = split_file(
            args.input,
            args.output_dir,
            validation_split=args.validation_split,
            seed=args.seed,
            stratify_by=args.stratify_by,
            overwrite=args.force,
        )
    except SplitError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "train": str(result.train_path),
                    "validation": str(result.validation_path),
                    "train_records": result.train_records,
                    "validation_records": result.validation_records,
                    "strata": {k: list(v) for k, v in result.strata.items()},
                },
                indent=2,
            )
        )
    else:
        print(f"{result.train_path}: {result.train_records:,} records")
        print(f"{result.validation_path}: {result.validation_records:,} records")
        for label, (train, validation) in result.strata.items():
            print(f"  {label}: {train:,} train, {validation:,} validation")
    return EXIT_OK


# -- prepare-images ------------------------------------------------------------------------


def _register_prepare_images(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prepare-images",
        help="build a bedrock-conversation image-classification dataset (e.g. RVL-CDIP)",
        description=(
            "Sample N images per label from a Hugging Face dataset saved to disk or a folder "
            "ROOT/<label>/*.png|jpg|tif, normalize them, and write images/, train.jsonl, "
            "validation.jsonl and dataset_manifest.json to a folder or s3://bucket/prefix."
        ),
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="dataset saved with save_to_disk, or an image folder"
    )
    parser.add_argument(
        "output", metavar="OUT", help="output folder or s3://bucket/prefix for the dataset"
    )
    parser.add_argument(
        "--model",
        default="amazon.nova-lite-v1:0:300k",
        metavar="MODEL_ID",
        help="model whose image limits apply (default: amazon.nova-lite-v1:0:300k)",
    )
    parser.add_argument(
        "--samples-per-label",
        type=_positive_int,
        default=100,
        metavar="N",
        help="images sampled per label, reproducibly (default: 100)",
    )
    parser.add_argument("--split", default="train", help="split of a DatasetDict (default: train)")
    parser.add_argument("--image-column", default="image", help="image column (default: image)")
    parser.add_argument("--label-column", default="label", help="label column (default: label)")
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        default=DEFAULT_VALIDATION_SPLIT,
        metavar="FRACTION",
        help=f"stratified validation fraction (default: {DEFAULT_VALIDATION_SPLIT})",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--image-format",
        choices=("png", "jpeg"),
        default="png",
        help="format images are written in (default: png)",
    )
    parser.add_argument(
        "--max-image-side",
        type=_positive_int,
        metavar="PIXELS",
        help="shrink images whose longer side exceeds this (default: the family's limit)",
    )
    parser.add_argument("--system-prompt-file", metavar="FILE", help="custom system prompt")
    parser.add_argument(
        "--task-prompt-file",
        metavar="FILE",
        help="custom task prompt; {labels} is replaced by the list of labels",
    )
    parser.add_argument(
        "--label-mapping",
        metavar="FILE",
        help='JSON object renaming source labels, e.g. {"advertissement": "advertisement"}',
    )
    parser.add_argument(
        "--s3-prefix",
        metavar="S3_URI",
        help="for folder output: the s3://bucket/prefix the folder will be uploaded to",
    )
    parser.add_argument(
        "--bucket-owner",
        metavar="ACCOUNT_ID",
        help="bucketOwner written with each image (default: the caller's account for s3://)",
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=8, help="parallel uploads (default: 8)"
    )
    parser.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    parser.set_defaults(handler=_prepare_images)


def _prepare_images(args: argparse.Namespace) -> int:
    from finetuning.data.images import ImageDatasetError, PrepareOptions, prepare_images
    from finetuning.data.models import UnknownModelError

    options = PrepareOptions(
        samples_per_label=args.samples_per_label,
        validation_split=args.validation_split,
        seed=args.seed,
        image_format=args.image_format,
        max_image_side=args.max_image_side,
        system_prompt=_read_text(args.system_prompt_file),
        task_prompt=_read_text(args.task_prompt_file),
        label_mapping=_read_json_object(args.label_mapping),
        s3_prefix=args.s3_prefix,
        bucket_owner=args.bucket_owner,
        workers=args.workers,
        split=args.split,
        image_column=args.image_column,
        label_column=args.label_column,
        model_id=args.model,
    )
    try:
        result = prepare_images(args.source, args.output, options, progress=not args.json)
    except (ImageDatasetError, UnknownModelError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        for line in result.summary_lines():
            print(line)
    return EXIT_OK if not result.failures else EXIT_FAILED


# -- estimate ------------------------------------------------------------------------------


def _register_estimate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "estimate",
        help="count tokens and estimate the training cost of a dataset",
        description=(
            "Count the tokens of a JSONL file and estimate the training cost from a dated "
            "price table (its source is printed): per token trained for Bedrock families, per "
            "instance-hour for SageMaker instance types."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="JSONL file, local path or s3://bucket/key")
    parser.add_argument("--model", required=True, metavar="MODEL_ID", help="model id or ARN")
    parser.add_argument(
        "--epochs", type=_positive_int, required=True, metavar="N", help="training epochs"
    )
    parser.add_argument(
        "--instance-type",
        metavar="TYPE",
        help="SageMaker instance type (open models), e.g. ml.g5.2xlarge",
    )
    parser.add_argument(
        "--instance-count", type=_positive_int, default=1, help="instances (default: 1)"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        metavar="RATE",
        help="SageMaker training throughput per instance, in tokens per second; without it "
        "the estimate gives tokens and the hourly price, not hours or cost (measure it with a "
        "short train.py run on the same instance type)",
    )
    parser.add_argument(
        "--price-per-1k-tokens",
        type=float,
        metavar="USD",
        help="the Bedrock training price per 1,000 tokens (no current customization price is "
        "encoded, none could be read from an AWS page: take it from "
        "https://aws.amazon.com/bedrock/pricing/)",
    )
    parser.add_argument(
        "--price-per-hour", type=float, metavar="USD", help="override the instance-hour price"
    )
    _add_customization_type(parser)
    parser.add_argument(
        "--teacher-model",
        metavar="ID",
        help="DISTILLATION: the teacher (id or inference profile); the pair is checked against "
        "the docs' table and the teacher's on-demand list price is used when it has one",
    )
    parser.add_argument(
        "--teacher-max-response-length",
        type=_positive_int,
        metavar="TOKENS",
        help="DISTILLATION: the most tokens the teacher writes per prompt",
    )
    parser.add_argument(
        "--teacher-price-per-1k-input",
        type=float,
        metavar="USD",
        help="DISTILLATION: the teacher's on-demand price per 1,000 input tokens (default: "
        "the --teacher-model's list price, where the table has one)",
    )
    parser.add_argument(
        "--teacher-price-per-1k-output",
        type=float,
        metavar="USD",
        help="DISTILLATION: the teacher's on-demand price per 1,000 output tokens (default: "
        "the --teacher-model's list price, where the table has one)",
    )
    parser.add_argument(
        "--tokenizer", metavar="NAME_OR_PATH", help="count tokens exactly with this tokenizer"
    )
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.set_defaults(handler=_estimate)


def _estimate(args: argparse.Namespace) -> int:
    from finetuning.data.estimate import EstimateError, estimate_cost
    from finetuning.data.models import UnknownModelError

    _require_input(args.path)
    counter = _token_counter(args.tokenizer) if args.tokenizer else None
    try:
        estimate = estimate_cost(
            args.path,
            args.model,
            epochs=args.epochs,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            tokens_per_second=args.tokens_per_second,
            price_per_1k_tokens=args.price_per_1k_tokens,
            price_per_hour=args.price_per_hour,
            token_counter=counter,
            customization=args.customization_type,
            teacher_max_response_length=args.teacher_max_response_length,
            teacher_price_per_1k_input=args.teacher_price_per_1k_input,
            teacher_price_per_1k_output=args.teacher_price_per_1k_output,
            teacher_model=args.teacher_model,
        )
    except (EstimateError, UnknownModelError) as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        _raise_if_unreadable(exc, args.path)
        raise
    if args.json:
        print(json.dumps(estimate.to_dict(), indent=2))
    else:
        for line in estimate.lines():
            print(line)
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------------


def _add_customization_type(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customization-type",
        choices=CUSTOMIZATION_TYPES,
        default="FINE_TUNING",
        help=(
            "Bedrock customization the data is for: RFT records are prompts with "
            "reference_answer, distillation records are prompts (docs/bedrock.md)"
        ),
    )


def _raise_if_unreadable(exc: Exception, path: str) -> None:
    """Turn "cannot read this input" (a local OSError, an S3 error) into bad usage (exit 2)."""
    if isinstance(exc, OSError):
        raise UsageError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    if path.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, BotoCoreError | ClientError):
            raise UsageError(f"{path}: {exc}") from None


def _require_input(path: str) -> None:
    if not path.startswith("s3://") and not Path(path).exists():
        raise UsageError(f"{path}: no such file")


def _read_text(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def _read_json_object(path: str | None) -> dict[str, Any] | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path}: expected a JSON object mapping labels to labels")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, found {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, found {text}")
    return value

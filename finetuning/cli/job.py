"""``finetune job``: create, watch, list and stop fine-tuning jobs on any backend.

The flags are those of the old ``create_finetuning_job.py`` (``--training-data-uri``,
``--epoch-count``, ``--create-role``, ``--status-only`` became ``job status``, ...). With a
deployed platform, ``finetune job create --training-data-uri s3://... --job-name x`` needs no
ARN: roles, buckets, key and network come from its SSM parameters.

``--via-platform`` (through ``finetuning.platform_client``) starts the deployed platform's Step
Functions workflow instead of calling the backend, and lists the platform's job table;
:func:`job_config_from_args` gives the job config and :func:`finish` the common waiting and
reporting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from finetuning.aws_jobs.bedrock_customization import CUSTOMIZATION_TYPES
from finetuning.aws_jobs.instance_types import DEFAULT_INSTANCE_TYPE
from finetuning.cli import EXIT_FAILED, EXIT_OK, UsageError
from finetuning.cli._service_common import (
    ProgressPrinter,
    add_job_identifier,
    add_service_arguments,
    cli_errors,
    csv_list,
    describe_job,
    job_identifier,
    job_row,
    key_values,
    make_service,
    print_json,
    stop_exit_code,
    write_details,
)

BACKENDS = ("bedrock", "sagemaker", "local")
STATUSES = ("queued", "preprocessing", "running", "stopping", "completed", "failed", "cancelled")
# The old script's default; local jobs are polled more often (they take minutes, not hours).
DEFAULT_POLLING_INTERVAL = 60.0
LOCAL_POLLING_INTERVAL = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "job",
        help="create, watch, list and stop fine-tuning jobs",
        description="Fine-tuning jobs on Bedrock, SageMaker or this machine (local).",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    create = commands.add_parser(
        "create",
        help="submit a job (and wait for it unless --no-wait)",
        description="Submit a fine-tuning job. Exit 0 when it completes (or is submitted, "
        "with --no-wait), 1 when it fails, is cancelled or the wait times out, 2 on bad usage "
        "(checked before anything is submitted), 3 when AWS credentials, region or network "
        "are unusable. Local paths are relative to the current folder.",
    )
    add_create_arguments(create)
    create.set_defaults(handler=create_job)

    status = commands.add_parser("status", help="show a job's status (needs only its ARN or id)")
    add_identifier_arguments(status)
    status.add_argument("--output-file", type=Path, help="also write the job details JSON here")
    status.set_defaults(handler=job_status)

    wait = commands.add_parser("wait", help="wait for a job to finish, showing progress")
    add_identifier_arguments(wait)
    add_wait_arguments(wait)
    wait.set_defaults(handler=wait_job)

    listing = commands.add_parser("list", help="list jobs, newest first")
    add_list_arguments(listing)
    listing.set_defaults(handler=list_jobs)

    stop = commands.add_parser(
        "stop",
        help="stop a running job (cancel a local one)",
        description="Stop a job. Exit 0 when it is stopping or stopped (also when it already "
        "was), 1 when it had already completed or failed.",
    )
    add_identifier_arguments(stop)
    stop.set_defaults(handler=stop_job)


# -- arguments ------------------------------------------------------------------------------


def add_identifier_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_identifier(
        parser,
        "a Bedrock or SageMaker job ARN, a local job id, a job name (with --backend), or the "
        "URL of an open-weight RFT job (https://bedrock-mantle.<region>.api.aws/v1/"
        "fine_tuning/jobs/<id>)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, help="where a job given by name runs (default: bedrock)"
    )
    add_service_arguments(parser)


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("waiting")
    group.add_argument(
        "--polling-interval",
        type=float,
        metavar="SECONDS",
        help=f"longest pause between status checks (default {DEFAULT_POLLING_INTERVAL:.0f}, "
        f"local jobs {LOCAL_POLLING_INTERVAL:.0f}); checks start every 2 s and back off",
    )
    group.add_argument(
        "--max-wait-time",
        type=float,
        metavar="SECONDS",
        help="give up waiting after this long (exit 1; the job keeps running)",
    )
    group.add_argument(
        "--output-file", type=Path, help="write the job details JSON here (updated at the end)"
    )


def add_platform_arguments(parser: argparse.ArgumentParser, *, create: bool) -> None:
    group = parser.add_argument_group("deployed platform")
    group.add_argument(
        "--via-platform",
        action="store_true",
        help="go through the deployed platform's workflow (Step Functions): it validates the "
        "data, runs, records and notifies; the platform is found through SSM "
        "(--platform-env); a repeated submission of the same spec starts nothing new"
        if create
        else "list the platform's job table (every backend, every submitter)",
    )
    if create:
        group.add_argument(
            "--manifest",
            type=Path,
            metavar="FILE",
            help="with --via-platform: submit this job.yaml/job.json instead of the flags",
        )


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    add_platform_arguments(parser, create=True)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--training-data-uri", help="s3:// URI or local JSONL file (required without --manifest)"
    )
    data.add_argument("--validation-data-uri", help="s3:// URI or local JSONL file")
    data.add_argument(
        "--validation-split",
        type=float,
        metavar="FRACTION",
        help="without --validation-data-uri, hold out this fraction (default 0.2) into new "
        "files (beside S3 training data; under the service home's splits/ for local jobs); "
        "the training file is never modified",
    )
    data.add_argument(
        "--no-validation-split", action="store_true", help="train without validation data"
    )

    job = parser.add_argument_group("job")
    job.add_argument("--job-name", help="default: ft-<digest of the spec>")
    job.add_argument("--model-name", help="name of the resulting custom model")
    job.add_argument(
        "--base-model",
        help="Bedrock model id/ARN, Hugging Face id, s3:// or local model directory, a "
        "registered local model, or a name from the config's base_models",
    )
    job.add_argument(
        "--backend",
        choices=BACKENDS,
        help="default: local for local data, bedrock for Bedrock base models, else sagemaker",
    )
    job.add_argument("--output-uri", help="where outputs go (default: the platform's bucket)")
    roles = job.add_mutually_exclusive_group()
    roles.add_argument("--role-arn", help="service role (default: the platform's)")
    roles.add_argument(
        "--create-role",
        action="store_true",
        help="create a least-privilege service role for this job's data and output",
    )
    job.add_argument("--kms-key-id", help="KMS key for the model and outputs")
    job.add_argument("--subnet-ids", help="comma-separated subnets for the job's VPC config")
    job.add_argument("--security-group-ids", help="comma-separated security groups")
    job.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag (repeatable)")

    kinds = parser.add_argument_group(
        "bedrock customization type",
        "FINE_TUNING (default) and CONTINUED_PRE_TRAINING take --hyperparameter; "
        "REINFORCEMENT_FINE_TUNING (Nova 2 Lite) takes a grader Lambda and "
        "--rft-hyperparameter; DISTILLATION takes a teacher and prompts (or invocation logs). "
        "REINFORCEMENT_FINE_TUNING of openai.gpt-oss-20b and qwen.qwen3-32b (us-west-2) runs "
        "through Bedrock's OpenAI-compatible API: the data (s3:// or a local file) is uploaded "
        "there, and the Amazon Bedrock API key is read from OPENAI_API_KEY; the job's id is "
        "its URL. Worked examples: docs/bedrock.md",
    )
    kinds.add_argument(
        "--customization-type",
        choices=CUSTOMIZATION_TYPES,
        help="what the Bedrock job does (default FINE_TUNING)",
    )
    kinds.add_argument(
        "--grader-lambda-arn",
        help="RFT: the Lambda that scores answers (the platform's grader, or your own)",
    )
    kinds.add_argument(
        "--rft-hyperparameter",
        action="append",
        metavar="NAME=VALUE",
        help="RFT: epochCount, batchSize, learningRate, maxPromptLength, "
        "trainingSamplePerPrompt, inferenceMaxTokens, reasoningEffort, evalInterval; "
        "open-weight models: n_epochs, batch_size, learning_rate_multiplier",
    )
    kinds.add_argument("--teacher-model", help="DISTILLATION: teacher id, profile or ARN")
    kinds.add_argument(
        "--teacher-max-response-length",
        type=int,
        metavar="TOKENS",
        help="DISTILLATION: longest answer asked of the teacher",
    )
    kinds.add_argument(
        "--invocation-logs-uri",
        help="DISTILLATION: s3:// prefix of Bedrock invocation logs to use as prompts",
    )
    kinds.add_argument(
        "--use-prompt-response",
        action="store_true",
        help="DISTILLATION: keep the logged responses instead of asking the teacher again",
    )

    hyper = parser.add_argument_group("hyperparameters")
    hyper.add_argument("--epoch-count", type=int, help="passes over the training data")
    hyper.add_argument("--learning-rate", type=float, help="learning rate")
    hyper.add_argument("--batch-size", type=int, help="batch size")
    hyper.add_argument(
        "--hyperparameter",
        action="append",
        metavar="NAME=VALUE",
        help="any other hyperparameter in the backend's names (repeatable)",
    )
    hyper.add_argument("--hyperparameter-preset", help="a preset from the config file")

    open_models = parser.add_argument_group("sagemaker and local")
    open_models.add_argument("--method", choices=("full", "lora", "qlora"), default="lora")
    open_models.add_argument(
        "--instance-type", help=f"SageMaker instance (default {DEFAULT_INSTANCE_TYPE})"
    )
    open_models.add_argument("--instance-count", type=int, default=1)
    open_models.add_argument("--volume-size", type=int, default=100, metavar="GB")
    open_models.add_argument("--max-run", type=int, default=24 * 3600, metavar="SECONDS")
    open_models.add_argument("--spot", action="store_true", help="managed spot training")
    open_models.add_argument("--max-wait", type=int, metavar="SECONDS", help="spot: total wait")
    open_models.add_argument("--checkpoint-uri", help="spot: where checkpoints sync")
    open_models.add_argument(
        "--network-isolation", action="store_true", help="no network access for the container"
    )
    open_models.add_argument("--image-uri", help="training image (default: Hugging Face DLC)")

    parser.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    add_wait_arguments(parser)
    add_service_arguments(parser)


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="bedrock")
    parser.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    parser.add_argument("--limit", type=int, default=20, help="jobs per page (default 20)")
    parser.add_argument("--next-token", help="continue from a previous page")
    add_platform_arguments(parser, create=False)
    add_service_arguments(parser)


def job_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job config (as a mapping the service validates) from ``job create``'s flags.

    Flags a parser does not define (``finetune local submit`` has fewer) take their defaults.
    """

    def flag(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    if flag("validation_split") is not None and flag("no_validation_split"):
        raise UsageError("--validation-split and --no-validation-split exclude each other")
    hyperparameters: dict[str, Any] = key_values(flag("hyperparameter"), "--hyperparameter")
    for name, key in (
        ("epoch_count", "epochCount"),
        ("learning_rate", "learningRate"),
        ("batch_size", "batchSize"),
    ):
        if flag(name) is not None:
            hyperparameters[key] = flag(name)
    config: dict[str, Any] = {
        "training_data_uri": flag("training_data_uri"),
        "validation_data_uri": flag("validation_data_uri"),
        "base_model": flag("base_model"),
        "job_name": flag("job_name"),
        "model_name": flag("model_name"),
        "output_uri": flag("output_uri"),
        "role_arn": flag("role_arn"),
        "backend": flag("backend"),
        "kms_key_id": flag("kms_key_id"),
        "subnet_ids": csv_list(flag("subnet_ids")),
        "security_group_ids": csv_list(flag("security_group_ids")),
        "tags": key_values(flag("tag"), "--tag"),
        "method": flag("method", "lora"),
        "instance_type": flag("instance_type"),
        "instance_count": flag("instance_count", 1),
        "volume_size_gb": flag("volume_size", 100),
        "max_run_seconds": flag("max_run", 24 * 3600),
        "use_spot_instances": flag("spot", False),
        "max_wait_seconds": flag("max_wait"),
        "checkpoint_uri": flag("checkpoint_uri"),
        "enable_network_isolation": flag("network_isolation", False),
        "image_uri": flag("image_uri"),
        "customization_type": flag("customization_type"),
        "grader_lambda_arn": flag("grader_lambda_arn"),
        "teacher_model": flag("teacher_model"),
        "teacher_max_response_length": flag("teacher_max_response_length"),
        "invocation_logs_uri": flag("invocation_logs_uri"),
    }
    if flag("rft_hyperparameter"):
        config["rft_hyperparameters"] = key_values(
            flag("rft_hyperparameter"), "--rft-hyperparameter"
        )
    if flag("use_prompt_response"):
        config["use_prompt_response"] = True
    if flag("no_validation_split"):
        config["validation_split"] = None
    elif flag("validation_split") is not None:
        config["validation_split"] = flag("validation_split")
    if flag("hyperparameter_preset"):
        if hyperparameters:
            raise UsageError(
                "--hyperparameter-preset cannot be combined with --epoch-count, "
                "--learning-rate, --batch-size or --hyperparameter; put the values in the preset"
            )
        config["hyperparameters"] = flag("hyperparameter_preset")
    elif hyperparameters:
        config["hyperparameters"] = hyperparameters
    # None means "not given"; an explicit validation_split None disables the split.
    return {k: v for k, v in config.items() if v is not None or k == "validation_split"}


# -- handlers -------------------------------------------------------------------------------


@cli_errors
def create_job(args: argparse.Namespace) -> int:
    if args.via_platform:
        return submit_to_platform(args)
    if args.manifest is not None:
        raise UsageError("--manifest needs --via-platform (a manifest is the platform's job spec)")
    if not args.training_data_uri and not getattr(args, "invocation_logs_uri", None):
        raise UsageError("--training-data-uri is required (or --invocation-logs-uri)")
    config = job_config_from_args(args)
    with make_service(args) as service:
        result = service.create_finetuning_job(config, create_role=args.create_role)
        write_details(args.output_file, result)
        if not args.json:
            print("\n".join(["submitted:", *describe_job(result)]))
        if args.no_wait:
            if args.json:
                print_json(result)
            if result.backend.value == "local" and not service.local_service.is_served():
                print(
                    "note: no local job service is running; start one with "
                    "`finetune local serve` or wait with `finetune job wait --job-arn "
                    f"{result.job_arn}`",
                    file=sys.stderr,
                )
            return EXIT_OK
        return finish(args, service, result.job_arn, result.backend.value)


TRAINING_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "training_scripts"


def platform_client(args: argparse.Namespace) -> Any:
    from finetuning.cli._service_common import aws_session
    from finetuning.platform_client import PlatformClient

    session = aws_session(args)
    return PlatformClient(
        environment=args.platform_env,
        region=session.region_name,
        clients=lambda service: session.client(service, config=_platform_client_config()),
    )


def _platform_client_config() -> Any:
    """The platform client's own retry settings, on the CLI's session (region, timeout)."""
    from botocore.config import Config

    from finetuning.orchestration.aws import CLIENT_RETRY_ATTEMPTS

    return Config(retries={"mode": "adaptive", "max_attempts": CLIENT_RETRY_ATTEMPTS})


def submit_to_platform(args: argparse.Namespace) -> int:
    """Start (or find) the platform workflow's execution for this job spec."""
    from finetuning.platform_client import manifest_from_job_config, read_manifest_file

    client = platform_client(args)
    if args.manifest is not None:
        if not args.manifest.is_file():
            raise UsageError(f"{args.manifest}: no such manifest file")
        manifest = read_manifest_file(args.manifest)
    else:
        if not args.training_data_uri:
            raise UsageError("--via-platform needs --manifest FILE or --training-data-uri")
        config = job_config_from_args(args)
        code = None
        if config.get("backend") == "sagemaker":
            # SageMaker jobs run this checkout's training scripts, uploaded by content hash.
            code = client.upload_training_scripts(TRAINING_SCRIPTS_DIR)
        manifest = manifest_from_job_config(config, source_dir_uri=code)
    submission = client.submit(manifest)
    if args.json:
        print_json(submission.to_dict())
    else:
        verb = "started" if submission.started else "already started (same spec)"
        print(f"{verb}: job {submission.job_id}\nexecution: {submission.execution_arn}")
    return EXIT_OK


def finish(args: argparse.Namespace, service: Any, job_id: str, backend: str | None) -> int:
    """Wait with progress, write the details file, report; exit code from the final status."""
    interval = args.polling_interval or (
        LOCAL_POLLING_INTERVAL if backend == "local" else DEFAULT_POLLING_INTERVAL
    )
    result = service.wait_for_job_completion(
        job_id,
        polling_interval=interval,
        max_wait_time=args.max_wait_time,
        backend=backend,
        on_update=ProgressPrinter(),
    )
    write_details(args.output_file, result)
    if args.json:
        print_json(result)
    else:
        print("\n".join(["finished:", *describe_job(result)]))
    return EXIT_OK if result.status.value == "completed" else EXIT_FAILED


@cli_errors
def job_status(args: argparse.Namespace) -> int:
    with make_service(args) as service:
        result = service.get_job_status(job_identifier(args), backend=args.backend)
    write_details(args.output_file, result)
    if args.json:
        print_json(result)
    else:
        print("\n".join(describe_job(result)))
    return EXIT_OK


@cli_errors
def wait_job(args: argparse.Namespace) -> int:
    identifier = job_identifier(args)
    with make_service(args) as service:
        backend = service.backend_of(identifier, args.backend).value
        return finish(args, service, identifier, backend)


@cli_errors
def list_jobs(args: argparse.Namespace) -> int:
    if args.via_platform:
        platform_page = platform_client(args).list_jobs(
            status=args.status, limit=args.limit, next_token=args.next_token
        )
        if args.json:
            print_json(platform_page.to_dict())
        else:
            if not platform_page.jobs:
                print("no jobs")
            for job in platform_page.jobs:
                print(
                    f"{job.get('created_at') or '-'}  {job['status']:<13} {job['backend']:<9} "
                    f"{job['job_name']}  {job['job_id']}"
                )
            if platform_page.next_token:
                print(f"more: --next-token {platform_page.next_token}")
        return EXIT_OK
    with make_service(args) as service:
        page = service.list_jobs(args.status, args.limit, args.next_token, backend=args.backend)
    if args.json:
        print_json({"jobs": page.jobs, "next_token": page.next_token})
        return EXIT_OK
    if not page.jobs:
        print("no jobs")
    for job in page.jobs:
        print(job_row(job))
    if page.next_token:
        print(f"more: --next-token {page.next_token}")
    return EXIT_OK


@cli_errors
def stop_job(args: argparse.Namespace) -> int:
    with make_service(args) as service:
        result = service.stop_job(job_identifier(args), backend=args.backend)
    code = stop_exit_code(result)
    if args.json:
        print_json(result)
    elif code == EXIT_OK:
        print("\n".join(["stop requested:", *describe_job(result)]))
    else:
        print("\n".join([f"not stopped: already {result.status.value}", *describe_job(result)]))
    return code

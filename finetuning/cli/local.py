"""``finetune local``: the local job service on this machine.

``serve`` runs queued jobs (one at a time by default) until interrupted; ``submit`` queues a job
(``--wait`` also runs it here when no service is serving); ``status``, ``list``, ``cancel``,
``logs`` and ``models`` read and change the shared SQLite state from any shell.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from finetuning.cli import EXIT_OK
from finetuning.cli._service_common import (
    add_job_identifier,
    add_service_arguments,
    cli_errors,
    describe_job,
    job_identifier,
    job_row,
    make_service,
    print_json,
    stop_exit_code,
    write_details,
)
from finetuning.cli.job import STATUSES, add_wait_arguments, finish


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "local",
        help="run and manage fine-tuning jobs on this machine",
        description="The local fine-tuning job service: a queue of train.py runs whose state "
        "lives in SQLite under --local-home.",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run queued jobs until interrupted")
    serve.add_argument(
        "--max-concurrent-jobs", type=int, help="jobs run at the same time (default 1)"
    )
    add_service_arguments(serve)
    serve.set_defaults(handler=serve_jobs)

    submit = commands.add_parser("submit", help="queue a job")
    submit.add_argument("--training-data-uri", required=True, help="JSONL file or s3:// URI")
    submit.add_argument("--validation-data-uri")
    submit.add_argument("--validation-split", type=float, metavar="FRACTION")
    submit.add_argument("--no-validation-split", action="store_true")
    submit.add_argument(
        "--base-model",
        required=True,
        help="model directory, Hugging Face id (cached when offline) or registered model id",
    )
    submit.add_argument("--job-name")
    submit.add_argument("--model-name", help="id to register the fine-tuned model under")
    submit.add_argument("--method", choices=("full", "lora", "qlora"), default="lora")
    submit.add_argument("--output-uri", help="directory for outputs (default: under the home)")
    submit.add_argument("--epoch-count", type=int)
    submit.add_argument("--learning-rate", type=float)
    submit.add_argument("--batch-size", type=int)
    submit.add_argument("--hyperparameter", action="append", metavar="NAME=VALUE")
    submit.add_argument("--wait", action="store_true", help="wait (and run it here if needed)")
    add_wait_arguments(submit)
    add_service_arguments(submit)
    submit.set_defaults(handler=submit_job)

    status = commands.add_parser("status", help="show a job")
    add_job_identifier(status, "local job id (local-...) or job name")
    add_service_arguments(status)
    status.set_defaults(handler=job_status)

    cancel = commands.add_parser(
        "cancel",
        help="cancel a queued or running job",
        description="Cancel a job. Exit 0 when it is stopping or cancelled (also when it "
        "already was), 1 when it had already completed or failed.",
    )
    add_job_identifier(cancel, "local job id (local-...) or job name")
    add_service_arguments(cancel)
    cancel.set_defaults(handler=cancel_job)

    listing = commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--next-token", help="continue from a previous page")
    add_service_arguments(listing)
    listing.set_defaults(handler=list_jobs)

    logs = commands.add_parser("logs", help="print a job's train.py output")
    add_job_identifier(logs, "local job id (local-...) or job name")
    add_service_arguments(logs)
    logs.set_defaults(handler=job_logs)

    models = commands.add_parser("models", help="list the fine-tuned models in the registry")
    add_service_arguments(models)
    models.set_defaults(handler=list_models)


@cli_errors
def serve_jobs(args: argparse.Namespace) -> int:
    service = make_service(args).local_service

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        f"serving local jobs from {service.home} (max {service.max_concurrent_jobs} at a time); "
        "Ctrl-C to stop",
        file=sys.stderr,
    )
    service.start()
    seen: dict[str, str] = {}
    try:
        while True:
            for job in service.list(limit=50).jobs:
                if seen.get(job.job_arn) != job.status.value:
                    seen[job.job_arn] = job.status.value
                    detail = f": {job.failure_reason}" if job.failure_reason else ""
                    print(f"{job.job_arn} {job.job_name} {job.status.value}{detail}", flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping: running jobs are stopped and marked failed", file=sys.stderr)
    finally:
        service.stop()
    return EXIT_OK


@cli_errors
def submit_job(args: argparse.Namespace) -> int:
    from finetuning.cli.job import job_config_from_args

    config = job_config_from_args(args)
    config["backend"] = "local"
    with make_service(args) as service:
        result = service.create_finetuning_job(config)
        write_details(args.output_file, result)
        if not args.wait:
            if args.json:
                print_json(result)
            else:
                print(result.job_arn)
            return EXIT_OK
        return finish(args, service, result.job_arn, "local")


@cli_errors
def job_status(args: argparse.Namespace) -> int:
    service = make_service(args).local_service
    result = service.get(job_identifier(args))
    if args.json:
        print_json(result)
    else:
        print("\n".join(describe_job(result)))
    return EXIT_OK


@cli_errors
def cancel_job(args: argparse.Namespace) -> int:
    service = make_service(args).local_service
    identifier = job_identifier(args)
    accepted = service.cancel(identifier)
    result = service.get(identifier)
    code = stop_exit_code(result)
    if args.json:
        print_json({"cancel_accepted": accepted, "job": result})
    elif accepted:
        print(f"cancel requested: {result.job_arn} is {result.status.value}")
    elif code == EXIT_OK:
        print(f"already {result.status.value}: {result.job_arn}")
    else:
        print(f"not cancelled: {result.job_arn} already {result.status.value}")
    return code


@cli_errors
def list_jobs(args: argparse.Namespace) -> int:
    page = make_service(args).local_service.list(args.status, args.limit, args.next_token)
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
def job_logs(args: argparse.Namespace) -> int:
    path = Path(make_service(args).local_service.log_path(job_identifier(args)))
    if not path.is_file():
        print(f"no output yet: {path}", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
    return EXIT_OK


@cli_errors
def list_models(args: argparse.Namespace) -> int:
    models = make_service(args).local_service.registry.list()
    if args.json:
        print_json(
            [
                {
                    "model_id": m.model_id,
                    "path": str(m.path),
                    "base_model": m.base_model,
                    "job_id": m.job_id,
                    "method": m.method,
                    "created_at": m.created_at,
                }
                for m in models
            ]
        )
        return EXIT_OK
    if not models:
        print("no models")
    for model in models:
        print(
            f"{model.model_id}  {model.method or '-':<5}  {model.path}  (base {model.base_model})"
        )
    return EXIT_OK

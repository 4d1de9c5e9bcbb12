"""``finetune throughput``: serve a Bedrock custom model with Provisioned Throughput or on demand.

Flags follow the old ``create_provisioned_throughput.py``: the model comes from a job details
file (``finetune job create --output-file``), a custom model ARN or the job's ARN.
Provisioned Throughput is billed every hour it exists; it is created with no commitment unless
``--commitment-duration`` asks for a one- or six-month term. ``--on-demand`` deploys the custom
model for pay-per-token inference instead (Nova custom models).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finetuning.cli import EXIT_FAILED, EXIT_OK, UsageError
from finetuning.cli._service_common import (
    ProgressPrinter,
    add_service_arguments,
    cli_errors,
    key_values,
    make_service,
    print_json,
    write_details,
)
from finetuning.jobs import FinetuningJobResult

THROUGHPUT_STATUSES = ("Creating", "InService", "Updating", "Failed")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "throughput",
        help="Provisioned Throughput and on-demand deployments for Bedrock custom models",
        description="Serve Bedrock custom models. Provisioned Throughput costs money every hour "
        "it exists: delete it when done.",
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create Provisioned Throughput (or --on-demand)")
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--job-details-file", type=Path, help="from `finetune job create`")
    source.add_argument("--model-id", help="custom model ARN or id")
    source.add_argument("--job-arn", help="the customization job that made the model")
    create.add_argument(
        "--provisioned-model-name",
        required=True,
        help="name of the throughput (or of the deployment, with --on-demand)",
    )
    create.add_argument("--model-units", type=int, help="model units (default 1)")
    create.add_argument(
        "--commitment-duration",
        choices=("OneMonth", "SixMonths"),
        help="a committed term (default: none, billed hourly, deletable any time)",
    )
    create.add_argument(
        "--on-demand",
        action="store_true",
        help="deploy for on-demand inference instead of Provisioned Throughput",
    )
    create.add_argument("--description", help="deployment description (with --on-demand)")
    create.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag (repeatable)")
    create.add_argument("--wait", action="store_true", help="wait until it is in service")
    create.add_argument("--polling-interval", type=float, default=60.0, metavar="SECONDS")
    create.add_argument("--max-wait-time", type=float, metavar="SECONDS")
    create.add_argument("--output-file", type=Path, help="write the details JSON here")
    add_service_arguments(create)
    create.set_defaults(handler=create_throughput)

    status = commands.add_parser("status", help="show a throughput's or deployment's status")
    status.add_argument("--provisioned-model-arn", required=True, metavar="ARN")
    add_service_arguments(status)
    status.set_defaults(handler=throughput_status)

    listing = commands.add_parser("list", help="list Provisioned Throughputs")
    listing.add_argument("--status", choices=THROUGHPUT_STATUSES)
    add_service_arguments(listing)
    listing.set_defaults(handler=list_throughputs)

    delete = commands.add_parser("delete", help="delete a throughput or deployment")
    delete.add_argument("--provisioned-model-arn", required=True, metavar="ARN")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_service_arguments(delete)
    delete.set_defaults(handler=delete_throughput)


def _model_from_details(path: Path) -> tuple[str | None, str]:
    """(model id if recorded, job ARN) from a job details file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--job-details-file {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise UsageError(f"--job-details-file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--job-details-file {path}: expected a JSON object")
    try:
        details = FinetuningJobResult.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--job-details-file {path}: {exc}") from None
    model = details.model_id if details.status.value == "completed" else None
    return model, details.job_arn


@cli_errors
def create_throughput(args: argparse.Namespace) -> int:
    tags = key_values(args.tag, "--tag")
    if args.on_demand and (args.model_units is not None or args.commitment_duration):
        raise UsageError("--on-demand deployments take no --model-units or --commitment-duration")
    with make_service(args) as service:
        model_id = args.model_id
        if args.job_details_file is not None:
            model_id, job_arn = _model_from_details(args.job_details_file)
            # A details file written at submission has no model yet: ask the job now.
            model_id = model_id or service.model_id_for_job(job_arn)
        elif args.job_arn:
            model_id = service.model_id_for_job(args.job_arn)
        if args.on_demand:
            result = service.create_custom_model_deployment(
                {
                    "model_arn": model_id,
                    "deployment_name": args.provisioned_model_name,
                    "description": args.description,
                    "tags": tags,
                }
            )
            arn = result.deployment_arn
            if args.wait:
                result = service.wait_for_deployment_completion(
                    arn, args.polling_interval, args.max_wait_time, on_update=ProgressPrinter()
                )
        else:
            result = service.create_provisioned_throughput(
                {
                    "model_id": model_id,
                    "provisioned_model_name": args.provisioned_model_name,
                    "model_units": 1 if args.model_units is None else args.model_units,
                    "commitment_duration": args.commitment_duration,
                    "tags": tags,
                }
            )
            arn = result.provisioned_model_arn
            if args.wait:
                result = service.wait_for_provisioning_completion(
                    arn,
                    polling_interval=args.polling_interval,
                    max_wait_time=args.max_wait_time,
                    on_update=ProgressPrinter(),
                )
    write_details(args.output_file, result)
    if args.json:
        print_json(result)
    else:
        kind = "on-demand deployment" if args.on_demand else "provisioned throughput"
        print(f"{kind}: {arn}\nstatus: {result.status}")
        if not args.on_demand and not args.commitment_duration:
            print("billing: hourly, no commitment; delete it when done:", file=sys.stderr)
            print(f"  finetune throughput delete --provisioned-model-arn {arn}", file=sys.stderr)
    return EXIT_FAILED if result.status == "Failed" else EXIT_OK


@cli_errors
def throughput_status(args: argparse.Namespace) -> int:
    with make_service(args) as service:
        if service.is_deployment_arn(args.provisioned_model_arn):
            result = service.get_custom_model_deployment_status(args.provisioned_model_arn)
        else:
            result = service.get_provisioned_throughput_status(args.provisioned_model_arn)
    if args.json:
        print_json(result)
    else:
        for key, value in result.to_dict().items():
            if value is not None:
                print(f"{key}: {value}")
    return EXIT_OK


@cli_errors
def list_throughputs(args: argparse.Namespace) -> int:
    with make_service(args) as service:
        results = service.list_provisioned_throughputs(args.status)
    if args.json:
        print_json(results)
        return EXIT_OK
    if not results:
        print("no provisioned throughputs")
    for item in results:
        term = item.commitment_duration or "no commitment"
        print(
            f"{item.status:<10} {item.model_units or '-':>3} MU  {term:<13} "
            f"{item.provisioned_model_name}  {item.provisioned_model_arn}"
        )
    return EXIT_OK


@cli_errors
def delete_throughput(args: argparse.Namespace) -> int:
    arn = args.provisioned_model_arn
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {arn}? Requests to it will fail from now on. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return EXIT_FAILED
    with make_service(args) as service:
        if service.is_deployment_arn(arn):
            service.delete_custom_model_deployment(arn)
        else:
            service.delete_provisioned_throughput(arn)
    if args.json:
        print_json({"deleted": arn})
    else:
        print(f"deleted: {arn}")
    return EXIT_OK

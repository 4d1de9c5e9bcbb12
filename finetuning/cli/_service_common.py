"""Shared pieces of the ``job``, ``throughput`` and ``local`` command groups.

Not a command group itself (the leading underscore keeps the CLI's discovery away).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from finetuning.cli import UsageError
from finetuning.errors import InvalidJobConfigError


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how to reach AWS and the local service."""
    group = parser.add_argument_group("service")
    group.add_argument(
        "--region",
        help="AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION, then your profile's)",
    )
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="service config (YAML or JSON) with a model_finetuning section: base_models, "
        "hyperparameters presets, platform, local",
    )
    group.add_argument(
        "--platform-env",
        metavar="ENV",
        help="environment of the deployed platform to discover "
        "(default: FINETUNE_ENVIRONMENT or dev)",
    )
    group.add_argument(
        "--local-home",
        type=Path,
        metavar="DIR",
        help="local job service home (default: FINETUNE_LOCAL_HOME or ~/.finetune/local)",
    )
    group.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def load_config_file(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read ({exc.strerror})") from None
    try:
        import yaml

        data = yaml.safe_load(text)
    except Exception as exc:
        raise UsageError(f"--config {path}: not valid YAML or JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping with a model_finetuning section")
    return data


def make_service(args: argparse.Namespace) -> Any:
    from finetuning.service import ModelFinetuningService

    config = load_config_file(getattr(args, "config", None)) or {}
    section = dict(config.get("model_finetuning") or {})
    if getattr(args, "platform_env", None):
        section["platform"] = {**(section.get("platform") or {}), "environment": args.platform_env}
    if getattr(args, "local_home", None):
        section["local"] = {**(section.get("local") or {}), "home": str(args.local_home)}
    if getattr(args, "max_concurrent_jobs", None):
        section["local"] = {
            **(section.get("local") or {}),
            "max_concurrent_jobs": args.max_concurrent_jobs,
        }
    session = aws_session(args)
    try:
        return ModelFinetuningService(
            region=getattr(args, "region", None) or session.region_name,
            config={"model_finetuning": section} if section else None,
            session=session,
        )
    except InvalidJobConfigError as exc:
        raise UsageError(str(exc)) from None


def key_values(pairs: Iterable[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; a pair without '=' is bad usage."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} {pair!r}: expected KEY=VALUE")
        values[name.strip()] = value.strip()
    return values


def csv_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=True, default=str))


def write_details(path: Path | None, result: Any) -> None:
    """The job (or throughput) details file: ARN, name, status, model id, times, reason."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(result), indent=2, sort_keys=True) + "\n")


def add_job_identifier(parser: argparse.ArgumentParser, what: str) -> None:
    """The job a command acts on, the same way in ``job`` and ``local``: positionally
    (``finetune local status ID``) or as ``--job-arn``/``--job-id`` (the old scripts' flag)."""
    parser.add_argument("job", nargs="?", metavar="JOB", help=what)
    parser.add_argument(
        "--job-arn", "--job-id", dest="job_arn", metavar="JOB", help="the same as JOB"
    )


def job_identifier(args: argparse.Namespace) -> str:
    given = {value for value in (args.job, args.job_arn) if value}
    if not given:
        raise UsageError("which job? give its ARN, id or name (JOB or --job-arn)")
    if len(given) > 1:
        raise UsageError(f"two different jobs given: {args.job!r} and --job-arn {args.job_arn!r}")
    return given.pop()


def job_row(job: Any) -> str:
    """One line of ``job list`` and ``local list``: the same columns in the same order."""
    created = job.creation_time.strftime("%Y-%m-%d %H:%M") if job.creation_time else "-"
    progress = f"{job.progress_percentage:.0f}%" if job.progress_percentage is not None else ""
    return f"{created}  {job.status.value:<13} {progress:>4}  {job.job_name}  {job.job_arn}"


# Statuses in which a stop or cancel request has nothing left to do but succeeded all the same.
STOPPED_STATUSES = ("stopping", "cancelled")


def stop_exit_code(result: Any) -> int:
    """``job stop`` and ``local cancel``: 0 when the job is (being) stopped or already was;
    1 when it had already completed or failed (nothing was stopped)."""
    from finetuning.cli import EXIT_FAILED, EXIT_OK

    status = result.status.value
    return EXIT_OK if status in STOPPED_STATUSES or not result.status.is_terminal else EXIT_FAILED


def describe_job(result: Any) -> list[str]:
    lines = [
        f"job:      {result.job_name}",
        f"id:       {result.job_arn}",
        f"backend:  {result.backend.value}",
        f"status:   {result.status.value}"
        + (
            f" ({result.backend_status})"
            if result.backend_status not in (None, result.status.value)
            else ""
        ),
    ]
    if result.progress_percentage is not None:
        step = f" (step {result.current_step}/{result.total_steps})" if result.total_steps else ""
        lines.append(f"progress: {result.progress_percentage:.0f}%{step}")
    for label, value in (
        ("model:", result.model_id),
        ("base:", result.base_model),
        ("output:", result.output_uri),
        ("train:", result.training_data_uri),
        ("valid:", result.validation_data_uri),
        ("created:", result.creation_time),
        ("ended:", result.end_time),
        ("failure:", result.failure_reason),
    ):
        if value:
            lines.append(f"{label:<9} {value}")
    metrics = {**result.training_metrics, **result.validation_metrics}
    if metrics:
        lines.append("metrics:  " + " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return lines


class ProgressPrinter:
    """Prints one line on stderr whenever a waited-for job changes (status, step, metrics)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.last: tuple | None = None

    def __call__(self, result: Any) -> None:
        status = getattr(result, "status", None)
        status_text = getattr(status, "value", status)
        progress = getattr(result, "progress_percentage", None)
        step = getattr(result, "current_step", None)
        total = getattr(result, "total_steps", None)
        metrics = getattr(result, "training_metrics", {}) or {}
        key = (status_text, step, total)
        if key == self.last:
            return
        self.last = key
        line = f"[{datetime.now().strftime('%H:%M:%S')}] {status_text}"
        backend_status = getattr(result, "backend_status", None)
        if backend_status and backend_status != status_text:
            line += f" ({backend_status})"
        if progress is not None:
            line += f" {progress:.0f}%"
        if total:
            line += f" step {step or 0}/{total}"
        loss = metrics.get("train_loss")
        if loss is not None:
            line += f" train_loss={loss:.4g}"
        print(line, file=self.stream, flush=True)


def cli_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Kept for command modules that mark their handlers: errors are mapped to exit codes
    in one place for every command (:mod:`finetuning.cli._errors`), so this changes nothing."""
    return handler


def aws_session(args: argparse.Namespace) -> Any:
    """The command's boto3 session: region as the AWS CLI resolves it, a short connect
    timeout, and a preflight at the first AWS client (:mod:`finetuning.cli._aws`)."""
    from finetuning.cli import _aws

    return _aws.session(getattr(args, "region", None))

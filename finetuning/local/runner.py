"""Running one local job: prepare the data, run ``train.py`` in a subprocess, record the outcome.

``train.py`` prints ``progress: step=S/T`` and ``metrics:``/``eval:`` lines; the runner reads
them as they come and stores progress, current step and the latest metrics, so any process
reading the state database sees the job advance. The subprocess gets its own process group:
cancelling sends SIGTERM to the whole group (train.py saves a checkpoint and exits 143), then
SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetuning.data.split import json_line_problem
from finetuning.errors import FinetuningError, JobExecutionError
from finetuning.jobs import JobStatus
from finetuning.local.model_registry import LocalModelRegistry
from finetuning.local.store import JobRow, JobStore
from finetuning.uris import is_s3_uri, parse_s3_uri

logger = logging.getLogger(__name__)

# The folder that holds the finetuning and training_scripts packages: the repository in a
# checkout, site-packages when installed. train.py imports both.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Run as a module, not by file path: works the same from a checkout and from an installed wheel.
TRAIN_MODULE = "training_scripts.train"
PROGRESS_LINE = re.compile(r"^progress: step=(\d+)/(\d+)\s*$")
METRICS_LINE = re.compile(r"^(metrics|eval|final): (.*)$")
ERROR_LINE = re.compile(r"^error: (.*)$")
# Records checked for JSON syntax before train.py starts: catches a wrong file fast without
# reading a large dataset twice (train.py validates every record itself).
PRECHECK_RECORDS = 1000
SERVICE_STOPPED = "the local job service stopped before the job finished"
# A finished job's output folder holds a model (config.json) or a PEFT adapter.
MODEL_MARKERS = ("config.json", "adapter_config.json")


def train_arguments(
    *,
    base_model: str,
    train_file: str,
    validation_file: str | None,
    output_dir: str,
    method: str,
    hyperparameters: dict[str, str],
) -> list[str]:
    """train.py's command line for a job (the backend checks the same line at submission)."""
    arguments = [
        "--model_name_or_path", base_model,
        "--train_file", train_file,
        "--output_dir", output_dir,
        "--method", method,
    ]  # fmt: skip
    if validation_file:
        arguments += ["--validation_file", validation_file]
    for name, value in sorted(hyperparameters.items()):
        arguments += [f"--{name}", str(value)]
    return arguments


class JobRunner:
    """Runs one claimed job to a terminal state. ``run`` records every outcome; it never raises."""

    def __init__(
        self,
        store: JobStore,
        registry: LocalModelRegistry,
        job: JobRow,
        *,
        python: str,
        train_script: Path | None,
        cancel_grace_seconds: float,
        shutdown: threading.Event,
        s3_client_factory: Callable[[], Any] | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self.store = store
        self.registry = registry
        self.job = job
        self.python = python
        self.train_script = train_script
        self.cancel_grace_seconds = cancel_grace_seconds
        self.shutdown = shutdown
        self.s3_client_factory = s3_client_factory
        self.poll_interval = poll_interval
        self.job_dir = Path(job.log_path).parent

    def run(self) -> None:
        try:
            arguments = self._prepare()
            if self._cancel_requested():
                self.store.finish_job(self.job.id, JobStatus.CANCELLED, "cancelled by request")
                return
            self._train(arguments)
        except FinetuningError as exc:
            phase = getattr(exc, "phase", "preprocessing")
            self.store.finish_job(self.job.id, JobStatus.FAILED, f"{phase}: {exc}")
        except Exception as exc:  # a bug or an OS error: still a failed job, never a hang
            logger.exception("local job %s failed", self.job.id)
            self.store.finish_job(
                self.job.id, JobStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            )

    # -- preprocessing ----------------------------------------------------------------------

    def _prepare(self) -> list[str]:
        spec = self.job.spec
        self.job_dir.mkdir(parents=True, exist_ok=True)
        base_model = self.registry.resolve_base_model(spec["base_model"])
        train_file = self._local_data(spec["train_file"], "training_data_uri")
        validation = None
        if spec.get("validation_file"):
            validation = self._local_data(spec["validation_file"], "validation_data_uri")
        return train_arguments(
            base_model=base_model,
            train_file=str(train_file),
            validation_file=str(validation) if validation else None,
            output_dir=self.job.output_dir,
            method=spec["method"],
            hyperparameters=spec.get("hyperparameters", {}),
        )

    def _local_data(self, uri: str, field: str) -> Path:
        if is_s3_uri(uri):
            if self.s3_client_factory is None:
                raise JobExecutionError("preprocessing", f"{field}: no S3 client to read {uri}")
            location = parse_s3_uri(uri, field)
            target = self.job_dir / "data" / Path(location.key).name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3_client_factory().download_file(location.bucket, location.key, str(target))
            path = target
        else:
            path = Path(uri).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
            if not files:
                raise JobExecutionError(
                    "preprocessing", f"{field}: {path} has no .jsonl or .json files"
                )
            check_records(files[0])
            return path
        if not path.is_file():
            raise JobExecutionError("preprocessing", f"{field}: {path} does not exist")
        check_records(path)
        return path

    # -- training ---------------------------------------------------------------------------

    def _train(self, arguments: list[str]) -> None:
        entry = ["-m", TRAIN_MODULE] if self.train_script is None else [str(self.train_script)]
        command = [self.python, *entry, *arguments]
        environment = dict(os.environ)
        # train.py imports finetuning.data and training_scripts from where this library is,
        # whatever the job folder (its working directory) holds.
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), environment.get("PYTHONPATH")])
        )
        environment["PYTHONUNBUFFERED"] = "1"
        Path(self.job.output_dir).mkdir(parents=True, exist_ok=True)
        with open(self.job.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.job_dir,
                env=environment,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            self.store.update_job(self.job.id, status=JobStatus.RUNNING, pid=process.pid)
            state = _OutputState()
            reader = threading.Thread(target=_read_output, args=(process, log, state), daemon=True)
            reader.start()
            stop_reason = self._supervise(process, state)
            reader.join(timeout=10)
        self._record_progress(state, force=True)
        self._finish(process.returncode, state, stop_reason)

    def _supervise(self, process: subprocess.Popen, state: _OutputState) -> str | None:
        """Wait for the process; stop it on cancel or service shutdown. Returns why it was
        stopped (``cancel`` or ``shutdown``), or None if it ended on its own."""
        last_cancel_check = 0.0
        while process.poll() is None:
            time.sleep(self.poll_interval)
            self._record_progress(state)
            reason = None
            if self.shutdown.is_set():
                reason = "shutdown"
            elif time.monotonic() - last_cancel_check >= 0.5:
                last_cancel_check = time.monotonic()
                if self._cancel_requested():
                    reason = "cancel"
            if reason is not None:
                self.store.update_job(self.job.id, status=JobStatus.STOPPING)
                terminate_group(process, self.cancel_grace_seconds)
                return reason
        return None

    def _record_progress(self, state: _OutputState, force: bool = False) -> None:
        with state.lock:
            if not (state.changed or force):
                return
            state.changed = False
            values: dict[str, Any] = {"metrics": dict(state.metrics)}
            if state.total:
                values.update(
                    current_step=state.step,
                    total_steps=state.total,
                    progress=round(100.0 * state.step / state.total, 2),
                )
        self.store.update_job(self.job.id, **values)

    def _finish(self, returncode: int, state: _OutputState, stop_reason: str | None) -> None:
        if stop_reason == "cancel":
            self.store.finish_job(self.job.id, JobStatus.CANCELLED, "cancelled by request")
            return
        if stop_reason == "shutdown":
            self.store.finish_job(self.job.id, JobStatus.FAILED, SERVICE_STOPPED)
            return
        if returncode != 0:
            detail = state.error or " | ".join(state.tail[-3:]) or "no output"
            self.store.finish_job(
                self.job.id,
                JobStatus.FAILED,
                f"training: train.py exited with code {returncode}: {detail}",
            )
            return
        metrics = dict(state.metrics)
        metrics_file = Path(self.job.output_dir) / "metrics.json"
        if metrics_file.is_file():
            written = json.loads(metrics_file.read_text(encoding="utf-8"))
            metrics.update({k: v for k, v in written.items() if isinstance(v, int | float)})
        spec = self.job.spec
        output = Path(self.job.output_dir)
        if not any((output / name).is_file() for name in MODEL_MARKERS):
            # Never register a folder without weights (a wrong output path, a script that
            # wrote elsewhere): the job fails saying where it looked.
            self.store.finish_job(
                self.job.id,
                JobStatus.FAILED,
                f"registration: train.py exited 0 but {output} has no "
                f"{' or '.join(MODEL_MARKERS)}: no model to register",
                metrics=metrics,
            )
            return
        try:
            self.registry.register(
                spec["model_name"],
                self.job.output_dir,
                base_model=spec["base_model"],
                job_id=self.job.id,
                method=spec["method"],
            )
        except FinetuningError as exc:
            self.store.finish_job(
                self.job.id, JobStatus.FAILED, f"registration: {exc}", metrics=metrics
            )
            return
        total = state.total or metrics.get("max_steps")
        self.store.finish_job(
            self.job.id,
            JobStatus.COMPLETED,
            None,
            metrics=metrics,
            model_id=spec["model_name"],
            progress=100.0,
            current_step=int(metrics.get("global_step") or state.step or 0) or None,
            total_steps=int(total) if total else None,
        )

    def _cancel_requested(self) -> bool:
        job = self.store.get_job(self.job.id)
        return bool(job and job.cancel_requested)


class _OutputState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.step = 0
        self.total = 0
        self.metrics: dict[str, float] = {}
        self.error: str | None = None
        self.tail: list[str] = []
        self.changed = False


def _read_output(process: subprocess.Popen, log: Any, state: _OutputState) -> None:
    for raw in process.stdout:
        log.write(raw)
        log.flush()
        line = raw.rstrip("\n")
        with state.lock:
            state.tail = [*state.tail[-19:], line]
            if match := PROGRESS_LINE.match(line):
                state.step, state.total = int(match[1]), int(match[2])
                state.changed = True
            elif match := METRICS_LINE.match(line):
                state.metrics.update(_parse_pairs(match[2]))
                state.changed = True
            elif match := ERROR_LINE.match(line):
                state.error = match[1]


def _parse_pairs(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for pair in text.split():
        name, _, value = pair.partition("=")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


def check_records(path: Path, error: Callable[[str], Exception] | None = None) -> None:
    """The first records of a JSONL file are JSON objects, and there is at least one.

    ``error`` makes the exception from the message (default: a preprocessing failure).
    """
    fail = error or (lambda message: JobExecutionError("preprocessing", message))
    checked = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            problem = json_line_problem(raw)
            if problem:
                raise fail(f"{path}: line {number}: {problem}")
            checked += 1
            if checked >= PRECHECK_RECORDS:
                break
    if checked == 0:
        raise fail(f"{path}: no records (the file is empty)")


def terminate_group(
    process: subprocess.Popen | None, grace_seconds: float, pid: int | None = None
) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still alive after ``grace_seconds``."""
    pid = process.pid if process is not None else pid
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                break
        elif not _group_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

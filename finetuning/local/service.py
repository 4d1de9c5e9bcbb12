"""The local fine-tuning job service: a persistent queue of ``train.py`` runs.

Jobs are submitted to a SQLite database under the service home; a running service (``finetune
local serve``, or one started inside a program with :meth:`LocalJobService.start`) takes them
in submission order, at most ``max_concurrent_jobs`` at a time across every service sharing the
database, and runs each in a subprocess. Statuses: queued, preprocessing, running, stopping,
completed, failed, cancelled.

A service records a heartbeat. When a service dies (killed, machine restarted), the next
service to start finds its jobs still marked active, stops any training process left behind
and marks those jobs failed with the reason, so no job stays "running" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetuning.errors import InvalidJobConfigError, JobNotFoundError
from finetuning.jobs import Backend, FinetuningJobResult, JobPage, JobStatus
from finetuning.local.model_registry import LocalModelRegistry
from finetuning.local.runner import JobRunner, terminate_group
from finetuning.local.store import ACTIVE_STATUSES, JobRow, JobStore
from finetuning.uris import is_s3_uri

logger = logging.getLogger(__name__)

DEFAULT_HOME = Path("~/.finetune/local")
HOME_ENVIRONMENT_VARIABLE = "FINETUNE_LOCAL_HOME"
# A different training script with train.py's command line (a fork, a wrapper).
TRAIN_SCRIPT_ENVIRONMENT_VARIABLE = "FINETUNE_LOCAL_TRAIN_SCRIPT"
JOB_ID_PREFIX = "local-"
HEARTBEAT_SECONDS = 2.0
# A service whose heartbeat is older than this is considered dead even if its pid exists
# (a hung process, or a pid reused by another program).
STALE_AFTER_SECONDS = 20.0


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENVIRONMENT_VARIABLE) or DEFAULT_HOME).expanduser()


def is_local_job_id(identifier: str) -> bool:
    return identifier.startswith(JOB_ID_PREFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _absolute(path: str) -> str:
    """A local path made absolute against the current directory; s3:// URIs unchanged."""
    if is_s3_uri(path):
        return path
    return str(Path(path).expanduser().absolute())


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


class LocalJobService:
    """Submit, watch, cancel and run local fine-tuning jobs.

    Every method except :meth:`start`/:meth:`serve_forever` works without a running service:
    ``submit`` queues, ``get``/``list`` read the database, ``cancel`` cancels a queued job at
    once and asks the owning service to stop an active one.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        max_concurrent_jobs: int = 1,
        poll_interval: float = 0.5,
        cancel_grace_seconds: float = 10.0,
        train_script: Path | str | None = None,
        python: str = sys.executable,
        s3_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if (
            isinstance(max_concurrent_jobs, bool)
            or not isinstance(max_concurrent_jobs, int)
            or (max_concurrent_jobs < 1)
        ):
            raise InvalidJobConfigError(
                "max_concurrent_jobs", "a positive integer", max_concurrent_jobs
            )
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.home / "state.db")
        self.registry = LocalModelRegistry(self.store)
        self.max_concurrent_jobs = max_concurrent_jobs
        self.poll_interval = poll_interval
        self.cancel_grace_seconds = cancel_grace_seconds
        # None: run the installed training_scripts.train module.
        script = train_script or os.environ.get(TRAIN_SCRIPT_ENVIRONMENT_VARIABLE)
        self.train_script = Path(script).expanduser().resolve() if script else None
        self.python = python
        self.s3_client_factory = s3_client_factory
        self.service_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._shutdown = threading.Event()
        self._wake = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._serving = False
        self._workers: dict[str, threading.Thread] = {}
        self._workers_lock = threading.Lock()

    # -- submitting and reading -------------------------------------------------------------

    def submit(
        self,
        *,
        job_name: str,
        base_model: str,
        train_file: str,
        validation_file: str | None = None,
        method: str = "lora",
        hyperparameters: dict[str, str] | None = None,
        model_name: str | None = None,
        output_dir: str | None = None,
    ) -> FinetuningJobResult:
        """Queue a job. Raises before queuing when the base model cannot be found or the
        model name is already registered.

        Paths are resolved against the caller's working directory now and stored absolute:
        train.py runs in the job's own folder. Submitting the spec of a queued, active or
        completed job with the same name again returns that job instead of queuing another;
        the same name with a different spec is refused.
        """
        self.registry.resolve_base_model(base_model)
        if not self.registry.exists(base_model) and Path(base_model).expanduser().exists():
            base_model = _absolute(base_model)
        spec = {
            "job_name": job_name,
            "base_model": base_model,
            "train_file": _absolute(train_file),
            "validation_file": _absolute(validation_file) if validation_file else None,
            "method": method,
            "hyperparameters": dict(hyperparameters or {}),
            "model_name": model_name,
        }
        output_root = _absolute(output_dir) if output_dir else None
        existing = self._same_name(job_name, spec, output_root)
        if existing is not None:
            return self._result(existing)
        job_id = f"{JOB_ID_PREFIX}{uuid.uuid4().hex[:12]}"
        spec["model_name"] = model_name or job_id
        if self.registry.exists(spec["model_name"]):
            raise InvalidJobConfigError(
                "model_name", "a model id not yet in the local registry", spec["model_name"]
            )
        job_dir = self.home / "jobs" / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        spec["output_root"] = output_root
        target = Path(output_root) / job_id if output_root else job_dir / "output"
        self.store.insert_job(job_id, job_name, spec, str(target), str(job_dir / "train.log"))
        self._wake.set()
        return self.get(job_id)

    def _same_name(
        self, job_name: str, spec: dict[str, Any], output_root: str | None
    ) -> JobRow | None:
        """The job this submission repeats, if any; raises when the name is taken by a
        different spec. A failed or cancelled job does not count: submitting again reruns."""
        for row in self.store.jobs_named(job_name):
            if row.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                continue
            earlier = dict(row.spec)
            if spec["model_name"] is None and earlier.get("model_name") == row.id:
                earlier["model_name"] = None  # defaulted to the job id, not given
            if earlier.get("output_root") == output_root and all(
                earlier.get(key) == value for key, value in spec.items()
            ):
                return row
            raise InvalidJobConfigError(
                "job_name",
                "a name no other local job uses (or the same spec, to get that job back)",
                job_name,
                hint=f"{row.id} ({row.status.value}) has this name with a different spec",
            )
        return None

    def get(self, job_id: str) -> FinetuningJobResult:
        """A job by id (``local-...``) or by name (the newest job of that name)."""
        return self._result(self._row(job_id))

    def _row(self, identifier: str) -> JobRow:
        row = self.store.get_job(identifier)
        if row is None:
            named = self.store.jobs_named(identifier)
            row = named[0] if named else None
        if row is None:
            raise JobNotFoundError(identifier, "local")
        return row

    def list(
        self,
        status_filter: JobStatus | str | None = None,
        limit: int | None = 50,
        next_token: str | None = None,
    ) -> JobPage:
        """Newest first. ``next_token`` is the offset to continue from, as returned."""
        status = JobStatus(status_filter) if status_filter is not None else None
        offset = int(next_token) if next_token else 0
        fetch = None if limit is None else limit + 1
        rows = self.store.list_jobs(status, fetch, offset)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        return JobPage(
            jobs=[self._result(row) for row in rows],
            next_token=str(offset + len(rows)) if more else None,
        )

    def cancel(self, job_id: str) -> bool:
        """Cancel a job. A queued job is cancelled at once; an active one is stopped by its
        service (SIGTERM, then SIGKILL after ``cancel_grace_seconds``). Returns False when
        the job had already finished. ``job_id`` may also be a job name."""
        job_id = self._row(job_id).id
        status = self.store.request_cancel(job_id)
        if status is None:
            raise JobNotFoundError(job_id, "local")
        if status.is_active:
            job = self.store.get_job(job_id)
            owner = next((s for s in self.store.services() if s.id == job.owner), None)
            if owner is None or not self._alive(owner):
                # Nobody is left to act on the request: stop what remains ourselves.
                if job.pid and _pid_alive(job.pid) and self._is_training_process(job):
                    terminate_group(None, self.cancel_grace_seconds, pid=job.pid)
                self.store.finish_job(
                    job_id, JobStatus.CANCELLED, "cancelled (its service was no longer running)"
                )
        return status is JobStatus.QUEUED or status.is_active

    def log_path(self, job_id: str) -> Path:
        return Path(self._row(job_id).log_path)

    # -- serving ----------------------------------------------------------------------------

    def start(self) -> LocalJobService:
        """Recover jobs of dead services, then run queued jobs in a background thread."""
        if self._scheduler is not None:
            return self
        self._serving = True
        self.store.register_service(self.service_id, os.getpid(), socket.gethostname())
        self.recover()
        self._shutdown.clear()
        self._scheduler = threading.Thread(
            target=self._schedule, name=f"finetune-local-{self.service_id}", daemon=True
        )
        self._scheduler.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs; stop running ones (marked failed: the service stopped)."""
        if self._scheduler is None:
            return
        self._shutdown.set()
        self._wake.set()
        self._scheduler.join(timeout)
        with self._workers_lock:
            workers = list(self._workers.values())
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.store.remove_service(self.service_id)
        self._scheduler = None
        self._serving = False

    def serve_forever(self) -> None:
        """Run until interrupted (Ctrl-C / SIGTERM raise out of the wait)."""
        self.start()
        try:
            while self._scheduler is not None and self._scheduler.is_alive():
                self._scheduler.join(1.0)
        finally:
            self.stop()

    def is_served(self) -> bool:
        """True when a live service (this one or another process) is taking jobs."""
        return any(self._alive(service) for service in self.store.services())

    def __enter__(self) -> LocalJobService:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def recover(self) -> list[str]:
        """Mark active jobs of dead services failed, stopping any training process they left.

        Returns the ids of the jobs marked failed.
        """
        services = {service.id: service for service in self.store.services()}
        dead = {sid for sid, service in services.items() if not self._alive(service)}
        recovered = []
        for job in self.store.jobs_in(ACTIVE_STATUSES):
            if job.owner == self.service_id and self._serving:
                continue
            if job.owner in services and job.owner not in dead:
                continue
            if job.pid and _pid_alive(job.pid) and self._is_training_process(job):
                terminate_group(None, self.cancel_grace_seconds, pid=job.pid)
            owner = services.get(job.owner)
            who = f"(pid {owner.pid} on {owner.host})" if owner else f"({job.owner})"
            reason = (
                f"the local job service {who} stopped while this job was {job.status.value}; "
                "submit the job again to rerun it (train.py resumes from its last checkpoint "
                "when given the same output directory)"
            )
            if self.store.finish_job(job.id, JobStatus.FAILED, reason):
                recovered.append(job.id)
        for service_id in dead:
            self.store.remove_service(service_id)
        return recovered

    def _alive(self, service: Any) -> bool:
        if service.id == self.service_id:
            return self._serving
        if time.time() - service.heartbeat_at > STALE_AFTER_SECONDS:
            return False
        if service.host == socket.gethostname():
            return _pid_alive(service.pid)
        return True

    @staticmethod
    def _is_training_process(job: JobRow) -> bool:
        """Guard against pid reuse: only stop a process whose command line names this job."""
        try:
            command = Path(f"/proc/{job.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return False
        return job.id.encode() in command

    def _schedule(self) -> None:
        last_heartbeat = 0.0
        while not self._shutdown.is_set():
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_SECONDS:
                self.store.heartbeat(self.service_id)
                self.recover()
                last_heartbeat = now
            self._reap_workers()
            while not self._shutdown.is_set():
                job = self.store.claim_next(self.service_id, self.max_concurrent_jobs)
                if job is None:
                    break
                self._start_worker(job)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _start_worker(self, job: JobRow) -> None:
        runner = JobRunner(
            self.store,
            self.registry,
            job,
            python=self.python,
            train_script=self.train_script,
            cancel_grace_seconds=self.cancel_grace_seconds,
            shutdown=self._shutdown,
            s3_client_factory=self.s3_client_factory,
        )

        def run() -> None:
            try:
                runner.run()
            finally:
                self._wake.set()  # a slot is free: look at the queue again

        worker = threading.Thread(target=run, name=f"finetune-job-{job.id}", daemon=True)
        with self._workers_lock:
            self._workers[job.id] = worker
        worker.start()

    def _reap_workers(self) -> None:
        with self._workers_lock:
            for job_id in [j for j, worker in self._workers.items() if not worker.is_alive()]:
                del self._workers[job_id]

    # -- results ----------------------------------------------------------------------------

    def _result(self, row: JobRow) -> FinetuningJobResult:
        spec = row.spec
        return FinetuningJobResult(
            job_arn=row.id,
            job_name=row.name,
            status=row.status,
            backend=Backend.LOCAL,
            model_id=row.model_id,
            model_name=spec.get("model_name"),
            base_model=spec.get("base_model"),
            creation_time=_time(row.created_at),
            last_modified_time=_time(row.updated_at),
            end_time=_time(row.ended_at),
            failure_reason=row.error if row.status is JobStatus.FAILED else None,
            output_uri=row.output_dir,
            training_data_uri=spec.get("train_file"),
            validation_data_uri=spec.get("validation_file"),
            hyperparameters=dict(spec.get("hyperparameters", {})),
            training_metrics={k: v for k, v in row.metrics.items() if not k.startswith("eval_")},
            validation_metrics={k: v for k, v in row.metrics.items() if k.startswith("eval_")},
            progress_percentage=row.progress,
            current_step=row.current_step,
            total_steps=row.total_steps,
            backend_status=row.status.value,
        )

"""SQLite state of the local job service: jobs, running services and registered models.

One database file per service home (``~/.finetune/local/state.db`` by default). Every process
that opens it (``finetune local serve``, ``finetune local status``, a Python program) sees the
same queue, and nothing is lost when a service stops. WAL mode lets readers proceed while a
writer holds the lock; state-changing multi-row steps (claiming the next job under the
concurrency limit) run in ``BEGIN IMMEDIATE`` transactions, so two services sharing one
database never exceed the limit or start one job twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetuning.jobs import JobStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    owner TEXT,
    pid INTEGER,
    progress REAL,
    current_step INTEGER,
    total_steps INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    output_dir TEXT NOT NULL,
    log_path TEXT NOT NULL,
    model_id TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS services (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    base_model TEXT,
    job_id TEXT,
    method TEXT,
    created_at REAL NOT NULL
);
"""

ACTIVE_STATUSES: tuple[str, ...] = (
    JobStatus.PREPROCESSING.value,
    JobStatus.RUNNING.value,
    JobStatus.STOPPING.value,
)


@dataclass
class JobRow:
    seq: int
    id: str
    name: str
    status: JobStatus
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    started_at: float | None
    ended_at: float | None
    owner: str | None
    pid: int | None
    progress: float | None
    current_step: int | None
    total_steps: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    output_dir: str = ""
    log_path: str = ""
    model_id: str | None = None
    cancel_requested: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        values["spec"] = json.loads(values["spec"])
        values["metrics"] = json.loads(values["metrics"] or "{}")
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


@dataclass
class ServiceRow:
    id: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float


class JobStore:
    """Typed access to the state database. Each call opens its own short-lived connection,
    so one store object is safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)
        finally:
            connection.close()

    @contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    # -- jobs -------------------------------------------------------------------------------

    def insert_job(
        self, job_id: str, name: str, spec: dict[str, Any], output_dir: str, log_path: str
    ) -> None:
        now = time.time()
        with self._connect(immediate=True) as db:
            db.execute(
                "INSERT INTO jobs (id, name, status, spec, created_at, updated_at, output_dir,"
                " log_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    name,
                    JobStatus.QUEUED.value,
                    json.dumps(spec),
                    now,
                    now,
                    output_dir,
                    log_path,
                ),
            )

    def jobs_named(self, name: str) -> list[JobRow]:
        """Jobs with this name, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE name = ? ORDER BY seq DESC", (name,)
            ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def get_job(self, job_id: str) -> JobRow | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRow.from_row(row) if row else None

    def list_jobs(
        self, status: JobStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        params: list[Any] = []
        if status is not None:
            query += " WHERE status = ?"
            params.append(status.value)
        query += " ORDER BY seq DESC LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        with self._connect() as db:
            return [JobRow.from_row(row) for row in db.execute(query, params)]

    def jobs_in(self, statuses: Sequence[str]) -> list[JobRow]:
        marks = ",".join("?" * len(statuses))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq", tuple(statuses)
            ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def claim_next(self, owner: str, max_active: int) -> JobRow | None:
        """Move the oldest queued job to ``preprocessing`` for ``owner``, if the number of
        active jobs (across every service sharing this database) is below ``max_active``."""
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        with self._connect(immediate=True) as db:
            active = db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", ACTIVE_STATUSES
            ).fetchone()[0]
            if active >= max_active:
                return None
            row = db.execute(
                "SELECT id FROM jobs WHERE status = ? AND cancel_requested = 0"
                " ORDER BY seq LIMIT 1",
                (JobStatus.QUEUED.value,),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute(
                "UPDATE jobs SET status = ?, owner = ?, started_at = ?, updated_at = ?"
                " WHERE id = ?",
                (JobStatus.PREPROCESSING.value, owner, now, now, row["id"]),
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return JobRow.from_row(claimed)

    def update_job(self, job_id: str, **values: Any) -> None:
        if "status" in values and isinstance(values["status"], JobStatus):
            values["status"] = values["status"].value
        if "metrics" in values:
            values["metrics"] = json.dumps(values["metrics"])
        values["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._connect(immediate=True) as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*values.values(), job_id))

    def finish_job(
        self, job_id: str, status: JobStatus, error: str | None = None, **values: Any
    ) -> bool:
        """Set a terminal status unless the job already has one; True if this call set it."""
        terminal = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)
        now = time.time()
        assignments = {"status": status.value, "error": error, "ended_at": now, "updated_at": now}
        if "metrics" in values:
            values["metrics"] = json.dumps(values["metrics"])
        assignments.update(values)
        columns = ", ".join(f"{name} = ?" for name in assignments)
        with self._connect(immediate=True) as db:
            cursor = db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? AND status NOT IN (?, ?, ?)",
                (*assignments.values(), job_id, *terminal),
            )
            return cursor.rowcount == 1

    def request_cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued job at once; flag an active one for its service to stop.

        Returns the job's status before the call, or None if there is no such job.
        """
        now = time.time()
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            status = JobStatus(row["status"])
            if status is JobStatus.QUEUED:
                db.execute(
                    "UPDATE jobs SET status = ?, cancel_requested = 1, error = ?, ended_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (JobStatus.CANCELLED.value, "cancelled while queued", now, now, job_id),
                )
            if status.is_active:
                db.execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            return status

    # -- services ---------------------------------------------------------------------------

    def register_service(self, service_id: str, pid: int, host: str) -> None:
        now = time.time()
        with self._connect(immediate=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO services (id, pid, host, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (service_id, pid, host, now, now),
            )

    def heartbeat(self, service_id: str) -> None:
        with self._connect(immediate=True) as db:
            db.execute(
                "UPDATE services SET heartbeat_at = ? WHERE id = ?", (time.time(), service_id)
            )

    def remove_service(self, service_id: str) -> None:
        with self._connect(immediate=True) as db:
            db.execute("DELETE FROM services WHERE id = ?", (service_id,))

    def services(self) -> list[ServiceRow]:
        with self._connect() as db:
            return [ServiceRow(**dict(row)) for row in db.execute("SELECT * FROM services")]

    # -- models -----------------------------------------------------------------------------

    def insert_model(
        self,
        model_id: str,
        path: str,
        base_model: str | None,
        job_id: str | None,
        method: str | None,
    ) -> None:
        with self._connect(immediate=True) as db:
            db.execute(
                "INSERT INTO models (model_id, path, base_model, job_id, method, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (model_id, path, base_model, job_id, method, time.time()),
            )

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM models WHERE model_id = ?", (model_id,)).fetchone()
        return dict(row) if row else None

    def list_models(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [dict(row) for row in db.execute("SELECT * FROM models ORDER BY created_at")]

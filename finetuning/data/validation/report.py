"""The validation report: findings (``Problem``), their counters, and the log that keeps them.

``ProblemLog`` is what every checker reports through: it counts each finding by severity
and code and keeps the first ``max_problems`` errors and warnings, in file order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class DatasetRole(StrEnum):
    """Which side of a job the file feeds; limits differ between the two."""

    TRAIN = "train"
    VALIDATION = "validation"


@dataclass(frozen=True)
class Problem:
    """One finding. ``line`` is 1-based, or None for a finding about the whole file."""

    severity: Severity
    code: str
    message: str
    line: int | None = None

    def format(self, path: str) -> str:
        """Compiler style: ``PATH:LINE: error: message``."""
        where = f"{path}:{self.line}" if self.line is not None else path
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class ValidationReport:
    """What ``validate_path`` found.

    ``problems`` holds, in file order, the first ``max_problems`` errors and the first
    ``max_problems`` warnings; the counters cover every finding.
    """

    path: str
    model_id: str
    family: str
    role: DatasetRole
    format: str | None = None
    records: int = 0
    errors: int = 0
    warnings: int = 0
    tokens: int = 0
    tokens_exact: bool = False
    characters: int = 0
    images: int = 0
    videos: int = 0
    bytes: int = 0
    max_record_tokens: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_kept: int = 0
    counts_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = [
            {"line": p.line, "severity": str(p.severity), "code": p.code, "message": p.message}
            for p in self.problems
        ]
        data["role"] = str(self.role)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def summary(self) -> str:
        kind = "tokens" if self.tokens_exact else "tokens (estimated)"
        return (
            f"{self.path}: {_count(self.records, 'record')}, {_count(self.errors, 'error')}, "
            f"{_count(self.warnings, 'warning')}, {self.tokens:,} {kind}; "
            f"format {self.format or 'unknown'}, rules of {self.family} ({self.model_id})"
        )


class ProblemLog:
    """Counts every finding into ``report`` and keeps the first ``max_problems`` of each
    severity (``None``: all)."""

    def __init__(self, report: ValidationReport, max_problems: int | None) -> None:
        self.report = report
        self.max_problems = max_problems
        self.kept = {Severity.ERROR: 0, Severity.WARNING: 0}

    def problem(self, severity: Severity, code: str, message: str, line: int | None) -> None:
        report = self.report
        if severity is Severity.ERROR:
            report.errors += 1
        else:
            report.warnings += 1
        report.counts_by_code[code] = report.counts_by_code.get(code, 0) + 1
        kept = self.kept[severity]
        if self.max_problems is None or kept < self.max_problems:
            self.kept[severity] = kept + 1
            report.problems.append(Problem(severity, code, message, line))
        else:
            report.problems_not_kept += 1

    def error(self, code: str, message: str, line: int | None) -> None:
        self.problem(Severity.ERROR, code, message, line)

    def warning(self, code: str, message: str, line: int | None) -> None:
        self.problem(Severity.WARNING, code, message, line)


class RecordProblem(Exception):
    """Raised inside the per-record checks to stop at the first error of a record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"

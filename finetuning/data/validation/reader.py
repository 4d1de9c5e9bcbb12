"""Reading records: lines to JSON objects, and JSON objects to the family's format.

``LineReader`` turns a stream of JSONL lines into records (UTF-8, one JSON object a line,
blank lines and exact duplicates warned about) and hands each to a record check.
``RecordSchema`` detects the record's format, converts it to canonical messages and checks
its keys against what the family accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages
from finetuning.data.models import ModelFamily
from finetuning.data.sources import MAX_LINE_BYTES, OVERSIZED_LINE
from finetuning.data.validation.report import ProblemLog, RecordProblem

_KEYS_BY_FORMAT: dict[DataFormat, frozenset[str]] = {
    DataFormat.PROMPT_COMPLETION: frozenset({"prompt", "completion"}),
    DataFormat.MESSAGES: frozenset({"system", "messages"}),
    DataFormat.BEDROCK_CONVERSATION: frozenset({"schemaVersion", "system", "messages"}),
    DataFormat.ALPACA: frozenset({"instruction", "input", "output", "system"}),
}
_MESSAGE_KEYS = frozenset({"role", "content"})


class LineReader:
    """Decodes JSONL lines into records and passes each to ``check(record, number)``.

    Exact duplicate detection keeps one 64-bit hash and a line number per distinct record;
    past ``max_tracked_records`` distinct records it stops tracking new ones so memory stays
    bounded.
    """

    def __init__(self, log: ProblemLog, *, max_tracked_records: int) -> None:
        self.log = log
        self.max_tracked_records = max_tracked_records
        self.seen: dict[int, int] = {}
        self.tracking_stopped = False
        self.decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def feed(self, lines: Iterable[bytes], check: Callable[[dict, int], None]) -> None:
        log = self.log
        report = log.report
        decode = self.decoder.decode
        seen = self.seen
        limit = self.max_tracked_records
        for number, raw in enumerate(lines, start=1):
            if raw is OVERSIZED_LINE:
                log.error(
                    "line-too-long",
                    f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB, more than any "
                    "supported model accepts in one record; not read",
                    number,
                )
                continue
            line = raw.rstrip(b"\r\n")
            if not line or line.isspace():
                log.warning("blank-line", "blank line (skipped; it is not a record)", number)
                continue
            if number == 1 and line[:2] in (b"\xff\xfe", b"\xfe\xff"):
                log.error(
                    "encoding",
                    "the file is UTF-16; JSONL for training must be UTF-8 (re-save it as "
                    "UTF-8 and validate again)",
                    number,
                )
                return
            try:
                record = decode(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                log.error(
                    "encoding",
                    f"not valid UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1}",
                    number,
                )
                continue
            except ValueError as exc:
                log.error("invalid-json", _json_error_message(exc, line, number), number)
                continue
            if type(record) is not dict:
                log.error(
                    "not-object",
                    f"expected one JSON object per line, found {_json_type(record)}",
                    number,
                )
                continue
            report.records += 1
            key = hash(line)
            first = seen.get(key)
            if first is not None:
                log.warning(
                    "duplicate", f"duplicate of line {first} (the same record twice)", number
                )
            elif not self.tracking_stopped:
                if len(seen) < limit:
                    seen[key] = number
                else:
                    self.tracking_stopped = True
                    log.warning(
                        "duplicate-check-limited",
                        f"duplicate detection covers the first {limit:,} "
                        "distinct records only (to bound memory)",
                        number,
                    )
            try:
                check(record, number)
            except RecordProblem as exc:
                log.error(exc.code, exc.message, number)


class RecordSchema:
    """The format of the file's records and each record's canonical messages.

    The format is the family's only one, or else detected from the first record; a later
    record in another format the family accepts is read with a warning.
    """

    def __init__(self, family: ModelFamily, log: ProblemLog) -> None:
        self.family = family
        self.log = log
        self.format: DataFormat | None = family.default_format if len(family.formats) == 1 else None

    def read(self, record: dict, number: int) -> tuple[DataFormat, list[dict]]:
        """The record's format and canonical messages; raises ``RecordProblem``."""
        fmt = self.format
        if fmt is None:
            fmt = self.format = _detect(record)
        try:
            messages = to_messages(record, fmt)
        except FormatError as exc:
            messages, fmt = self.retry_other_format(record, fmt, exc, number)
        self.check_keys(record, fmt, number)
        if fmt is DataFormat.BEDROCK_CONVERSATION:
            version = record.get("schemaVersion")
            if version is not None and not isinstance(version, str):
                raise RecordProblem(
                    "schema", f"schemaVersion: expected a string, found {_json_type(version)}"
                )
        return fmt, messages

    def retry_other_format(
        self, record: dict, fmt: DataFormat, exc: FormatError, number: int
    ) -> tuple[list[dict], DataFormat]:
        """Explain a record that is in another format; accept it where mixing is allowed."""
        try:
            other = detect_format(record)
        except FormatError:
            other = None
        if other is None or other is fmt:
            raise RecordProblem("schema", f"{exc} (format {fmt})") from None
        if other not in self.family.formats:
            raise RecordProblem(
                "wrong-format",
                f"this record is in {other} format, but {self.family.display_name} is trained "
                f"on {fmt}; convert the file with `finetune data convert --to {_cli_name(fmt)}`",
            ) from None
        try:
            messages = to_messages(record, other)
        except FormatError as inner:
            raise RecordProblem("schema", f"{inner} (format {other})") from None
        self.log.warning(
            "mixed-formats",
            f"this record is in {other} format but the file started in {fmt}; train.py reads "
            "each record on its own, but one format per file is easier to review",
            number,
        )
        return messages, other

    def check_keys(self, record: dict, fmt: DataFormat, number: int) -> None:
        if not self.family.is_bedrock:
            return
        if self.family.extra_keys_are_errors and fmt is DataFormat.MESSAGES:
            for index, message in enumerate(record["messages"]):
                extra = message.keys() - _MESSAGE_KEYS
                if extra:
                    names = ", ".join(sorted(f'"{key}"' for key in extra))
                    raise RecordProblem(
                        "unknown-key",
                        f"messages[{index}]: unexpected key {names}; each message may only "
                        f'have "role" and "content"',
                    )
        extra = record.keys() - _KEYS_BY_FORMAT[fmt]
        if not extra:
            return
        names = ", ".join(sorted(f'"{key}"' for key in extra))
        expected = ", ".join(sorted(f'"{key}"' for key in _KEYS_BY_FORMAT[fmt]))
        if self.family.extra_keys_are_errors:
            raise RecordProblem(
                "unknown-key",
                f"unexpected key {names}; {self.family.display_name} records may only have "
                f"{expected}",
            )
        self.log.warning(
            "unknown-key", f"unexpected key {names} (Bedrock reads only {expected})", number
        )


def _json_type(value: Any) -> str:
    """How a JSON value's type reads in a message: ``an array``, ``a string``, ..."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object"


def _detect(record: dict) -> DataFormat:
    try:
        return detect_format(record)
    except FormatError as exc:
        raise RecordProblem("unknown-format", str(exc)) from None


def _cli_name(fmt: DataFormat) -> str:
    return "bedrock-conversation" if fmt is DataFormat.BEDROCK_CONVERSATION else str(fmt)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (JSON has no NaN or Infinity)")


def _json_error_message(exc: ValueError, line: bytes, number: int) -> str:
    if isinstance(exc, json.JSONDecodeError):
        message = f"not valid JSON: {exc.msg} at column {exc.colno}"
        if number == 1 and line.strip() in (b"[", b"{"):
            message += (
                "; the file looks like pretty-printed JSON or a JSON array, but JSONL needs "
                "one complete object per line"
            )
        return message
    return f"not valid JSON: {exc}"

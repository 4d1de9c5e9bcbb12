"""Streaming validation of JSONL training data against a model family's rules.

``validate_path`` reads a local file or an S3 object once, line by line, in constant memory,
and returns a ``ValidationReport``: record, error, warning and token counts plus the
problems found, each naming its line, field, what was expected and what was found.

Checks, in the order they run on each line: the line parses as one JSON object (UTF-8);
it has the schema of the family's format; roles start with user, alternate, and end with
assistant (system only first); no turn is empty; no reserved keyword of the family appears;
images and videos have supported formats, counts and well-formed S3 locations in the right
bucket, and the dataset does not mix images and videos where the family forbids it; the
record is within the family's token/character limits. Across the file: duplicates
(warning), blank lines (warning), record counts and file size against the family's limits.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages
from finetuning.data.models import (
    CAUTIOUS_CHARS_PER_TOKEN,
    ModelFamily,
    resolve_model,
)
from finetuning.data.sources import (
    MAX_LINE_BYTES,
    OVERSIZED_LINE,
    S3Uri,
    S3UriError,
    is_s3_uri,
    open_lines,
    source_size,
)

__all__ = [
    "DatasetRole",
    "Problem",
    "Severity",
    "ValidationReport",
    "validate_job_files",
    "validate_lines",
    "validate_path",
]

DEFAULT_MAX_PROBLEMS = 1000
# Exact duplicate detection keeps one 64-bit hash and a line number per distinct record,
# about 100 bytes each; past this many records the check stops tracking new ones so memory
# stays bounded (every Bedrock family's record limit is far below it).
MAX_TRACKED_RECORDS = 500_000

_KEYS_BY_FORMAT: dict[DataFormat, frozenset[str]] = {
    DataFormat.PROMPT_COMPLETION: frozenset({"prompt", "completion"}),
    DataFormat.MESSAGES: frozenset({"system", "messages"}),
    DataFormat.BEDROCK_CONVERSATION: frozenset({"schemaVersion", "system", "messages"}),
    DataFormat.ALPACA: frozenset({"instruction", "input", "output", "system"}),
}
_MESSAGE_KEYS = frozenset({"role", "content"})
# AWS's reference Nova validator: object keys of letters, digits, "_", "-", "/", ".".
_STRICT_KEY = re.compile(r"^[\w\-/.]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")


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


def validate_path(
    path: str | os.PathLike[str],
    model_id: str,
    *,
    role: DatasetRole | str = DatasetRole.TRAIN,
    dataset_uri: str | None = None,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
    token_counter: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    s3_client: Any = None,
    customization: str | None = None,
) -> ValidationReport:
    """Validate one JSONL file (local path or ``s3://bucket/key``) for ``model_id``.

    Args:
        path: the file to read; read once, streaming, whatever its size.
        model_id: Bedrock model id or ARN, or a Hugging Face id / path for SageMaker;
            picks the format and limits (see ``finetuning.data.models``).
        role: ``train`` or ``validation``; record-count and file-size limits differ.
        dataset_uri: where a local file will be uploaded (``s3://bucket/key``), so that
            media can be checked against the dataset's bucket before the upload.
        max_problems: how many errors, and how many warnings, the report keeps (all are
            counted).
        token_counter: exact token counting (e.g. a Hugging Face tokenizer) instead of the
            characters-per-token estimate.
        max_tokens: for open models, warn about records longer than this (train.py's
            ``max_seq_length``); Bedrock families use their documented limits.
        s3_client: a boto3 S3 client to use for ``s3://`` paths.
        customization: ``REINFORCEMENT_FINE_TUNING`` or ``DISTILLATION`` checks the records
            of that customization type (``finetuning.data.customization_records``) instead
            of supervised records.

    Raises:
        UnknownModelError: ``model_id`` is a Bedrock model without dataset rules.
        OSError / botocore errors: the file cannot be read.
    """
    family = resolve_model(model_id)
    text_path = str(path)
    bucket = None
    for candidate in (dataset_uri, text_path if is_s3_uri(text_path) else None):
        if candidate:
            bucket = S3Uri.parse(candidate).bucket
            break
    validator = _Validator(
        family=family,
        model_id=model_id,
        path=text_path,
        role=DatasetRole(role),
        dataset_bucket=bucket,
        max_problems=max_problems,
        token_counter=token_counter,
        max_tokens=max_tokens,
    )
    with open_lines(path, client=s3_client) as lines:
        if customization in _CUSTOMIZATION_TYPES:
            return _finish_customization(validator, lines, customization, path, s3_client)
        validator.feed(lines)
    size = source_size(path, client=s3_client)
    return validator.finish(file_bytes=size, file_name=dataset_uri or text_path)


_CUSTOMIZATION_FORMATS = {
    "REINFORCEMENT_FINE_TUNING": "rft-prompts",
    "DISTILLATION": "distillation-prompts",
}
_CUSTOMIZATION_TYPES = tuple(_CUSTOMIZATION_FORMATS)


def _finish_customization(
    validator: _Validator, lines: Iterable[bytes], customization: str, path: Any, s3: Any
) -> ValidationReport:
    from finetuning.data.customization_records import feed_customization_records

    validator.report.format = _CUSTOMIZATION_FORMATS[customization]
    feed_customization_records(validator, lines, customization, validator.family)
    report = validator.report
    report.bytes = source_size(path, client=s3)
    if report.records == 0:
        validator.error("no-records", "no records: the file has no JSON object lines", None)
    return report


def validate_job_files(
    train_path: str | os.PathLike[str],
    model_id: str,
    validation_path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> list[ValidationReport]:
    """Validate a job's training file and, when given, its validation file.

    Each file is checked with ``validate_path`` under its role; limits that apply to both
    files together (training plus validation records, for Claude 3 Haiku and Llama) are
    checked too, and reported on the validation file. ``options`` are passed on to
    ``validate_path`` (``dataset_uri`` applies to the training file only).
    """
    train = validate_path(train_path, model_id, role=DatasetRole.TRAIN, **options)
    if validation_path is None:
        return [train]
    options.pop("dataset_uri", None)
    validation = validate_path(validation_path, model_id, role=DatasetRole.VALIDATION, **options)
    family = resolve_model(model_id)
    limit = family.max_total_records
    total = train.records + validation.records
    if limit is not None and total > limit:
        validation.errors += 1
        validation.counts_by_code["record-count"] = (
            validation.counts_by_code.get("record-count", 0) + 1
        )
        validation.problems.append(
            Problem(
                Severity.ERROR,
                "record-count",
                f"{train.records:,} training + {validation.records:,} validation records = "
                f"{total:,}; {family.display_name} accepts at most {limit:,} together",
            )
        )
    return [train, validation]


def validate_lines(
    lines: Iterable[bytes],
    model_id: str,
    *,
    path: str = "<lines>",
    role: DatasetRole | str = DatasetRole.TRAIN,
    dataset_uri: str | None = None,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
    token_counter: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    customization: str | None = None,
) -> ValidationReport:
    """Validate JSONL lines already in hand (each with or without its line ending);
    ``customization`` as for :func:`validate_path`."""
    validator = _Validator(
        family=resolve_model(model_id),
        model_id=model_id,
        path=path,
        role=DatasetRole(role),
        dataset_bucket=S3Uri.parse(dataset_uri).bucket if dataset_uri else None,
        max_problems=max_problems,
        token_counter=token_counter,
        max_tokens=max_tokens,
    )
    size = 0

    def measure(items: Iterable[bytes]) -> Iterable[bytes]:
        nonlocal size
        for item in items:
            size += len(item)
            yield item

    if customization in _CUSTOMIZATION_TYPES:
        from finetuning.data.customization_records import feed_customization_records

        feed_customization_records(validator, measure(lines), customization, validator.family)
        validator.report.format = _CUSTOMIZATION_FORMATS[customization]
        validator.report.bytes = size
        if validator.report.records == 0:
            validator.error("no-records", "no records: the file has no JSON object lines", None)
        return validator.report
    validator.feed(measure(lines))
    return validator.finish(file_bytes=size, file_name=dataset_uri)


class _RecordProblem(Exception):
    """Raised inside the per-record checks to stop at the first error of a record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Validator:
    def __init__(
        self,
        *,
        family: ModelFamily,
        model_id: str,
        path: str,
        role: DatasetRole,
        dataset_bucket: str | None,
        max_problems: int | None,
        token_counter: Callable[[str], int] | None,
        max_tokens: int | None,
    ) -> None:
        self.family = family
        self.media = family.media
        self.role = role
        self.dataset_bucket = dataset_bucket
        self.max_problems = max_problems
        self.token_counter = token_counter
        self.max_tokens = max_tokens if not family.is_bedrock else None
        self.report = ValidationReport(
            path=path,
            model_id=model_id,
            family=family.name,
            role=role,
            tokens_exact=token_counter is not None,
        )
        self.format: DataFormat | None = family.default_format if len(family.formats) == 1 else None
        self.scan_reserved = (
            _KeywordScanner(family.reserved_keywords).search if family.reserved_keywords else None
        )
        self.length_limits = [
            (limit, label)
            for limit, label in (
                (family.max_total_tokens, "input and output"),
                (family.max_input_tokens, "input"),
                (family.max_output_tokens, "output"),
            )
            if limit is not None
        ]
        self.seen: dict[int, int] = {}
        self.tracking_stopped = False
        self.first_image_line: int | None = None
        self.first_video_line: int | None = None
        self.mixed_media_reported = False
        self.media_buckets: dict[str, int] = {}
        self.decoder = json.JSONDecoder(parse_constant=_reject_constant)
        self.kept = {Severity.ERROR: 0, Severity.WARNING: 0}

    # -- problems --------------------------------------------------------------------

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

    # -- the stream ------------------------------------------------------------------

    def feed(self, lines: Iterable[bytes]) -> None:
        decode = self.decoder.decode
        check = self.check_record
        seen = self.seen
        for number, raw in enumerate(lines, start=1):
            if raw is OVERSIZED_LINE:
                self.error(
                    "line-too-long",
                    f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB, more than any "
                    "supported model accepts in one record; not read",
                    number,
                )
                continue
            line = raw.rstrip(b"\r\n")
            if not line or line.isspace():
                self.warning("blank-line", "blank line (skipped; it is not a record)", number)
                continue
            if number == 1 and line[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self.error(
                    "encoding",
                    "the file is UTF-16; JSONL for training must be UTF-8 (re-save it as "
                    "UTF-8 and validate again)",
                    number,
                )
                return
            try:
                record = decode(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                self.error(
                    "encoding",
                    f"not valid UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1}",
                    number,
                )
                continue
            except ValueError as exc:
                self.error("invalid-json", _json_error_message(exc, line, number), number)
                continue
            if type(record) is not dict:
                self.error(
                    "not-object",
                    f"expected one JSON object per line, found {_json_type(record)}",
                    number,
                )
                continue
            self.report.records += 1
            key = hash(line)
            first = seen.get(key)
            if first is not None:
                self.warning(
                    "duplicate", f"duplicate of line {first} (the same record twice)", number
                )
            elif not self.tracking_stopped:
                if len(seen) < MAX_TRACKED_RECORDS:
                    seen[key] = number
                else:
                    self.tracking_stopped = True
                    self.warning(
                        "duplicate-check-limited",
                        f"duplicate detection covers the first {MAX_TRACKED_RECORDS:,} "
                        "distinct records only (to bound memory)",
                        number,
                    )
            try:
                check(record, number)
            except _RecordProblem as exc:
                self.error(exc.code, exc.message, number)

    # -- one record ------------------------------------------------------------------

    def check_record(self, record: dict, number: int) -> None:
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
                raise _RecordProblem(
                    "schema", f"schemaVersion: expected a string, found {_json_type(version)}"
                )
        self.check_messages(record, fmt, messages, number)

    def retry_other_format(
        self, record: dict, fmt: DataFormat, exc: FormatError, number: int
    ) -> tuple[list[dict], DataFormat]:
        """Explain a record that is in another format; accept it where mixing is allowed."""
        try:
            other = detect_format(record)
        except FormatError:
            other = None
        if other is None or other is fmt:
            raise _RecordProblem("schema", f"{exc} (format {fmt})") from None
        if other not in self.family.formats:
            raise _RecordProblem(
                "wrong-format",
                f"this record is in {other} format, but {self.family.display_name} is trained "
                f"on {fmt}; convert the file with `finetune data convert --to {_cli_name(fmt)}`",
            ) from None
        try:
            messages = to_messages(record, other)
        except FormatError as inner:
            raise _RecordProblem("schema", f"{inner} (format {other})") from None
        self.warning(
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
                    raise _RecordProblem(
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
            raise _RecordProblem(
                "unknown-key",
                f"unexpected key {names}; {self.family.display_name} records may only have "
                f"{expected}",
            )
        self.warning(
            "unknown-key", f"unexpected key {names} (Bedrock reads only {expected})", number
        )

    def check_messages(
        self, record: dict, fmt: DataFormat, messages: list[dict], number: int
    ) -> None:
        # Hot path: runs once per record; the field namer and messages are built only when
        # a problem is found.
        count = len(messages)
        start = 1 if count and messages[0]["role"] == "system" else 0
        if count - start < 2:
            turns = count - start
            raise _RecordProblem(
                "roles",
                f"expected at least a user turn and an assistant turn, found {turns} "
                f"turn{'s' if turns != 1 else ''}",
            )
        texts: list[str] = []
        total_chars = output_chars = images = videos = 0
        expected = "user"
        for index in range(count):
            message = messages[index]
            role = message["role"]
            if index >= start:
                if role != expected:
                    self.raise_role_problem(record, fmt, messages, index, expected)
                expected = "assistant" if expected == "user" else "user"
            content = message["content"]
            if type(content) is str:
                text = content
                has_media = False
            else:
                text = "\n".join(part["text"] for part in content if part["type"] == "text")
                media = [part for part in content if part["type"] != "text"]
                has_media = bool(media)
                if has_media:
                    where = _FieldNamer(record, fmt, count).content(index)
                    if role != "user" and self.family.is_bedrock:
                        raise _RecordProblem(
                            "media",
                            f"{where}: images and videos may only appear in user turns, found "
                            f"one in a {role} turn",
                        )
                    for part in media:
                        if part["type"] == "image":
                            images += 1
                        else:
                            videos += 1
                        self.check_media(part, where, number)
            if not has_media and (not text or text.isspace()):
                where = _FieldNamer(record, fmt, count).content(index)
                if role == "system":
                    self.warning("empty-text", f"{where}: the system prompt is blank", number)
                else:
                    raise _RecordProblem(
                        "empty-text",
                        f"{where}: expected non-empty text in the {role} turn, found "
                        f"{'an empty string' if not text else 'only whitespace'}",
                    )
            size = len(text)
            total_chars += size
            if role == "assistant":
                output_chars += size
            texts.append(text)
        if messages[-1]["role"] != "assistant":
            where = _FieldNamer(record, fmt, count).role(count - 1)
            raise _RecordProblem(
                "roles",
                f"{where}: expected the last turn to be 'assistant' (the response to learn), "
                f"found '{messages[-1]['role']}'",
            )
        scan = self.scan_reserved
        # One scan over all turns joined (NUL cannot occur inside a keyword); the turn is
        # looked up only when a keyword is found.
        if scan is not None and scan("\x00".join(texts)) is not None:
            for index, text in enumerate(texts):
                hit = scan(text)
                if hit is not None:
                    where = _FieldNamer(record, fmt, count).content(index)
                    raise _RecordProblem(
                        "reserved-keyword",
                        f"{where}: '{hit}' is a reserved keyword for "
                        f"{self.family.display_name} and fails the training job; reword it",
                    )
        if images or videos:
            self.check_media_counts(images, videos, number)
        self.check_length(total_chars, output_chars, texts, messages, number)

    def raise_role_problem(
        self, record: dict, fmt: DataFormat, messages: list[dict], index: int, expected: str
    ) -> None:
        where = _FieldNamer(record, fmt, len(messages)).role(index)
        role = messages[index]["role"]
        if role == "system":
            raise _RecordProblem("roles", f"{where}: a system message may only come first")
        start = 1 if messages[0]["role"] == "system" else 0
        previous = "the start" if index == start else f"a {messages[index - 1]['role']} turn"
        raise _RecordProblem(
            "roles",
            f"{where}: expected '{expected}' after {previous} (turns start with user and "
            f"alternate), found '{role}'",
        )

    def check_media(self, part: dict, where: str, number: int) -> None:
        rules = self.media
        kind = part["type"]
        allowed = rules.image_formats if kind == "image" else rules.video_formats
        if not allowed:
            supported = sorted(rules.image_formats | rules.video_formats)
            raise _RecordProblem(
                "media",
                f"{where}: {self.family.display_name} does not take {kind}s in training data "
                f"(supported media formats: {', '.join(supported) or 'none, text only'})",
            )
        fmt = part["format"]
        missing_format = fmt is None and self.family.is_bedrock
        if missing_format or (fmt is not None and fmt not in allowed):
            raise _RecordProblem(
                "media",
                f"{where}: expected a {kind} format in {sorted(allowed)}, found {fmt!r}",
            )
        source = part["source"]
        location = source.get("s3Location")
        if location is None:
            if rules.s3_only:
                found = ", ".join(sorted(source)) or "nothing"
                raise _RecordProblem(
                    "media",
                    f"{where}: expected the {kind} as source.s3Location.uri (an S3 object), "
                    f"found {found}",
                )
            return
        if not isinstance(location, Mapping) or not isinstance(location.get("uri"), str):
            raise _RecordProblem(
                "s3-uri", f'{where}: expected source.s3Location to hold a "uri" string'
            )
        try:
            uri = S3Uri.parse(location["uri"])
        except S3UriError as exc:
            raise _RecordProblem("s3-uri", f"{where}: {exc}") from None
        if rules.strict_key_characters and not _STRICT_KEY.match(uri.key):
            raise _RecordProblem(
                "s3-uri",
                f"{where}: object key {uri.key!r} has characters other than letters, digits, "
                "'_', '-', '/' and '.', which the training job rejects",
            )
        owner = location.get("bucketOwner")
        if owner is not None and not (isinstance(owner, str) and _ACCOUNT_ID.match(owner)):
            raise _RecordProblem(
                "s3-uri",
                f"{where}: expected bucketOwner to be a 12-digit AWS account id, found {owner!r}",
            )
        if not rules.same_bucket_as_dataset:
            return
        if self.dataset_bucket is not None:
            if uri.bucket != self.dataset_bucket:
                raise _RecordProblem(
                    "bucket",
                    f"{where}: {uri} is in bucket {uri.bucket!r}, but "
                    f"{self.family.display_name} needs images and videos in the dataset's "
                    f"bucket {self.dataset_bucket!r}",
                )
            return
        if uri.bucket not in self.media_buckets:
            if self.media_buckets:
                first_bucket, first_line = next(iter(self.media_buckets.items()))
                self.media_buckets[uri.bucket] = number
                raise _RecordProblem(
                    "bucket",
                    f"{where}: {uri} is in bucket {uri.bucket!r} but line {first_line} uses "
                    f"{first_bucket!r}; {self.family.display_name} needs all media in the "
                    "dataset's own bucket",
                )
            self.media_buckets[uri.bucket] = number

    def check_media_counts(self, images: int, videos: int, number: int) -> None:
        if not images and not videos:
            return
        rules = self.media
        report = self.report
        report.images += images
        report.videos += videos
        if rules.max_images_per_record is not None and images > rules.max_images_per_record:
            raise _RecordProblem(
                "media",
                f"expected at most {rules.max_images_per_record} images in one record, "
                f"found {images}",
            )
        if rules.max_videos_per_record is not None and videos > rules.max_videos_per_record:
            raise _RecordProblem(
                "media",
                f"expected at most {rules.max_videos_per_record} video in one record, "
                f"found {videos}",
            )
        if images and self.first_image_line is None:
            self.first_image_line = number
        if videos and self.first_video_line is None:
            self.first_video_line = number
        if (
            rules.no_mixed_media
            and self.first_image_line is not None
            and self.first_video_line is not None
            and not self.mixed_media_reported
        ):
            self.mixed_media_reported = True
            raise _RecordProblem(
                "media-mix",
                f"the dataset mixes images (first on line {self.first_image_line}) and videos "
                f"(first on line {self.first_video_line}); {self.family.display_name} needs "
                "text with images or text with videos, not both",
            )

    def check_length(
        self,
        total_chars: int,
        output_chars: int,
        texts: list[str],
        messages: list[dict],
        number: int,
    ) -> None:
        family = self.family
        report = self.report
        report.characters += total_chars
        if self.token_counter is not None:
            counts = [self.token_counter(text) for text in texts]
            total = sum(counts)
            output = sum(
                count
                for count, message in zip(counts, messages, strict=True)
                if message["role"] == "assistant"
            )
        else:
            per_token = family.chars_per_token
            total = -(-total_chars // per_token)
            output = -(-output_chars // per_token)
        report.tokens += total
        if total > report.max_record_tokens:
            report.max_record_tokens = total
        for limit, label in self.length_limits:
            if label == "input and output":
                chars, tokens = total_chars, total
            elif label == "output":
                chars, tokens = output_chars, output
            else:
                chars, tokens = total_chars - output_chars, total - output
            if self.token_counter is not None:
                if tokens > limit:
                    raise _RecordProblem(
                        "too-long",
                        f"{tokens:,} {label} tokens, more than the {limit:,} that "
                        f"{family.display_name} accepts",
                    )
                continue
            quota = limit * family.chars_per_token
            if chars > quota:
                raise _RecordProblem(
                    "too-long",
                    f"{chars:,} characters of {label} text, more than the {quota:,} that "
                    f"{family.display_name} accepts ({limit:,} tokens x "
                    f"{family.chars_per_token} characters per token, AWS's quota)",
                )
            if chars > limit * CAUTIOUS_CHARS_PER_TOKEN:
                self.warning(
                    "may-be-too-long",
                    f"{chars:,} characters of {label} text may exceed {family.display_name}'s "
                    f"{limit:,}-token limit (about {-(-chars // CAUTIOUS_CHARS_PER_TOKEN):,} "
                    f"tokens at {CAUTIOUS_CHARS_PER_TOKEN} characters per token); shorten it "
                    "or count exactly with --tokenizer",
                    number,
                )
        if self.max_tokens is not None and total > self.max_tokens:
            self.warning(
                "truncated",
                f"about {total:,} tokens, more than --max-tokens {self.max_tokens:,}; "
                "train.py truncates it",
                number,
            )

    # -- the whole file ----------------------------------------------------------------

    def finish(self, *, file_bytes: int, file_name: str | None) -> ValidationReport:
        family = self.family
        report = self.report
        report.bytes = file_bytes
        report.format = str(self.format) if self.format is not None else None
        records = report.records
        if records == 0:
            self.error("no-records", "no records: the file has no JSON object lines", None)
        if self.role is DatasetRole.TRAIN:
            if family.min_records is not None and 0 < records < family.min_records:
                self.error(
                    "record-count",
                    f"{records:,} training records; {family.display_name} needs at least "
                    f"{family.min_records:,}",
                    None,
                )
            limits = (
                (family.max_train_records, "training records"),
                (family.max_total_records, "training and validation records together"),
            )
            byte_limit = family.max_train_file_bytes
        else:
            limits = (
                (family.max_validation_records, "validation records"),
                (family.max_total_records, "training and validation records together"),
            )
            byte_limit = family.max_validation_file_bytes
        for limit, label in limits:
            if limit is not None and records > limit:
                self.error(
                    "record-count",
                    f"{records:,} records; {family.display_name} accepts at most {limit:,} {label}",
                    None,
                )
                break
        if byte_limit is not None and file_bytes > byte_limit:
            self.error(
                "file-size",
                f"{_human_bytes(file_bytes)}; {family.display_name} accepts at most "
                f"{_human_bytes(byte_limit)} for a {self.role} file",
                None,
            )
        if family.strict_file_names and file_name:
            name = (
                S3Uri.parse(file_name).key if is_s3_uri(file_name) else os.path.basename(file_name)
            )
            if not _STRICT_KEY.match(name):
                self.error(
                    "file-name",
                    f"file name {name!r} has characters other than letters, digits, '_', "
                    f"'-', '/' and '.'; {family.display_name} rejects it",
                    None,
                )
        return report


class _KeywordScanner:
    """Tells whether a text contains any of a set of literal keywords, and which.

    A regex alternation tries every keyword at every position of every text; here each
    keyword is anchored on its last character, found with ``str.find`` (memchr speed), and
    only where that character occurs is one ``str.endswith(tuple)`` call made. Validation
    runs this over every record, so it has to cost little more than one scan of the text.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        by_last: dict[str, list[str]] = {}
        for keyword in keywords:
            by_last.setdefault(keyword[-1], []).append(keyword)
        self.groups = [(last, tuple(words)) for last, words in by_last.items()]

    def search(self, text: str) -> str | None:
        find = text.find
        endswith = text.endswith
        for last, words in self.groups:
            position = find(last)
            while position >= 0:
                end = position + 1
                if endswith(words, 0, end):
                    return next(word for word in words if endswith(word, 0, end))
                position = find(last, end)
        return None


class _FieldNamer:
    """Maps a canonical message index back to the record field it came from."""

    def __init__(self, record: dict, fmt: DataFormat, canonical_count: int) -> None:
        self.fmt = fmt
        raw = record.get("messages")
        # A top-level system prompt becomes canonical message 0, shifting messages[i] by one.
        self.offset = canonical_count - len(raw) if isinstance(raw, list) else 0

    def _base(self, index: int) -> str:
        if self.fmt is DataFormat.PROMPT_COMPLETION or self.fmt is DataFormat.ALPACA:
            return f"message {index + 1}"
        if index < self.offset:
            return "system"
        return f"messages[{index - self.offset}]"

    def role(self, index: int) -> str:
        base = self._base(index)
        return base if base == "system" or base.startswith("message ") else f"{base}.role"

    def content(self, index: int) -> str:
        if self.fmt is DataFormat.PROMPT_COMPLETION and index < 2:
            return ("prompt", "completion")[index]
        if self.fmt is DataFormat.ALPACA and index < 2:
            return ("instruction", "output")[index]
        base = self._base(index)
        return base if base == "system" or base.startswith("message ") else f"{base}.content"


def _detect(record: dict) -> DataFormat:
    try:
        return detect_format(record)
    except FormatError as exc:
        raise _RecordProblem("unknown-format", str(exc)) from None


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


def _json_type(value: Any) -> str:
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


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size} GiB"

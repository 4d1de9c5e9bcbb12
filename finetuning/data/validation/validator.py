"""The validator of one file: the checkers composed, and the checks on the whole file.

Per line, ``LineReader`` decodes the record, ``RecordSchema`` reads its format and
messages, ``MessageChecker`` checks the turns (handing media parts to ``MediaChecker``),
then the media counts and ``LengthChecker`` run. ``finish`` checks record counts, file size
and file name against the family's limits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from finetuning.data.models import ModelFamily
from finetuning.data.sources import S3Uri, is_s3_uri
from finetuning.data.validation.length import LengthChecker
from finetuning.data.validation.media import STRICT_KEY, MediaChecker
from finetuning.data.validation.messages import MessageChecker
from finetuning.data.validation.reader import LineReader, RecordSchema
from finetuning.data.validation.report import DatasetRole, ProblemLog, ValidationReport


class Validator:
    """Validates one file's lines for ``family``; ``feed`` the lines, then ``finish``."""

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
        max_tracked_records: int,
    ) -> None:
        self.family = family
        self.role = role
        self.report = ValidationReport(
            path=path,
            model_id=model_id,
            family=family.name,
            role=role,
            tokens_exact=token_counter is not None,
        )
        self.log = log = ProblemLog(self.report, max_problems)
        self.reader = LineReader(log, max_tracked_records=max_tracked_records)
        self.schema = RecordSchema(family, log)
        self.media = MediaChecker(family, self.report, dataset_bucket)
        self.messages = MessageChecker(family, log, self.media)
        self.length = LengthChecker(family, log, token_counter=token_counter, max_tokens=max_tokens)

    def feed(self, lines: Iterable[bytes]) -> None:
        read = self.schema.read
        check_messages = self.messages.check
        check_counts = self.media.check_counts
        check_length = self.length.check

        def check_record(record: dict, number: int) -> None:
            fmt, messages = read(record, number)
            texts, total_chars, output_chars, images, videos = check_messages(
                record, fmt, messages, number
            )
            if images or videos:
                check_counts(images, videos, number)
            check_length(total_chars, output_chars, texts, messages, number)

        self.reader.feed(lines, check_record)

    def finish(self, *, file_bytes: int, file_name: str | None) -> ValidationReport:
        family = self.family
        report = self.report
        error = self.log.error
        report.bytes = file_bytes
        fmt = self.schema.format
        report.format = str(fmt) if fmt is not None else None
        records = report.records
        if records == 0:
            error("no-records", "no records: the file has no JSON object lines", None)
        if self.role is DatasetRole.TRAIN:
            if family.min_records is not None and 0 < records < family.min_records:
                error(
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
                error(
                    "record-count",
                    f"{records:,} records; {family.display_name} accepts at most {limit:,} {label}",
                    None,
                )
                break
        if byte_limit is not None and file_bytes > byte_limit:
            error(
                "file-size",
                f"{_human_bytes(file_bytes)}; {family.display_name} accepts at most "
                f"{_human_bytes(byte_limit)} for a {self.role} file",
                None,
            )
        if family.strict_file_names and file_name:
            name = (
                S3Uri.parse(file_name).key if is_s3_uri(file_name) else os.path.basename(file_name)
            )
            if not STRICT_KEY.match(name):
                error(
                    "file-name",
                    f"file name {name!r} has characters other than letters, digits, '_', "
                    f"'-', '/' and '.'; {family.display_name} rejects it",
                    None,
                )
        return report


def _human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size} GiB"

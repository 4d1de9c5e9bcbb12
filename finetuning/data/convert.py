"""Conversion between record formats, from JSONL, JSON, CSV or Parquet to JSONL.

Every record goes through the canonical message list of ``finetuning.data.formats``:
``source record -> to_messages -> (system / task prompt applied) -> target record``, so
any input format converts to any output format that can hold its content. Conversion is
all or nothing: the output is written to a temporary file and moved into place only when
every record converted; otherwise nothing is written and the problems are reported.

pyarrow (Parquet) and boto3 (``s3://`` output) are imported only when needed.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from finetuning.data.files import umask_mode
from finetuning.data.formats import (
    BEDROCK_SCHEMA_VERSION,
    DataFormat,
    FormatError,
    detect_format,
    to_messages,
)
from finetuning.data.sources import S3Uri, is_s3_uri, open_lines, s3_client

__all__ = [
    "ConversionError",
    "ConversionResult",
    "convert_file",
    "convert_record",
    "from_messages",
    "parse_format",
    "read_records",
]

# File extensions of media, for records that do not name their format.
_MEDIA_EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".webp": "webp",
    ".mp4": "mp4",
    ".mov": "mov",
    ".mkv": "mkv",
    ".webm": "webm",
}


class ConversionError(ValueError):
    """Some records could not be converted; ``problems`` lists them compiler style."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class ConversionResult:
    output: str
    records: int
    format: str
    source_formats: dict[str, int] = field(default_factory=dict)


def parse_format(name: str) -> DataFormat:
    """A ``DataFormat`` from its value or its CLI name (``bedrock-conversation``)."""
    if name == "bedrock-conversation":
        return DataFormat.BEDROCK_CONVERSATION
    return DataFormat(name)


def read_records(
    path: str | os.PathLike[str], field_map: Mapping[str, str] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line or row number, record)`` from JSONL, JSON, CSV or Parquet.

    JSONL is streamed (local or ``s3://``); a line that is not JSON yields a
    ``FormatError`` in place of the record so the caller can report it with its line.
    ``field_map`` renames top-level keys or columns (``{"question": "prompt"}``).
    """
    name = str(path)
    suffix = PurePosixPath(name.split("?")[0]).suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(name)
    elif suffix == ".parquet":
        rows = _read_parquet(name)
    elif suffix == ".json":
        rows = _read_json_array(name)
    else:
        rows = _read_jsonl(name)
    for number, record in rows:
        if field_map and isinstance(record, dict):
            record = {field_map.get(key, key): value for key, value in record.items()}
        yield number, record


def convert_record(
    record: Any,
    to: DataFormat | str,
    *,
    source_format: DataFormat | str | None = None,
    system_prompt: str | None = None,
    task_prompt: str | None = None,
) -> dict:
    """Convert one record to format ``to``.

    ``system_prompt`` replaces (or adds) the system prompt; ``task_prompt`` is put before
    the text of the first user turn, separated by a blank line.

    Raises:
        FormatError: the record is malformed, or the target format cannot hold it
            (several turns into prompt-completion, an image outside S3 into Bedrock's).
    """
    target = parse_format(to) if isinstance(to, str) else to
    if source_format is None:
        source = detect_format(record)
    else:
        source = parse_format(source_format) if isinstance(source_format, str) else source_format
    messages = to_messages(record, source)
    messages = _apply_prompts(messages, system_prompt, task_prompt)
    return from_messages(messages, target)


def from_messages(messages: list[dict], fmt: DataFormat) -> dict:
    """Build a record of format ``fmt`` from the canonical message list."""
    system = None
    turns = messages
    if messages and messages[0]["role"] == "system":
        system = _text_of(messages[0], "the system prompt")
        turns = messages[1:]
    if fmt is DataFormat.BEDROCK_CONVERSATION:
        record: dict[str, Any] = {"schemaVersion": BEDROCK_SCHEMA_VERSION}
        if system:
            record["system"] = [{"text": system}]
        record["messages"] = [_converse_turn(turn, index) for index, turn in enumerate(turns)]
        return record
    if fmt is DataFormat.MESSAGES:
        record = {"system": system} if system else {}
        record["messages"] = [{"role": turn["role"], "content": turn["content"]} for turn in turns]
        return record
    user, assistant = _single_exchange(turns, fmt)
    if fmt is DataFormat.PROMPT_COMPLETION:
        prompt = f"{system}\n\n{user}" if system else user
        return {"prompt": prompt, "completion": assistant}
    record = {"instruction": user, "input": "", "output": assistant}
    if system:
        record["system"] = system
    return record


def convert_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    to: DataFormat | str,
    source_format: DataFormat | str | None = None,
    system_prompt: str | None = None,
    task_prompt: str | None = None,
    field_map: Mapping[str, str] | None = None,
    overwrite: bool = False,
    max_problems: int = 100,
    client: Any = None,
) -> ConversionResult:
    """Convert every record of ``input_path`` and write JSONL to ``output_path``.

    ``output_path`` may be local or ``s3://``. Nothing is written unless every record
    converts; then ``ConversionError`` lists the first ``max_problems`` failures.

    Raises:
        ConversionError: some records could not be converted (or there were none).
        FileExistsError: ``output_path`` exists and ``overwrite`` is false.
    """
    target = parse_format(to) if isinstance(to, str) else to
    output = str(output_path)
    if not is_s3_uri(output) and Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output}: already exists; pass --force to replace it")
    if not is_s3_uri(output) and Path(output).resolve() == Path(str(input_path)).resolve():
        raise FileExistsError(f"{output}: is the input; choose another output path")
    local_dir = Path(tempfile.gettempdir()) if is_s3_uri(output) else Path(output).parent
    local_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".convert-", suffix=".jsonl", dir=local_dir)
    os.fchmod(fd, umask_mode())  # mkstemp makes 0600; the output follows the umask
    problems: list[str] = []
    failures = records = 0
    source_counts: dict[str, int] = {}
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for number, record in read_records(input_path, field_map):
                try:
                    if isinstance(record, FormatError):
                        raise record
                    source = source_format or detect_format(record)
                    converted = convert_record(
                        record,
                        target,
                        source_format=source,
                        system_prompt=system_prompt,
                        task_prompt=task_prompt,
                    )
                except FormatError as exc:
                    failures += 1
                    if len(problems) < max_problems:
                        problems.append(f"{input_path}:{number}: error: {exc}")
                    continue
                key = str(parse_format(source) if isinstance(source, str) else source)
                source_counts[key] = source_counts.get(key, 0) + 1
                out.write(json.dumps(converted, ensure_ascii=False) + "\n")
                records += 1
        if failures or not records:
            message = (
                f"{failures:,} of {failures + records:,} records could not be converted; "
                "nothing was written"
                if failures
                else f"{input_path}: no records to convert; nothing was written"
            )
            raise ConversionError(message, problems)
        if is_s3_uri(output):
            uri = S3Uri.parse(output)
            s3_client(client).upload_file(tmp_name, uri.bucket, uri.key)
        else:
            os.replace(tmp_name, output)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return ConversionResult(output, records, str(target), source_counts)


# -- readers -------------------------------------------------------------------------------


def _read_jsonl(path: str) -> Iterator[tuple[int, Any]]:
    with open_lines(path) as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, FormatError(f"not valid JSON ({exc})")


def _read_json_array(path: str) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig") as handle:
        data = json.load(handle)
    if not isinstance(data, list):
        raise ConversionError(f"{path}: expected a JSON array of records")
    yield from enumerate(data, start=1)


def _read_csv(path: str) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            record = {key: _maybe_json(value) for key, value in row.items() if key is not None}
            yield reader.line_num, record


def _read_parquet(path: str) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _maybe_json(value: str | None) -> Any:
    """CSV cells holding a JSON list or object (e.g. a messages column) are parsed."""
    if value and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# -- canonical -> target ---------------------------------------------------------------------


def _apply_prompts(
    messages: list[dict], system_prompt: str | None, task_prompt: str | None
) -> list[dict]:
    messages = list(messages)
    if system_prompt:
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": system_prompt}
        else:
            messages.insert(0, {"role": "system", "content": system_prompt})
    if task_prompt:
        for index, message in enumerate(messages):
            if message["role"] == "user":
                content = message["content"]
                if isinstance(content, str):
                    content = f"{task_prompt}\n\n{content}" if content else task_prompt
                else:
                    content = [{"type": "text", "text": task_prompt}, *content]
                messages[index] = {"role": "user", "content": content}
                break
    return messages


def _converse_turn(turn: dict, index: int) -> dict:
    role = turn["role"]
    if role == "system":
        raise FormatError("a system message may only come first", f"messages[{index}]")
    content = turn["content"]
    if isinstance(content, str):
        return {"role": role, "content": [{"text": content}]}
    blocks = []
    for position, part in enumerate(content):
        if part["type"] == "text":
            blocks.append({"text": part["text"]})
            continue
        where = f"messages[{index}].content[{position}]"
        source = part["source"]
        location = source.get("s3Location")
        link = source.get("url") or source.get("path")
        if location is None and isinstance(link, str) and link.startswith("s3://"):
            location = {"uri": link}
        if not isinstance(location, Mapping) or not isinstance(location.get("uri"), str):
            found = ", ".join(sorted(source)) or "nothing"
            raise FormatError(
                f"Bedrock reads {part['type']}s from S3 only (source.s3Location.uri); found "
                f"{found}; upload the file and reference its s3:// URI",
                where,
            )
        fmt = part.get("format") or _MEDIA_EXTENSIONS.get(
            PurePosixPath(location["uri"]).suffix.lower()
        )
        if not fmt:
            raise FormatError(
                f"the {part['type']} format is not given and cannot be told from "
                f"{location['uri']!r}",
                where,
            )
        blocks.append({part["type"]: {"format": fmt, "source": {"s3Location": dict(location)}}})
    return {"role": role, "content": blocks}


def _single_exchange(turns: list[dict], fmt: DataFormat) -> tuple[str, str]:
    roles = [turn["role"] for turn in turns]
    if roles != ["user", "assistant"]:
        raise FormatError(
            f"{fmt} holds one user turn and one assistant response; this record has "
            f"{len(turns)} turns ({', '.join(roles) or 'none'}); convert to messages or "
            "bedrock-conversation instead"
        )
    return _text_of(turns[0], "the prompt"), _text_of(turns[1], "the response")


def _text_of(message: dict, what: str) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    kinds = sorted({part["type"] for part in content if part["type"] != "text"})
    raise FormatError(f"{what} contains {' and '.join(kinds)}, which this format cannot hold")

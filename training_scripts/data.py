"""Reading training data: files, record formats, and the conversations train.py learns from.

Format detection and conversion belong to ``finetuning.data.formats`` (standard library only,
shipped next to this package in the SageMaker source dir); this module adds what training needs
on top: file discovery, line numbers in every error, one format per file, a check that each
record has something to learn from, the train/validation split, and ``prepare_data``, which
does all of that for one command line.

Nothing here imports torch, so bad data is reported before any model loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages
from finetuning.data.split import SplitError, validation_indices
from training_scripts.arguments import UsageError
from training_scripts.console import say

if TYPE_CHECKING:
    from training_scripts.arguments import ScriptArguments

DATA_SUFFIXES = (".jsonl", ".json")
AUTO = "auto"
SPLIT_SEED = 42


class DataError(ValueError):
    """Bad training data: train.py prints ``error: <message>`` and exits with code 2."""


@dataclass(frozen=True)
class Conversation:
    """One training record, converted.

    ``messages`` is the canonical ``[{"role", "content"}]`` list with text-only string contents.
    ``plain`` is ``(prompt, completion)`` for a prompt-completion record with string fields,
    which trains as plain text rather than through the chat template.
    """

    source: str
    messages: tuple[dict[str, str], ...]
    plain: tuple[str, str] | None = None


@dataclass(frozen=True)
class LoadedData:
    """The conversations of one data argument, and where they came from."""

    conversations: list[Conversation]
    files: dict[str, str]  # file path -> detected or forced format
    sha256: dict[str, str]  # file path -> content hash, recorded in training_config.json


def parse_data_format(value: str) -> DataFormat | None:
    """``auto`` -> None; otherwise the :class:`DataFormat` named by ``value``."""
    if value == AUTO:
        return None
    try:
        return DataFormat(value)
    except ValueError:
        choices = ", ".join([AUTO, *(fmt.value for fmt in DataFormat)])
        raise DataError(f"--data_format must be one of {choices}, found {value!r}") from None


def list_data_files(path_text: str, flag: str) -> list[Path]:
    """The data files a ``--train_file``/``--validation_file`` value names, sorted."""
    path = Path(path_text)
    if not path.exists():
        raise DataError(f"{flag} {path_text}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataError(
            f"{flag} {path_text}: directory has no data files "
            f"(expected {' or '.join('*' + s for s in DATA_SUFFIXES)})"
        )
    return files


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, record)``: JSON Lines, or a ``.json`` file holding one array."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
        for index, record in enumerate(records):
            yield index + 1, record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} line {number}: invalid JSON: {exc.msg} (column {exc.colno})"
            ) from None


def _text_content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    kinds = sorted({part.get("type", "?") for part in content if part.get("type") != "text"})
    raise DataError(
        f"{where} has {' and '.join(kinds)} content; train.py fine-tunes text-only models, so "
        "records with images or video need a multimodal path (Bedrock Nova customization)"
    )


def convert_record(record: Any, fmt: DataFormat, where: str) -> Conversation:
    """Convert one record; raises :class:`DataError` naming ``where`` (``file line N``)."""
    try:
        messages = to_messages(record, fmt)
    except FormatError as exc:
        raise DataError(f"{where}: not a valid {fmt.value} record: {exc}") from None
    text_messages = tuple(
        {"role": m["role"], "content": _text_content(m["content"], f"{where} {m['role']} turn")}
        for m in messages
    )
    roles = [m["role"] for m in text_messages]
    if "assistant" not in roles:
        raise DataError(
            f"{where}: no assistant turn to learn from (roles found: {', '.join(roles) or 'none'})"
        )
    plain = None
    if (
        fmt is DataFormat.PROMPT_COMPLETION
        and isinstance(record.get("prompt"), str)
        and isinstance(record.get("completion"), str)
    ):
        plain = (record["prompt"], record["completion"])
    return Conversation(source=where, messages=text_messages, plain=plain)


def load_file(path: Path, forced: DataFormat | None) -> tuple[list[Conversation], DataFormat]:
    """All conversations of one file, in the file's format (detected from its first record)."""
    conversations: list[Conversation] = []
    fmt = forced
    for number, record in read_records(path):
        where = f"{path} line {number}"
        if fmt is None:
            try:
                fmt = detect_format(record)
            except FormatError as exc:
                raise DataError(f"{where}: unknown data format: {exc}") from None
        conversations.append(convert_record(record, fmt, where))
    if not conversations:
        raise DataError(f"{path}: no records (the file is empty)")
    assert fmt is not None
    return conversations, fmt


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_data(path_text: str, flag: str, data_format: str) -> LoadedData:
    """Read every file a data argument names; one format per file."""
    forced = parse_data_format(data_format)
    conversations: list[Conversation] = []
    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for path in list_data_files(path_text, flag):
        file_conversations, fmt = load_file(path, forced)
        conversations.extend(file_conversations)
        files[str(path)] = fmt.value
        hashes[str(path)] = file_sha256(path)
    return LoadedData(conversations=conversations, files=files, sha256=hashes)


def split_validation(
    conversations: list[Conversation], fraction: float, seed: int = SPLIT_SEED
) -> tuple[list[Conversation], list[Conversation]]:
    """Hold out ``fraction`` of the records for validation, choosing exactly the records that
    ``finetune data split`` (and the library's automatic split) would, for the same seed."""
    if not conversations or fraction <= 0:
        return conversations, []
    if len(conversations) < 2:
        raise DataError(
            f"--validation_split {fraction} leaves no training records out of {len(conversations)}"
        )
    try:
        held_out = validation_indices(len(conversations), fraction, seed)
    except SplitError as exc:
        raise DataError(f"--validation_split: {exc}") from None
    train = [c for i, c in enumerate(conversations) if i not in held_out]
    validation = [c for i, c in enumerate(conversations) if i in held_out]
    return train, validation


@dataclass
class PreparedData:
    """Training and validation conversations, and where they came from."""

    train: list[Conversation]
    validation: list[Conversation]
    sources: dict[str, Any]
    train_sha256: str  # over all training files, identifies the data a checkpoint belongs to


def prepare_data(args: ScriptArguments) -> PreparedData:
    """Read, check and split the data: everything that can fail before a model loads."""
    data = args.data
    train = load_data(data.train_file or "", "--train_file", data.data_format)
    validation = None
    if data.validation_file:
        validation = load_data(data.validation_file, "--validation_file", data.data_format)
        if data.validation_split > 0:
            say("warning: --validation_split is ignored because validation data was given")
        train_conversations, validation_conversations = (
            train.conversations,
            validation.conversations,
        )
    else:
        train_conversations, validation_conversations = split_validation(
            train.conversations, data.validation_split
        )
    if args.run.early_stopping_patience is not None and not validation_conversations:
        raise UsageError(
            "--early_stopping_patience needs validation data: --validation_file or "
            "--validation_split"
        )
    validation_source: dict[str, Any] | None = None
    if validation is not None:
        validation_source = {"formats": validation.files, "sha256": validation.sha256}
    elif validation_conversations:
        validation_source = {"split_from_train": data.validation_split, "seed": 42}
    combined = hashlib.sha256("".join(sorted(train.sha256.values())).encode()).hexdigest()
    return PreparedData(
        train=train_conversations,
        validation=validation_conversations,
        sources={
            "train": {"formats": train.files, "sha256": train.sha256},
            "validation": validation_source,
        },
        train_sha256=combined,
    )

"""Training-record formats and their conversion to one canonical chat shape.

Standard library only: ``training_scripts/train.py`` imports this module inside the
SageMaker training container, where nothing but the container's own packages exists.

Four on-disk formats are understood (one JSON object per JSONL line):

``prompt-completion``
    ``{"prompt": "...", "completion": "..."}``: Bedrock's format for Titan Text and Llama,
    and TRL's. TRL's conversational variant, where ``prompt`` and ``completion`` are lists
    of ``{"role", "content"}`` messages, is accepted too.
``messages``
    ``{"system": "...", "messages": [{"role": "user", "content": "..."}, ...]}``: the
    Claude 3 Haiku fine-tuning format and the OpenAI / Hugging Face chat format (a
    ``system`` role inside ``messages`` instead of the top-level field). Content is a string
    or a list of typed parts (``{"type": "text", "text": ...}``, ``{"type": "image", ...}``,
    ``{"type": "image_url", "image_url": {"url": ...}}``).
``bedrock-conversation-2024``
    The Converse-API shape Amazon Nova fine-tuning reads: ``schemaVersion``, ``system`` as a
    list of ``{"text"}`` blocks, ``messages`` whose content is a list of ``{"text"}``,
    ``{"image"}`` or ``{"video"}`` blocks.
``alpaca``
    ``{"instruction": "...", "input": "...", "output": "..."}`` (``input`` optional).

Every format converts to the canonical list ``[{"role": "system"|"user"|"assistant",
"content": str | list[part]}]``. Content that is only text is a plain string (several text
parts are joined with a newline); content with media is a list whose parts are
``{"type": "text", "text": str}``, or ``{"type": "image"|"video", "format": str | None,
"source": dict}`` where ``source`` is kept as found (``{"s3Location": {"uri", ...}}``,
``{"bytes": ...}``, ``{"url": ...}`` or ``{"path": ...}``; empty for a TRL-style
``{"type": "image"}`` placeholder whose pixels live in another column of the record).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = [
    "BEDROCK_SCHEMA_VERSION",
    "CANONICAL_ROLES",
    "DataFormat",
    "FormatError",
    "detect_format",
    "to_messages",
]

BEDROCK_SCHEMA_VERSION = "bedrock-conversation-2024"
CANONICAL_ROLES = frozenset({"system", "user", "assistant"})
_MEDIA_KINDS = ("image", "video")
_TEXT_JOINER = "\n"


class DataFormat(StrEnum):
    """The record formats the toolkit reads and writes."""

    PROMPT_COMPLETION = "prompt-completion"
    MESSAGES = "messages"
    BEDROCK_CONVERSATION = BEDROCK_SCHEMA_VERSION
    ALPACA = "alpaca"


class FormatError(ValueError):
    """A record does not match the shape of its format.

    ``field`` is a path into the record (``messages[2].content[0].text``) when the
    problem is in one field, ``None`` when it concerns the record as a whole.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


# What each format needs, worded for error messages.
_FORMAT_NEEDS = {
    DataFormat.PROMPT_COMPLETION: '"prompt" and "completion"',
    DataFormat.MESSAGES: '"messages" (a list of {"role", "content"}), optionally "system"',
    DataFormat.BEDROCK_CONVERSATION: (
        f'"schemaVersion": "{BEDROCK_SCHEMA_VERSION}" and "messages", optionally "system"'
    ),
    DataFormat.ALPACA: '"instruction" and "output", optionally "input"',
}


def format_requirements() -> str:
    """One line per format saying which keys it needs (for help texts and errors)."""
    return "; ".join(f"{fmt.value} needs {needs}" for fmt, needs in _FORMAT_NEEDS.items())


def detect_format(record: dict) -> DataFormat:
    """Tell which format one record is in, from its keys.

    Raises:
        FormatError: the record is not a JSON object, or its keys match no format; the
            message lists the keys found and what each format needs.
    """
    if not isinstance(record, Mapping):
        raise FormatError(
            f"expected a JSON object, found {_json_type(record)}; {format_requirements()}"
        )
    if "schemaVersion" in record:
        return DataFormat.BEDROCK_CONVERSATION
    if "messages" in record:
        return (
            DataFormat.BEDROCK_CONVERSATION if _looks_like_converse(record) else DataFormat.MESSAGES
        )
    if "prompt" in record and "completion" in record:
        return DataFormat.PROMPT_COMPLETION
    if "instruction" in record and "output" in record:
        return DataFormat.ALPACA
    found = ", ".join(f'"{key}"' for key in list(record)[:10]) or "no keys"
    if len(record) > 10:
        found += f" (and {len(record) - 10} more)"
    raise FormatError(f"found {found}, which matches no known format; {format_requirements()}")


def _looks_like_converse(record: Mapping[str, Any]) -> bool:
    """True for a Converse-shaped record that lacks its schemaVersion.

    The Converse shape gives itself away by a ``system`` list of blocks or by content
    blocks keyed by kind (``{"text": ...}``) rather than tagged with ``"type"``.
    """
    if isinstance(record.get("system"), list):
        return True
    messages = record.get("messages")
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping) and "type" not in block:
                    return any(kind in block for kind in ("text", *_MEDIA_KINDS))
    return False


def to_messages(record: dict, fmt: DataFormat) -> list[dict]:
    """Convert one record of format ``fmt`` to the canonical message list.

    Structure is checked as far as conversion needs it (types of fields, known roles and
    content blocks); conversation rules such as turn order and non-empty text are the
    validator's job, so a record converts even when it would fail validation.

    Raises:
        FormatError: the record does not have the shape of ``fmt``; ``field`` names where.
    """
    if type(record) is not dict and not isinstance(record, Mapping):
        raise FormatError(f"expected a JSON object, found {_json_type(record)}")
    converter = _CONVERTERS.get(fmt)
    if converter is None:  # a plain string such as "alpaca"
        converter = _CONVERTERS[DataFormat(fmt)]
    return converter(record)


# -- prompt / completion ---------------------------------------------------------------


def _from_prompt_completion(record: Mapping[str, Any]) -> list[dict]:
    messages: list[dict] = []
    if "system" in record:
        system = _require_str(record, "system")
        if system:
            messages.append({"role": "system", "content": system})
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        if key not in record:
            raise FormatError(f'missing; prompt-completion records need "{key}"', key)
        value = record[key]
        if isinstance(value, str):
            messages.append({"role": role, "content": value})
        elif isinstance(value, list):
            # TRL's conversational prompt-completion: lists of chat messages.
            messages.extend(
                _typed_message(message, f"{key}[{index}]") for index, message in enumerate(value)
            )
        else:
            raise FormatError(
                f"expected a string or a list of messages, found {_json_type(value)}", key
            )
    return messages


# -- messages (Claude 3 Haiku, OpenAI, Hugging Face chat) -----------------------------------


def _from_messages(record: Mapping[str, Any]) -> list[dict]:
    raw_messages = _require_list(record, "messages")
    messages = [
        _typed_message(message, f"messages[{index}]") for index, message in enumerate(raw_messages)
    ]
    if "system" in record:
        system = _require_str(record, "system")
        if any(message["role"] == "system" for message in messages):
            raise FormatError(
                'both a top-level "system" and a message with role "system"; keep one', "system"
            )
        if system:
            messages.insert(0, {"role": "system", "content": system})
    return messages


def _typed_message(message: Any, where: str) -> dict:
    if not isinstance(message, Mapping):
        raise FormatError(
            f'expected an object with "role" and "content", found {_json_type(message)}', where
        )
    role = message.get("role")
    if role not in CANONICAL_ROLES:
        raise FormatError(
            f"expected role one of {sorted(CANONICAL_ROLES)}, found {role!r}", f"{where}.role"
        )
    if "content" not in message:
        raise FormatError('missing "content"', where)
    content = message["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise FormatError(
            f"expected a string or a list of parts, found {_json_type(content)}",
            f"{where}.content",
        )
    parts = [_typed_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)]
    return {"role": role, "content": _collapse(parts)}


def _typed_part(part: Any, where: str) -> dict:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise FormatError(f'expected an object with "type", found {_json_type(part)}', where)
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": _require_str(part, "text", where)}
    if kind in _MEDIA_KINDS:
        return _typed_media(part, kind, where)
    if kind in ("image_url", "video_url"):
        media = "image" if kind == "image_url" else "video"
        payload = part.get(kind)
        url = payload.get("url") if isinstance(payload, Mapping) else payload
        if not isinstance(url, str):
            raise FormatError(f'expected "{kind}" to hold a "url" string', where)
        return _media_part(media, None, {"url": url})
    raise FormatError(
        f"expected a part of type text, image, image_url, video or video_url, found {kind!r}",
        f"{where}.type",
    )


def _typed_media(part: Mapping[str, Any], kind: str, where: str) -> dict:
    """A Hugging Face style media part: the media under its kind, or a url/path/source key."""
    fmt = part.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise FormatError(f"expected a string, found {_json_type(fmt)}", f"{where}.format")
    source = part.get("source")
    if isinstance(source, Mapping):
        return _media_part(kind, fmt, dict(source))
    for key in ("url", "path"):
        if isinstance(part.get(key), str):
            return _media_part(kind, fmt, {key: part[key]})
    value = part.get(kind)
    if isinstance(value, str):
        key = "url" if "://" in value or value.startswith("data:") else "path"
        return _media_part(kind, fmt, {key: value})
    if isinstance(value, Mapping) and isinstance(value.get("source"), Mapping):
        # Converse-style block nested under a type tag.
        return _media_part(kind, value.get("format") or fmt, dict(value["source"]))
    if value is None and set(part) <= {"type", "format"}:
        # TRL / Hugging Face vision datasets: a bare placeholder, the pixels stored in a
        # separate column (e.g. "images") of the same record. The source stays empty.
        return _media_part(kind, fmt, {})
    raise FormatError(
        f'expected the {kind} as "url", "path", "source" or "{kind}", found none of them', where
    )


# -- bedrock-conversation-2024 (Nova) ------------------------------------------------------


def _from_converse(record: Mapping[str, Any]) -> list[dict]:
    messages: list[dict] = []
    if "system" in record:
        system = record["system"]
        if isinstance(system, str):
            text = system
        elif isinstance(system, list):
            texts = []
            for index, block in enumerate(system):
                if type(block) is dict and len(block) == 1 and type(block.get("text")) is str:
                    texts.append(block["text"])
                    continue
                where = f"system[{index}]"
                if not isinstance(block, Mapping) or set(block) != {"text"}:
                    raise FormatError('expected a {"text": ...} block', where)
                texts.append(_require_str(block, "text", where))
            text = texts[0] if len(texts) == 1 else _TEXT_JOINER.join(texts)
        else:
            raise FormatError(
                f'expected a list of {{"text": ...}} blocks, found {_json_type(system)}', "system"
            )
        if text:
            messages.append({"role": "system", "content": text})
    for index, message in enumerate(_require_list(record, "messages")):
        messages.append(_converse_message(message, index))
    return messages


def _converse_message(message: Any, index: int) -> dict:
    if type(message) is not dict and not isinstance(message, Mapping):
        raise FormatError(
            f'expected an object with "role" and "content", found {_json_type(message)}',
            f"messages[{index}]",
        )
    role = message.get("role")
    if role != "user" and role != "assistant":
        raise FormatError(
            f"expected role 'user' or 'assistant', found {role!r}", f"messages[{index}].role"
        )
    content = message.get("content")
    if type(content) is not list:
        raise FormatError(
            f"expected a list of content blocks, found {_json_type(content)}",
            f"messages[{index}].content",
        )
    # Fast path, taken by nearly every record: text blocks only. Validation streams
    # millions of records through here, so the common case allocates no part dicts.
    texts: list[str] = []
    for block in content:
        if type(block) is dict and len(block) == 1:
            text = block.get("text")
            if type(text) is str:
                texts.append(text)
                continue
        break
    else:
        return {"role": role, "content": texts[0] if len(texts) == 1 else _TEXT_JOINER.join(texts)}
    parts = [
        _converse_block(block, f"messages[{index}].content[{position}]")
        for position, block in enumerate(content)
    ]
    return {"role": role, "content": _collapse(parts)}


def _converse_block(block: Any, where: str) -> dict:
    if not isinstance(block, Mapping) or len(block) != 1:
        found = f"keys {sorted(block)}" if isinstance(block, Mapping) else _json_type(block)
        raise FormatError(
            f'expected a block with exactly one of "text", "image", "video", found {found}',
            where,
        )
    ((kind, value),) = block.items()
    if kind == "text":
        if not isinstance(value, str):
            raise FormatError(f"expected a string, found {_json_type(value)}", f"{where}.text")
        return {"type": "text", "text": value}
    if kind in _MEDIA_KINDS:
        inner = f"{where}.{kind}"
        if not isinstance(value, Mapping):
            raise FormatError(
                f'expected an object with "format" and "source", found {_json_type(value)}',
                inner,
            )
        fmt = value.get("format")
        if not isinstance(fmt, str):
            raise FormatError(f"expected a string, found {_json_type(fmt)}", f"{inner}.format")
        source = value.get("source")
        if not isinstance(source, Mapping):
            raise FormatError(f"expected an object, found {_json_type(source)}", f"{inner}.source")
        return _media_part(kind, fmt, dict(source))
    raise FormatError(
        f'expected a "text", "image" or "video" block, found "{kind}" (not supported for '
        "fine-tuning data)",
        where,
    )


# -- alpaca -----------------------------------------------------------------------------


def _from_alpaca(record: Mapping[str, Any]) -> list[dict]:
    instruction = _require_str(record, "instruction")
    output = _require_str(record, "output")
    extra = _require_str(record, "input") if record.get("input") is not None else ""
    messages: list[dict] = []
    if record.get("system") is not None:
        system = _require_str(record, "system")
        if system:
            messages.append({"role": "system", "content": system})
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    messages.append({"role": "user", "content": prompt})
    messages.append({"role": "assistant", "content": output})
    return messages


_CONVERTERS = {
    DataFormat.PROMPT_COMPLETION: _from_prompt_completion,
    DataFormat.MESSAGES: _from_messages,
    DataFormat.BEDROCK_CONVERSATION: _from_converse,
    DataFormat.ALPACA: _from_alpaca,
}


# -- helpers ----------------------------------------------------------------------------


def _media_part(kind: str, fmt: str | None, source: dict) -> dict:
    return {"type": kind, "format": fmt.lower() if fmt else None, "source": source}


def _collapse(parts: list[dict]) -> str | list[dict]:
    """Text-only content becomes one string; content with media stays a list of parts."""
    if all(part["type"] == "text" for part in parts):
        return _TEXT_JOINER.join(part["text"] for part in parts)
    return parts


def _require_str(obj: Mapping[str, Any], key: str, where: str | None = None) -> str:
    field = f"{where}.{key}" if where else key
    if key not in obj:
        raise FormatError("missing; expected a string", field)
    value = obj[key]
    if not isinstance(value, str):
        raise FormatError(f"expected a string, found {_json_type(value)}", field)
    return value


def _require_list(obj: Mapping[str, Any], key: str) -> list:
    value = obj.get(key)
    if type(value) is list:
        return value
    if key not in obj:
        raise FormatError("missing; expected a list", key)
    value = obj[key]
    if not isinstance(value, list):
        raise FormatError(f"expected a list, found {_json_type(value)}", key)
    return value


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__

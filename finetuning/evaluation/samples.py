"""What a model is evaluated on: samples built from images or from a JSONL test set.

A sample is a conversation up to the turn the model must write, plus the reference answer
(the test set's last assistant turn, or the label from a ground-truth file). Samples are
backend-neutral; each target turns them into its own request shape.

Accepted JSONL records (one per line):

- Bedrock conversation (``schemaVersion: bedrock-conversation-2024``): ``system`` is a list of
  ``{"text": ...}``, ``messages[].content`` a list of ``{"text": ...}`` or ``{"image": ...}``
  blocks with ``source.bytes`` (base64) or ``source.s3Location.uri``.
- Chat messages: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}``.
- Prompt/completion: ``{"prompt": "...", "completion": "..."}``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# Image formats the Converse API accepts in an ImageBlock (service model enum ImageFormat).
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".webp": "webp"}

Role = Literal["user", "assistant"]


class SampleError(ValueError):
    """A test set, ground-truth file or image input that cannot be used; names file and line."""


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image given as a local file, inline bytes or an S3 object (exactly one of them)."""

    format: str
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)
    s3_uri: str | None = None
    bucket_owner: str | None = None

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return Path(self.path).read_bytes()
        raise SampleError(
            f"image {self.s3_uri} is an S3 object: this target needs the bytes, "
            "download the test set's images or use a Bedrock target"
        )


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Turn:
    role: Role
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "\n".join(part.text for part in self.parts if isinstance(part, TextPart))


@dataclass(frozen=True)
class EvaluationSample:
    """One prompt to send and, when known, the answer it should produce.

    ``sample_id`` is stable across runs (a normalized image path, or ``file:line``), which is
    what lets an interrupted run resume.
    """

    sample_id: str
    turns: tuple[Turn, ...]
    system: str | None = None
    reference: str | None = None
    image_path: str | None = None

    @property
    def has_images(self) -> bool:
        return any(isinstance(part, ImagePart) for turn in self.turns for part in turn.parts)


def normalize_path(path: str | os.PathLike[str], base: Path | None = None) -> str:
    """Absolute, user-expanded, case-normalized form used to match images to labels."""
    candidate = Path(os.path.expanduser(os.fspath(path)))
    if not candidate.is_absolute():
        candidate = (base or Path.cwd()) / candidate
    return os.path.normcase(os.path.normpath(str(candidate)))


def image_format(path: Path) -> str:
    try:
        return IMAGE_FORMATS[path.suffix.lower()]
    except KeyError:
        raise SampleError(
            f"{path}: unsupported image type {path.suffix or '(none)'!r}: expected one of "
            f"{', '.join(sorted(IMAGE_FORMATS))}"
        ) from None


def list_images(directory: Path) -> list[Path]:
    """Every supported image under ``directory`` (recursively), in a stable order."""
    if not directory.is_dir():
        raise SampleError(f"{directory}: --image-directory is not a directory")
    images = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_FORMATS
    )
    if not images:
        raise SampleError(
            f"{directory}: no images found (looked for {', '.join(sorted(IMAGE_FORMATS))})"
        )
    return images


class GroundTruth:
    """Labels keyed by image path, as in the old ``labels.json`` (``{path: label}``).

    Keys are matched after normalization: absolute as given, relative to the labels file's
    folder or the working directory, and finally by file name when that name is unique.
    """

    def __init__(self, labels: Mapping[str, str], source: Path | None = None) -> None:
        base = source.parent if source else None
        self.source = source
        self._by_path: dict[str, str] = {}
        by_name: dict[str, list[str]] = {}
        for key, label in labels.items():
            for variant in {normalize_path(key, base), normalize_path(key)}:
                self._by_path[variant] = label
            by_name.setdefault(os.path.normcase(Path(key).name), []).append(label)
        self._by_unique_name = {name: ls[0] for name, ls in by_name.items() if len(ls) == 1}
        self._used: set[str] = set()
        self._size = len(labels)

    @classmethod
    def from_file(cls, path: Path) -> GroundTruth:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SampleError(f"{path}: ground-truth file not found") from None
        except json.JSONDecodeError as exc:
            raise SampleError(
                f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}); expected an object "
                '{"/path/to/image.png": "label", ...}'
            ) from None
        if not isinstance(data, dict):
            raise SampleError(
                f"{path}: expected a JSON object mapping image paths to labels, "
                f"got {type(data).__name__}"
            )
        for key, value in data.items():
            if not isinstance(value, str) or not value.strip():
                raise SampleError(
                    f"{path}: entry {key!r}: expected a non-empty label string, got {value!r}"
                )
        return cls(data, source=path)

    def label_for(self, image: Path) -> str | None:
        label = self._by_path.get(normalize_path(image))
        if label is None:
            label = self._by_unique_name.get(os.path.normcase(image.name))
        if label is not None:
            self._used.add(normalize_path(image))
        return label

    @property
    def labels(self) -> list[str]:
        return sorted(set(self._by_path.values()))

    def __len__(self) -> int:
        return self._size


def image_samples(
    images: Sequence[Path],
    *,
    task_prompt: str,
    system_prompt: str | None,
    ground_truth: GroundTruth | None = None,
) -> list[EvaluationSample]:
    """One sample per image: the task prompt, then the image, in a single user turn."""
    samples = []
    for image in images:
        if not image.is_file():
            raise SampleError(f"{image}: image file not found")
        part = ImagePart(format=image_format(image), path=str(image))
        samples.append(
            EvaluationSample(
                sample_id=normalize_path(image),
                turns=(Turn("user", (TextPart(task_prompt), part)),),
                system=system_prompt,
                reference=ground_truth.label_for(image) if ground_truth else None,
                image_path=str(image),
            )
        )
    return samples


def read_test_set(path: Path, *, system_prompt: str | None = None) -> list[EvaluationSample]:
    """Samples from a JSONL test set; each record's last assistant turn is its reference.

    ``system_prompt`` replaces a record's own system prompt only when the record has none.
    """
    if not path.is_file():
        raise SampleError(f"{path}: test set not found")
    samples = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}: line {line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SampleError(
                    f"{where}: not UTF-8 text (a binary file, or UTF-16?); expected JSON Lines "
                    "in UTF-8"
                ) from None
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                # The same words as the data toolkit and the local job service.
                raise SampleError(
                    f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(record, dict):
                raise SampleError(f"{where}: expected a JSON object, got {type(record).__name__}")
            system, turns = _parse_record(record, where, path.parent)
            if not turns or turns[-1].role != "assistant":
                raise SampleError(
                    f"{where}: the last turn must be the assistant's reference answer "
                    f"(found {turns[-1].role if turns else 'no turns'!r})"
                )
            prompt_turns = turns[:-1]
            if not prompt_turns or prompt_turns[0].role != "user":
                raise SampleError(f"{where}: expected a user turn before the reference answer")
            samples.append(
                EvaluationSample(
                    sample_id=f"{path.name}:{line_no}",
                    turns=tuple(prompt_turns),
                    system=system if system is not None else system_prompt,
                    reference=turns[-1].text,
                    image_path=next(_image_paths(prompt_turns), None),
                )
            )
    if not samples:
        raise SampleError(f"{path}: the test set has no records")
    return samples


def _image_paths(turns: Iterable[Turn]) -> Iterator[str]:
    for turn in turns:
        for part in turn.parts:
            if isinstance(part, ImagePart):
                yield part.path or part.s3_uri or "(inline image)"


def _parse_record(record: dict[str, Any], where: str, base: Path) -> tuple[str | None, list[Turn]]:
    if "messages" in record:
        system = _system_text(record.get("system"), where)
        turns: list[Turn] = []
        for index, message in enumerate(_list(record["messages"], f"{where}: messages")):
            at = f"{where}: messages[{index}]"
            if not isinstance(message, dict):
                raise SampleError(f"{at}: expected an object with role and content")
            role = message.get("role")
            if role == "system":
                text = _content_parts(message.get("content"), at, base)
                system = "\n".join(p.text for p in text if isinstance(p, TextPart))
                continue
            if role not in ("user", "assistant"):
                raise SampleError(
                    f"{at}: role: expected 'user', 'assistant' or 'system', got {role!r}"
                )
            turns.append(Turn(role, tuple(_content_parts(message.get("content"), at, base))))
        return system, turns
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise SampleError(f"{where}: prompt and completion must be strings")
        return None, [
            Turn("user", (TextPart(prompt),)),
            Turn("assistant", (TextPart(completion.strip()),)),
        ]
    raise SampleError(
        f"{where}: unknown record shape with keys {sorted(record)}: expected 'messages' "
        "(Bedrock conversation or chat format) or 'prompt' and 'completion'"
    )


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SampleError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _system_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    blocks = _list(value, f"{where}: system")
    texts = [b.get("text") for b in blocks if isinstance(b, dict)]
    if any(not isinstance(t, str) for t in texts) or len(texts) != len(blocks):
        raise SampleError(f'{where}: system: expected a list of {{"text": "..."}} blocks')
    return "\n".join(texts)


def _content_parts(content: Any, where: str, base: Path) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    parts: list[Part] = []
    for index, block in enumerate(_list(content, f"{where}: content")):
        at = f"{where}: content[{index}]"
        if not isinstance(block, dict):
            raise SampleError(f"{at}: expected an object")
        if "text" in block:
            parts.append(TextPart(str(block["text"])))
        elif "image" in block:
            parts.append(_image_block(block["image"], at, base))
        elif block.get("type") == "text":
            parts.append(TextPart(str(block.get("text", ""))))
        else:
            raise SampleError(f"{at}: expected a 'text' or 'image' block, got keys {sorted(block)}")
    return parts


def _image_block(image: Any, where: str, base: Path) -> ImagePart:
    if not isinstance(image, dict):
        raise SampleError(f"{where}: image: expected an object with format and source")
    fmt = image.get("format")
    if fmt not in set(IMAGE_FORMATS.values()):
        raise SampleError(
            f"{where}: image.format: expected one of png, jpeg, gif, webp, got {fmt!r}"
        )
    source = image.get("source") or {}
    if "bytes" in source:
        try:
            data = base64.b64decode(source["bytes"], validate=True)
        except (ValueError, TypeError):
            raise SampleError(f"{where}: image.source.bytes: expected base64 data") from None
        return ImagePart(format=fmt, data=data)
    location = source.get("s3Location") or {}
    uri = location.get("uri")
    if isinstance(uri, str) and uri.startswith("s3://"):
        return ImagePart(format=fmt, s3_uri=uri, bucket_owner=location.get("bucketOwner"))
    path = source.get("path")
    if isinstance(path, str):
        return ImagePart(format=fmt, path=str(Path(normalize_path(path, base))))
    raise SampleError(
        f"{where}: image.source: expected 'bytes' (base64), 's3Location.uri' (s3://...) "
        "or 'path' (a local file)"
    )

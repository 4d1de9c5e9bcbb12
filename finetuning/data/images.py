"""Image-classification datasets (such as RVL-CDIP) to ``bedrock-conversation-2024``.

From a Hugging Face dataset saved with ``save_to_disk`` or a folder ``ROOT/<label>/*.png``
(jpg, tif, gif, webp, bmp), ``prepare_images``:

1. samples ``samples_per_label`` items per label, reproducibly (rank = SHA-256 of
   ``seed:label:item``, independent of listing order);
2. normalizes each image (first frame, RGB or greyscale, longer side capped, PNG or JPEG);
3. stores it under ``images/<label>/<sha256>.<ext>`` in a folder or ``s3://bucket/prefix``,
   in parallel, skipping objects already stored with the same content;
4. writes one record per stored image (never for an image that failed), split into
   ``train.jsonl`` and ``validation.jsonl`` with the labels in proportion, after checking
   them with the validator of the target model;
5. writes ``dataset_manifest.json``: counts per class, hashes of every image and file, and
   every failure with its reason.

Pillow, boto3, tqdm and (for saved datasets) ``datasets`` are imported here, not by the
package.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetuning import __version__
from finetuning.data.files import umask_mode
from finetuning.data.formats import BEDROCK_SCHEMA_VERSION
from finetuning.data.models import ModelFamily, resolve_model
from finetuning.data.sources import S3Uri, is_s3_uri, s3_client
from finetuning.data.split import validation_indices
from finetuning.data.validate import validate_lines

__all__ = [
    "RVL_CDIP_CLASSES",
    "ImageDatasetError",
    "PrepareOptions",
    "PrepareResult",
    "default_system_prompt",
    "default_task_prompt",
    "prepare_images",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".webp", ".bmp"})
MANIFEST_NAME = "dataset_manifest.json"
# Longer-side cap for families whose documentation gives no pixel limit. RVL-CDIP scans
# are at most 1,000 pixels tall, so they pass unchanged; larger photos are shrunk, which
# keeps uploads small without losing what a classifier needs.
DEFAULT_MAX_IMAGE_SIDE = 2048
JPEG_QUALITY = 90

# The 16 classes of RVL-CDIP (label names as the Hugging Face copies spell them, including
# "advertissement") with a one-line description each, used by the default task prompt.
RVL_CDIP_CLASSES: dict[str, str] = {
    "letter": "formal correspondence addressed to a person or organisation",
    "form": "a structured document with fields, boxes or blanks to fill in",
    "email": "a printed electronic message with sender, recipient and subject headers",
    "handwritten": "a page written mostly by hand",
    "advertissement": "an advertisement or other promotional material",
    "scientific_report": "a technical or research report with findings and data",
    "scientific_publication": "a published scientific article or paper",
    "specification": "a technical or product specification",
    "file_folder": "a folder cover, tab or label used to organise files",
    "news_article": "a newspaper or magazine article",
    "budget": "a financial plan or statement with tables of numbers",
    "invoice": "a bill requesting payment for goods or services",
    "presentation": "slides or overhead transparencies",
    "questionnaire": "a survey with questions for someone to answer",
    "resume": "a curriculum vitae describing a person's education and work",
    "memo": "an internal memorandum with To, From and Subject lines",
}


class ImageDatasetError(ValueError):
    """The source or the options cannot produce a dataset."""


@dataclass
class PrepareOptions:
    samples_per_label: int = 100
    validation_split: float = 0.1
    seed: int = 42
    image_format: str = "png"  # "png" or "jpeg"
    max_image_side: int | None = None
    system_prompt: str | None = None
    task_prompt: str | None = None  # "{labels}" is replaced by the label list
    label_mapping: dict[str, str] | None = None
    s3_prefix: str | None = None  # for folder output: where the folder will be uploaded
    bucket_owner: str | None = None
    workers: int = 8
    split: str = "train"
    image_column: str = "image"
    label_column: str = "label"
    model_id: str = "amazon.nova-lite-v1:0:300k"


@dataclass
class StoredImage:
    label: str
    source: str
    key: str = ""
    sha256: str = ""
    width: int = 0
    height: int = 0
    bytes: int = 0
    stored: bool = False  # False: an identical object was already there
    error: str | None = None
    split: str = ""


@dataclass
class PrepareResult:
    output: str
    train_records: int
    validation_records: int
    labels: dict[str, dict[str, int]]
    images: list[StoredImage]
    failures: list[StoredImage]
    stored: int
    skipped_existing: int
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "train_records": self.train_records,
            "validation_records": self.validation_records,
            "labels": self.labels,
            "stored": self.stored,
            "skipped_existing": self.skipped_existing,
            "failures": [
                {"source": f.source, "label": f.label, "error": f.error} for f in self.failures
            ],
        }

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.output}: {self.train_records:,} training and {self.validation_records:,} "
            f"validation records; {self.stored:,} images stored, {self.skipped_existing:,} "
            "already present",
        ]
        for label, counts in self.labels.items():
            lines.append(
                f"  {label}: {counts['train']:,} train, {counts['validation']:,} validation"
                + (f", {counts['failed']:,} failed" if counts["failed"] else "")
            )
        for failure in self.failures:
            lines.append(f"{failure.source}: error: {failure.error}")
        if self.failures:
            lines.append(f"{len(self.failures):,} images failed and have no record")
        return lines


def default_system_prompt() -> str:
    return (
        "You are a document classification expert. You look at the image of one document "
        "page and decide which kind of document it is."
    )


def default_task_prompt(labels: list[str]) -> str:
    described = [
        f"- {label}: {RVL_CDIP_CLASSES[label]}" if label in RVL_CDIP_CLASSES else f"- {label}"
        for label in labels
    ]
    return (
        "Classify this document image into exactly one of these classes:\n"
        + "\n".join(described)
        + '\n\nAnswer with JSON only, in the form {"type": "<class>"}.'
    )


def prepare_images(
    source: str | os.PathLike[str],
    output: str,
    options: PrepareOptions | None = None,
    *,
    progress: bool = True,
    client: Any = None,
    sts_client: Any = None,
) -> PrepareResult:
    """Build the dataset; see the module docstring. Returns what was written.

    Raises:
        ImageDatasetError: unreadable source, no labels, bad options, or records that the
            target model's validator rejects (for example a reserved word in a prompt).
    """
    options = options or PrepareOptions()
    family = resolve_model(options.model_id)
    if not family.media.image_formats:
        raise ImageDatasetError(f"{family.display_name} is not trained on images")
    image_format = _check_format(options.image_format, family)
    store = _Store.for_output(output, client)
    location = _record_location(output, options.s3_prefix)
    owner = options.bucket_owner or (store.account_id(sts_client) if store.is_s3 else None)
    if owner is not None and not re.fullmatch(r"\d{12}", owner):
        raise ImageDatasetError(f"bucket owner {owner!r} is not a 12-digit AWS account id")
    max_side = options.max_image_side or family.media.max_image_side or DEFAULT_MAX_IMAGE_SIDE

    items, available = _sample(_load_source(Path(source), options), options)
    mapping = options.label_mapping or {}
    jobs = [
        StoredImage(label=str(mapping.get(label, label)), source=item_id)
        for label, item_id, _ in items
    ]
    loaders = [loader for _, _, loader in items]

    def work(index: int) -> StoredImage:
        image = jobs[index]
        try:
            data, width, height = _normalize(loaders[index](), image_format, max_side, family)
        except Exception as exc:  # any decoding failure is reported per image
            image.error = f"cannot read or convert the image: {exc}"
            return image
        image.sha256 = hashlib.sha256(data).hexdigest()
        image.width, image.height, image.bytes = width, height, len(data)
        image.key = f"images/{_safe(image.label)}/{image.sha256[:32]}.{_EXTENSIONS[image_format]}"
        try:
            image.stored = store.put_if_changed(image.key, data, image.sha256, image_format)
        except Exception as exc:  # a failed upload is counted, not fatal
            image.error = f"cannot store {store.describe(image.key)}: {exc}"
        return image

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        results = list(_progress(pool.map(work, range(len(jobs))), len(jobs), progress))

    stored = [image for image in results if image.error is None]
    failures = [image for image in results if image.error is not None]
    if not stored:
        raise ImageDatasetError(
            f"no image could be prepared from {source}"
            + (f"; first failure: {failures[0].source}: {failures[0].error}" if failures else "")
        )
    labels = sorted({image.label for image in stored})
    system_prompt = options.system_prompt or default_system_prompt()
    task_prompt = (options.task_prompt or default_task_prompt(labels)).replace(
        "{labels}", ", ".join(labels)
    )
    records = [
        _record(image, image_format, location, owner, system_prompt, task_prompt)
        for image in stored
    ]
    chosen = validation_indices(
        len(records), options.validation_split, options.seed, [image.label for image in stored]
    )
    train_lines, validation_lines = [], []
    for index, (image, record) in enumerate(zip(stored, records, strict=True)):
        image.split = "validation" if index in chosen else "train"
        line = json.dumps(record, ensure_ascii=False).encode() + b"\n"
        (validation_lines if index in chosen else train_lines).append(line)

    dataset_uri = str(S3Uri.parse(location.rstrip("/") + "/train.jsonl"))
    _check_records(train_lines, validation_lines, options.model_id, dataset_uri)

    label_counts = {
        label: {"available": available.get(label, 0), "train": 0, "validation": 0, "failed": 0}
        for label in sorted({image.label for image in results})
    }
    for image in results:
        label_counts[image.label]["failed" if image.error else image.split] += 1
    train_bytes, validation_bytes = b"".join(train_lines), b"".join(validation_lines)
    manifest = {
        "created_by": "finetune data prepare-images",
        "version": __version__,
        "source": str(source),
        "output": output,
        "records_location": location,
        "model_id": options.model_id,
        "format": BEDROCK_SCHEMA_VERSION,
        "seed": options.seed,
        "samples_per_label": options.samples_per_label,
        "validation_split": options.validation_split,
        "image_format": image_format,
        "max_image_side": max_side,
        "labels": label_counts,
        "files": {
            "train.jsonl": _file_entry(train_bytes, len(train_lines)),
            "validation.jsonl": _file_entry(validation_bytes, len(validation_lines)),
        },
        "images": [_image_entry(image) for image in stored],
        "failures": [
            {"source": image.source, "label": image.label, "error": image.error}
            for image in failures
        ],
        "uploads": {
            "stored": sum(image.stored for image in stored),
            "skipped_existing": sum(not image.stored for image in stored),
        },
    }
    # Records go out only now, after every image they reference is stored.
    store.put("train.jsonl", train_bytes, "application/jsonl")
    store.put("validation.jsonl", validation_bytes, "application/jsonl")
    store.put(
        MANIFEST_NAME,
        json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n",
        "application/json",
    )
    return PrepareResult(
        output=output,
        train_records=len(train_lines),
        validation_records=len(validation_lines),
        labels={
            label: {k: v for k, v in counts.items() if k != "available"}
            for label, counts in label_counts.items()
        },
        images=stored,
        failures=failures,
        stored=manifest["uploads"]["stored"],
        skipped_existing=manifest["uploads"]["skipped_existing"],
        manifest=manifest,
    )


# -- sources -------------------------------------------------------------------------------

# One candidate image: (label, stable item id, a function that opens it as a PIL image).
_Item = tuple[str, str, Callable[[], Any]]


def _load_source(root: Path, options: PrepareOptions) -> Iterator[_Item]:
    if not root.exists():
        raise ImageDatasetError(f"{root}: no such file or folder")
    if root.is_dir() and any(
        (root / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json")
    ):
        return _from_saved_dataset(root, options)
    if root.is_dir():
        return _from_folder(root)
    raise ImageDatasetError(
        f"{root}: expected a folder of <label>/ subfolders or a dataset saved with save_to_disk"
    )


def _from_folder(root: Path) -> Iterator[_Item]:
    labels = sorted(path for path in root.iterdir() if path.is_dir())
    if not labels:
        raise ImageDatasetError(f"{root}: no <label>/ subfolders with images")
    for label_dir in labels:
        for path in sorted(label_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                yield label_dir.name, path.relative_to(root).as_posix(), _file_opener(path)


def _file_opener(path: Path) -> Callable[[], Any]:
    def open_image() -> Any:
        from PIL import Image

        return Image.open(path)

    return open_image


def _from_saved_dataset(root: Path, options: PrepareOptions) -> Iterator[_Item]:
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(str(root))
    if isinstance(dataset, DatasetDict):
        if options.split not in dataset:
            raise ImageDatasetError(
                f"{root}: no split {options.split!r}; splits: {', '.join(dataset)}"
            )
        dataset = dataset[options.split]
    for column in (options.image_column, options.label_column):
        if column not in dataset.column_names:
            raise ImageDatasetError(
                f"{root}: no column {column!r}; columns: {', '.join(dataset.column_names)}"
            )
    feature = dataset.features[options.label_column]
    names = getattr(feature, "names", None)
    labels = dataset[options.label_column]  # labels only: images are decoded when needed
    for index, value in enumerate(labels):
        label = names[value] if names is not None and isinstance(value, int) else str(value)
        yield label, f"{options.split}[{index}]", _row_opener(dataset, options.image_column, index)


def _row_opener(dataset: Any, column: str, index: int) -> Callable[[], Any]:
    return lambda: dataset[index][column]


def _sample(items: Iterator[_Item], options: PrepareOptions) -> tuple[list[_Item], dict[str, int]]:
    """The ``samples_per_label`` lowest-ranked items of each label, in a stable order."""
    by_label: dict[str, list[tuple[bytes, _Item]]] = {}
    for item in items:
        label, item_id, _ = item
        rank = hashlib.sha256(f"{options.seed}:{label}:{item_id}".encode()).digest()
        by_label.setdefault(label, []).append((rank, item))
    if not by_label:
        raise ImageDatasetError("the source has no images")
    chosen: list[_Item] = []
    for label in sorted(by_label):
        ranked = sorted(by_label[label], key=lambda pair: pair[0])
        picked = sorted(
            (item for _, item in ranked[: options.samples_per_label]), key=lambda i: i[1]
        )
        chosen.extend(picked)
    return chosen, {label: len(entries) for label, entries in by_label.items()}


# -- images --------------------------------------------------------------------------------

_EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


def _check_format(image_format: str, family: ModelFamily) -> str:
    fmt = image_format.lower().replace("jpg", "jpeg")
    if fmt not in _EXTENSIONS:
        raise ImageDatasetError(f"image format {image_format!r}: expected png or jpeg")
    if fmt not in family.media.image_formats:
        raise ImageDatasetError(
            f"{family.display_name} does not take {fmt} images "
            f"({', '.join(sorted(family.media.image_formats))})"
        )
    return fmt


def _normalize(image: Any, fmt: str, max_side: int, family: ModelFamily) -> tuple[bytes, int, int]:
    """First frame, RGB or greyscale, longer side at most ``max_side``, encoded as ``fmt``."""
    from PIL import Image

    with image:
        image.seek(0)  # multi-page TIFFs and animated GIFs: the first frame
        mode = image.mode
        if mode not in ("RGB", "L"):
            # 1-bit scans and 16-bit greys become 8-bit grey; everything else RGB.
            image = image.convert("L" if mode in ("1", "I;16", "I;16B", "I", "F", "LA") else "RGB")
        else:
            image = image.copy()
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    width, height = image.size
    minimum = family.media.min_image_side
    if minimum is not None and min(width, height) < minimum:
        raise ImageDatasetError(
            f"{width}x{height} pixels is smaller than the {minimum} pixels a side that "
            f"{family.display_name} needs"
        )
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    data = buffer.getvalue()
    limit = family.media.max_image_bytes
    if limit is not None and len(data) > limit:
        raise ImageDatasetError(
            f"{len(data):,} bytes after conversion, more than the {limit:,} that "
            f"{family.display_name} accepts; use --image-format jpeg or --max-image-side"
        )
    return data, width, height


# -- records -------------------------------------------------------------------------------


def _record_location(output: str, s3_prefix: str | None) -> str:
    """The s3:// prefix that records point at: the output itself, or where it will go."""
    if is_s3_uri(output):
        if s3_prefix and s3_prefix.rstrip("/") != output.rstrip("/"):
            raise ImageDatasetError("--s3-prefix applies to folder output only")
        S3Uri.parse(output, require_key=False)
        return output.rstrip("/")
    if not s3_prefix:
        raise ImageDatasetError(
            "records must reference the images in S3: pass --s3-prefix s3://bucket/prefix "
            "(where this folder will be uploaded), or write straight to an s3:// output"
        )
    S3Uri.parse(s3_prefix, require_key=False)
    return s3_prefix.rstrip("/")


def _record(
    image: StoredImage,
    fmt: str,
    location: str,
    owner: str | None,
    system_prompt: str,
    task_prompt: str,
) -> dict:
    s3_location: dict[str, str] = {"uri": f"{location}/{image.key}"}
    if owner:
        s3_location["bucketOwner"] = owner
    return {
        "schemaVersion": BEDROCK_SCHEMA_VERSION,
        "system": [{"text": system_prompt}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": task_prompt},
                    {"image": {"format": fmt, "source": {"s3Location": s3_location}}},
                ],
            },
            {"role": "assistant", "content": [{"text": json.dumps({"type": image.label})}]},
        ],
    }


def _check_records(
    train: list[bytes], validation: list[bytes], model_id: str, dataset_uri: str
) -> None:
    """Run the validator on the records before anything references them."""
    for name, lines, role in (
        ("train.jsonl", train, "train"),
        ("validation.jsonl", validation, "validation"),
    ):
        if not lines:
            continue
        report = validate_lines(lines, model_id, path=name, role=role, dataset_uri=dataset_uri)
        errors = [
            problem.format(name)
            for problem in report.problems
            if problem.severity == "error" and problem.code != "record-count"
        ]
        if errors:
            raise ImageDatasetError(
                "the generated records fail validation:\n" + "\n".join(errors[:10])
            )


def _safe(label: str) -> str:
    """A label as an S3 key segment of letters, digits, '_', '-' and '.' only."""
    return re.sub(r"[^\w\-.]", "_", label, flags=re.ASCII) or "_"


def _file_entry(data: bytes, records: int) -> dict[str, Any]:
    return {"records": records, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _image_entry(image: StoredImage) -> dict[str, Any]:
    entry = asdict(image)
    entry.pop("error")
    entry.pop("stored")
    return entry


def _progress(iterable: Iterator[StoredImage], total: int, enabled: bool) -> Iterator[StoredImage]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc="images", unit="img")


# -- storage -------------------------------------------------------------------------------


class _Store:
    """A folder or an S3 prefix with the few operations preparation needs."""

    def __init__(self, *, root: Path | None = None, uri: S3Uri | None = None, client: Any = None):
        self.root = root
        self.uri = uri
        self.client = client

    @classmethod
    def for_output(cls, output: str, client: Any) -> _Store:
        if is_s3_uri(output):
            return cls(uri=S3Uri.parse(output, require_key=False), client=s3_client(client))
        root = Path(output)
        if root.exists() and not root.is_dir():
            raise ImageDatasetError(f"{output}: exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root=root)

    @property
    def is_s3(self) -> bool:
        return self.uri is not None

    def _key(self, name: str) -> str:
        assert self.uri is not None
        prefix = self.uri.key.rstrip("/")
        return f"{prefix}/{name}" if prefix else name

    def describe(self, name: str) -> str:
        if self.uri is not None:
            return f"s3://{self.uri.bucket}/{self._key(name)}"
        assert self.root is not None
        return str(self.root / name)

    def account_id(self, sts_client: Any) -> str | None:
        """The caller's account, written as bucketOwner; None when STS cannot tell."""
        try:
            if sts_client is None:
                import boto3

                sts_client = boto3.client("sts")
            return str(sts_client.get_caller_identity()["Account"])
        except Exception:  # bucketOwner is optional; records work without it
            return None

    def put_if_changed(self, name: str, data: bytes, sha256: str, fmt: str) -> bool:
        """Store unless an object with the same content is there; True when written."""
        if self.uri is not None:
            key = self._key(name)
            try:
                head = self.client.head_object(Bucket=self.uri.bucket, Key=key)
                if head.get("Metadata", {}).get("sha256") == sha256:
                    return False
            except self.client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                    "404",
                    "NoSuchKey",
                    "NotFound",
                ):
                    raise
            self.client.put_object(
                Bucket=self.uri.bucket,
                Key=key,
                Body=data,
                ContentType=_CONTENT_TYPES[fmt],
                Metadata={"sha256": sha256},
            )
            return True
        assert self.root is not None
        path = self.root / name
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return False
        _write_atomically(path, data)
        return True

    def put(self, name: str, data: bytes, content_type: str) -> None:
        if self.uri is not None:
            self.client.put_object(
                Bucket=self.uri.bucket, Key=self._key(name), Body=data, ContentType=content_type
            )
            return
        assert self.root is not None
        _write_atomically(self.root / name, data)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, umask_mode())  # mkstemp makes 0600; the output follows the umask
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

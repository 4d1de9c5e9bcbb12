"""prepare-images: sampling, normalization, records, manifest, folder and S3 (moto) output."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from finetuning.data.images import (
    ImageDatasetError,
    PrepareOptions,
    default_task_prompt,
    prepare_images,
)
from finetuning.data.validate import validate_path
from tests.support.records import NOVA

PREFIX = "s3://data-bucket/rvl"


def make_folder(
    root: Path, per_label: int = 5, labels: tuple[str, ...] = ("invoice", "memo", "advertissement")
) -> Path:
    """Images of several kinds: PNG, JPEG, 1-bit and multi-page TIFF, an RGBA PNG."""
    for label_index, label in enumerate(labels):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(per_label):
            color = (40 * label_index, 20 * i, 100)
            kind = i % 4
            if kind == 0:
                Image.new("RGB", (64, 80), color).save(folder / f"p{i}.png")
            elif kind == 1:
                Image.new("RGB", (80, 64), color).save(folder / f"p{i}.jpg", quality=95)
            elif kind == 2:
                Image.new("1", (90, 120), 1).save(folder / f"p{i}.tif")
            else:
                frames = [Image.new("L", (70, 70), 30 * j + i) for j in range(3)]
                frames[0].save(folder / f"p{i}.tiff", save_all=True, append_images=frames[1:])
        (folder / "notes.txt").write_text("not an image")
    return root


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_folder_to_folder(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src")
    out = tmp_path / "out"
    result = prepare_images(
        source,
        str(out),
        PrepareOptions(
            samples_per_label=4,
            validation_split=0.25,
            s3_prefix=PREFIX,
            bucket_owner="123456789012",
        ),
        progress=False,
    )
    assert (result.train_records, result.validation_records) == (9, 3)
    assert result.labels == {
        label: {"train": 3, "validation": 1, "failed": 0}
        for label in ("advertissement", "invoice", "memo")
    }
    assert not result.failures and result.stored == 12

    train = lines_of(out / "train.jsonl")
    record = train[0]
    image = record["messages"][0]["content"][1]["image"]
    assert image["format"] == "png"
    location = image["source"]["s3Location"]
    assert location["bucketOwner"] == "123456789012"
    assert location["uri"].startswith(f"{PREFIX}/images/")
    key = location["uri"].removeprefix(PREFIX + "/")
    stored = Image.open(out / key)
    assert stored.format == "PNG" and stored.mode in ("RGB", "L")
    assert json.loads(record["messages"][1]["content"][0]["text"])["type"] in result.labels
    assert "advertissement: an advertisement" in record["messages"][0]["content"][0]["text"]

    manifest = json.loads((out / "dataset_manifest.json").read_text())
    assert manifest["labels"]["invoice"] == {
        "available": 5,
        "train": 3,
        "validation": 1,
        "failed": 0,
    }
    assert manifest["files"]["train.jsonl"]["records"] == 9
    assert len(manifest["images"]) == 12 and all(len(i["sha256"]) == 64 for i in manifest["images"])
    # The folder validates for Nova once it sits at the prefix its records point to.
    report = validate_path(out / "train.jsonl", NOVA, dataset_uri=f"{PREFIX}/train.jsonl")
    assert report.ok and report.records == 9 and report.problems == []


def test_sampling_is_reproducible_and_seeded(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", per_label=8)
    options = PrepareOptions(samples_per_label=3, s3_prefix=PREFIX)
    first = prepare_images(source, str(tmp_path / "a"), options, progress=False)
    second = prepare_images(source, str(tmp_path / "b"), options, progress=False)
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (
        tmp_path / "b" / "train.jsonl"
    ).read_bytes()
    assert (tmp_path / "a" / "validation.jsonl").read_bytes() == (
        tmp_path / "b" / "validation.jsonl"
    ).read_bytes()
    assert [i.source for i in first.images] == [i.source for i in second.images]
    other = prepare_images(
        source,
        str(tmp_path / "c"),
        PrepareOptions(samples_per_label=3, s3_prefix=PREFIX, seed=7),
        progress=False,
    )
    assert [i.source for i in other.images] != [i.source for i in first.images]


def test_resize_jpeg_and_grey_modes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "photo").mkdir(parents=True)
    Image.new("RGBA", (3000, 1500), (1, 2, 3, 128)).save(source / "photo" / "big.png")
    Image.new("I;16", (50, 40)).save(source / "photo" / "deep.png")
    result = prepare_images(
        source,
        str(tmp_path / "out"),
        PrepareOptions(
            image_format="jpeg", max_image_side=1000, s3_prefix=PREFIX, validation_split=0.5
        ),
        progress=False,
    )
    sizes = sorted((i.width, i.height) for i in result.images)
    assert sizes == [(50, 40), (1000, 500)]
    for image in result.images:
        assert image.key.endswith(".jpg")
        assert Image.open(tmp_path / "out" / image.key).format == "JPEG"


def test_broken_images_are_counted_not_dropped(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", per_label=3, labels=("memo",))
    (source / "memo" / "broken.png").write_bytes(b"\x89PNG not really")
    result = prepare_images(
        source,
        str(tmp_path / "out"),
        PrepareOptions(s3_prefix=PREFIX, validation_split=0.34),
        progress=False,
    )
    assert [f.source for f in result.failures] == ["memo/broken.png"]
    assert "cannot read or convert the image" in result.failures[0].error
    assert result.labels["memo"]["failed"] == 1
    manifest = json.loads((tmp_path / "out" / "dataset_manifest.json").read_text())
    assert manifest["failures"][0]["source"] == "memo/broken.png"
    referenced = {
        r["messages"][0]["content"][1]["image"]["source"]["s3Location"]["uri"]
        for r in lines_of(tmp_path / "out" / "train.jsonl")
        + lines_of(tmp_path / "out" / "validation.jsonl")
    }
    assert len(referenced) == 3 and all("broken" not in uri for uri in referenced)
    assert any("1 images failed" in line for line in result.summary_lines())


def test_label_mapping_and_custom_prompts(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", per_label=2)
    result = prepare_images(
        source,
        str(tmp_path / "out"),
        PrepareOptions(
            s3_prefix=PREFIX,
            validation_split=0.5,
            label_mapping={"advertissement": "advertisement"},
            system_prompt="Classify documents.",
            task_prompt="Which of {labels} is this?",
        ),
        progress=False,
    )
    assert set(result.labels) == {"advertisement", "invoice", "memo"}
    record = lines_of(tmp_path / "out" / "train.jsonl")[0]
    assert record["system"] == [{"text": "Classify documents."}]
    assert (
        record["messages"][0]["content"][0]["text"]
        == "Which of advertisement, invoice, memo is this?"
    )


def test_prompts_are_validated_before_anything_references_them(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", per_label=2)
    with pytest.raises(ImageDatasetError, match="'User:' is a reserved keyword"):
        prepare_images(
            source,
            str(tmp_path / "out"),
            PrepareOptions(s3_prefix=PREFIX, task_prompt="User: classify it"),
            progress=False,
        )
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_bad_options(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", per_label=1)
    with pytest.raises(ImageDatasetError, match="pass --s3-prefix"):
        prepare_images(source, str(tmp_path / "out"), PrepareOptions(), progress=False)
    with pytest.raises(ImageDatasetError, match="not trained on images"):
        prepare_images(
            source,
            str(tmp_path / "out"),
            PrepareOptions(s3_prefix=PREFIX, model_id="amazon.nova-micro-v1:0:128k"),
            progress=False,
        )
    with pytest.raises(ImageDatasetError, match="no such file"):
        prepare_images(
            tmp_path / "missing",
            str(tmp_path / "out"),
            PrepareOptions(s3_prefix=PREFIX),
            progress=False,
        )


def test_default_task_prompt_describes_rvl_cdip_classes() -> None:
    prompt = default_task_prompt(["invoice", "custom_kind"])
    assert "- invoice: a bill requesting payment" in prompt
    assert "- custom_kind\n" in prompt
    assert '{"type": "<class>"}' in prompt


def test_saved_hugging_face_dataset(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features
    from datasets import Image as ImageFeature

    images = [Image.new("L", (40 + i, 50), 10 * i) for i in range(6)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["letter", "form"])})
    dataset = Dataset.from_dict({"image": images, "label": [0, 1, 0, 1, 0, 1]}, features=features)
    DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "rvl"))
    result = prepare_images(
        tmp_path / "rvl",
        str(tmp_path / "out"),
        PrepareOptions(samples_per_label=2, s3_prefix=PREFIX, validation_split=0.5),
        progress=False,
    )
    assert result.labels == {
        "form": {"train": 1, "validation": 1, "failed": 0},
        "letter": {"train": 1, "validation": 1, "failed": 0},
    }
    assert all(i.source.startswith("train[") for i in result.images)


def test_s3_output_uploads_once_and_skips_identical_objects(
    tmp_path: Path, fake_aws_credentials: None
) -> None:
    source = make_folder(tmp_path / "src", per_label=4)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data-bucket")
        sts = boto3.client("sts", region_name="us-east-1")
        options = PrepareOptions(samples_per_label=4, validation_split=0.25, workers=4)
        first = prepare_images(source, PREFIX, options, progress=False, client=s3, sts_client=sts)
        assert (first.stored, first.skipped_existing) == (12, 0)
        second = prepare_images(source, PREFIX, options, progress=False, client=s3, sts_client=sts)
        assert (second.stored, second.skipped_existing) == (0, 12)
        keys = {
            o["Key"] for o in s3.list_objects_v2(Bucket="data-bucket", Prefix="rvl/")["Contents"]
        }
        assert {"rvl/train.jsonl", "rvl/validation.jsonl", "rvl/dataset_manifest.json"} <= keys
        assert sum(k.startswith("rvl/images/") for k in keys) == 12
        head = s3.head_object(
            Bucket="data-bucket", Key=next(k for k in keys if k.startswith("rvl/images/"))
        )
        assert len(head["Metadata"]["sha256"]) == 64 and head["ContentType"] == "image/png"
        report = validate_path(f"{PREFIX}/train.jsonl", NOVA, s3_client=s3)
        assert report.ok and report.images == 9
        record = json.loads(
            s3.get_object(Bucket="data-bucket", Key="rvl/train.jsonl")["Body"]
            .read()
            .splitlines()[0]
        )
        owner = record["messages"][0]["content"][1]["image"]["source"]["s3Location"]["bucketOwner"]
        assert owner == sts.get_caller_identity()["Account"]


def test_upload_failures_are_counted(tmp_path: Path, fake_aws_credentials: None) -> None:
    source = make_folder(tmp_path / "src", per_label=2, labels=("memo",))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data-bucket")
        real_put = s3.put_object
        calls = {"n": 0}

        def flaky_put(**kwargs):
            if kwargs["Key"].startswith("rvl/images/"):
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("connection reset")
            return real_put(**kwargs)

        s3.put_object = flaky_put
        result = prepare_images(
            source,
            PREFIX,
            PrepareOptions(bucket_owner="123456789012", validation_split=0.5),
            progress=False,
            client=s3,
        )
    assert len(result.failures) == 1 and "connection reset" in result.failures[0].error
    assert result.train_records + result.validation_records == 1

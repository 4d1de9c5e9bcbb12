"""Inputs: JSONL test sets in three shapes, images, ground-truth matching and error messages."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from finetuning.evaluation.samples import (
    GroundTruth,
    ImagePart,
    SampleError,
    TextPart,
    image_samples,
    list_images,
    normalize_path,
    read_test_set,
)
from tests.support.evaluation import png_bytes


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_bedrock_conversation_record(tmp_path):
    record = {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You classify documents."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {
                        "image": {
                            "format": "png",
                            "source": {
                                "s3Location": {"uri": "s3://b/i.png", "bucketOwner": "123456789012"}
                            },
                        }
                    },
                ],
            },
            {"role": "assistant", "content": [{"text": '{"type": "invoice"}'}]},
        ],
    }
    (sample,) = read_test_set(write_jsonl(tmp_path / "test.jsonl", [record]))
    assert sample.sample_id == "test.jsonl:1"
    assert sample.system == "You classify documents."
    assert sample.reference == '{"type": "invoice"}'
    (turn,) = sample.turns
    assert turn.role == "user"
    assert turn.parts[0] == TextPart("What is this?")
    assert turn.parts[1] == ImagePart(
        format="png", s3_uri="s3://b/i.png", bucket_owner="123456789012"
    )
    assert sample.image_path == "s3://b/i.png"
    assert sample.has_images


def test_chat_and_prompt_completion_records_and_multi_turn(tmp_path):
    records = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris"},
            ]
        },
        {"prompt": "2+2=", "completion": " 4"},
    ]
    first, second = read_test_set(write_jsonl(tmp_path / "t.jsonl", records))
    assert first.system == "Be brief."
    assert [t.role for t in first.turns] == ["user", "assistant", "user"]
    assert first.reference == "Paris"
    assert second.turns[0].text == "2+2="
    assert second.reference == "4"
    assert second.system is None


def test_system_prompt_file_fills_records_without_one(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "completion": "c"}])
    (sample,) = read_test_set(path, system_prompt="From file")
    assert sample.system == "From file"


def test_inline_image_bytes(tmp_path):
    data = png_bytes()
    record = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "image": {
                            "format": "png",
                            "source": {"bytes": base64.b64encode(data).decode()},
                        }
                    }
                ],
            },
            {"role": "assistant", "content": [{"text": "letter"}]},
        ]
    }
    (sample,) = read_test_set(write_jsonl(tmp_path / "t.jsonl", [record]))
    assert sample.turns[0].parts[0].read_bytes() == data


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "t.jsonl: line 2: not valid JSON"),
        ("[1, 2]", "t.jsonl: line 2: expected a JSON object, got list"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "line 2: the last turn must be"),
        ('{"text": "x"}', "line 2: unknown record shape with keys ['text']"),
        (
            '{"messages": [{"role": "bot", "content": "q"}]}',
            "line 2: messages[0]: role: expected 'user', 'assistant' or 'system', got 'bot'",
        ),
        (
            '{"messages": [{"role": "user", "content": [{"image": {"format": "bmp"}}]},'
            ' {"role": "assistant", "content": "a"}]}',
            "line 2: messages[0]: content[0]: image.format: expected one of png, jpeg, gif, "
            "webp, got 'bmp'",
        ),
    ],
)
def test_test_set_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "p", "completion": "c"}\n' + line + "\n")
    with pytest.raises(SampleError) as info:
        read_test_set(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_empty_test_set(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n")
    with pytest.raises(SampleError, match="the test set has no records"):
        read_test_set(path)


def test_ground_truth_matches_normalized_relative_and_by_name(tmp_path, monkeypatch):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        (images / name).write_bytes(png_bytes())
    labels = tmp_path / "data" / "labels.json"
    labels.write_text(
        json.dumps(
            {
                str(images / "x" / ".." / "a.png"): "invoice",  # absolute, not normalized
                "images/b.png": "letter",  # relative to the labels file
                "elsewhere/c.png": "memo",  # only the file name matches
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    truth = GroundTruth.from_file(labels)
    assert truth.label_for(images / "a.png") == "invoice"
    assert truth.label_for(Path("data/images/b.png")) == "letter"
    assert truth.label_for(images / "c.png") == "memo"
    assert truth.labels == ["invoice", "letter", "memo"]
    assert len(truth) == 3


def test_ground_truth_errors(tmp_path):
    bad = tmp_path / "labels.json"
    bad.write_text('["a"]')
    with pytest.raises(SampleError, match="expected a JSON object mapping image paths"):
        GroundTruth.from_file(bad)
    bad.write_text('{"a.png": 3}')
    with pytest.raises(SampleError, match=r"entry 'a\.png': expected a non-empty label"):
        GroundTruth.from_file(bad)
    bad.write_text("{")
    with pytest.raises(SampleError, match="line 1: not valid JSON"):
        GroundTruth.from_file(bad)


def test_image_samples_from_directory(labelled_images):
    folder, truth = labelled_images
    (folder / "notes.txt").write_text("ignored")
    images = list_images(folder)
    assert [p.name for p in images] == [
        "invoice_0.png",
        "invoice_1.png",
        "letter_0.png",
        "letter_1.png",
        "memo_0.png",
        "memo_1.png",
    ]
    samples = image_samples(
        images, task_prompt="Classify.", system_prompt="sys", ground_truth=GroundTruth(truth)
    )
    assert [s.reference for s in samples] == [
        "invoice",
        "invoice",
        "letter",
        "letter",
        "memo",
        "memo",
    ]
    first = samples[0]
    assert first.sample_id == normalize_path(images[0])
    assert first.turns[0].parts[0] == TextPart("Classify.")
    assert first.turns[0].parts[1].format == "png"
    assert first.system == "sys"


def test_image_errors(tmp_path):
    with pytest.raises(SampleError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(SampleError, match="is not a directory"):
        list_images(tmp_path / "missing")
    bmp = tmp_path / "x.bmp"
    bmp.write_bytes(b"BM")
    with pytest.raises(SampleError, match=r"unsupported image type '\.bmp'"):
        image_samples([bmp], task_prompt="t", system_prompt=None)
    with pytest.raises(SampleError, match="image file not found"):
        image_samples([tmp_path / "gone.png"], task_prompt="t", system_prompt=None)


def test_normalize_path_is_absolute_and_case_normalized(tmp_path):
    assert normalize_path("a/../b.png", tmp_path) == os.path.normcase(str(tmp_path / "b.png"))

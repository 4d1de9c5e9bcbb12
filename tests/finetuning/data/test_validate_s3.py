"""Validation of S3 objects against moto, and the line reader's S3/local equivalence."""

from __future__ import annotations

import io

import boto3
import pytest
from moto import mock_aws

from finetuning.data import sources
from finetuning.data.validate import validate_path
from tests.support.records import NOVA, converse, image, jsonl

pytestmark = pytest.mark.usefixtures("fake_aws_credentials")


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        yield client


def put(client, key: str, lines: list[bytes]) -> str:
    client.put_object(Bucket="data-bucket", Key=key, Body=b"".join(lines))
    return f"s3://data-bucket/{key}"


def test_s3_object_is_validated_with_its_bucket_as_the_dataset_bucket(s3) -> None:
    good = [
        converse(user=[{"text": f"Q{i}?"}, image(f"s3://data-bucket/img/{i}.png")])
        for i in range(8)
    ]
    uri = put(s3, "train/train.jsonl", jsonl(*good))
    report = validate_path(uri, NOVA, s3_client=s3)
    assert report.ok and report.records == 8 and report.images == 8
    assert report.path == uri and report.bytes > 0

    elsewhere = converse(user=[{"text": "Q?"}, image("s3://other-bucket/x.png")])
    uri = put(s3, "train/bad.jsonl", jsonl(elsewhere, *good))
    report = validate_path(uri, NOVA, s3_client=s3)
    assert [(p.line, p.code) for p in report.problems] == [(1, "bucket")]


def test_s3_and_local_reads_report_the_same(s3, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "_READ_CHUNK", 7)  # many chunk boundaries inside lines
    lines = [*jsonl(*[converse(user=f"Q{i}?") for i in range(8)], ending=b"\r\n"), b"\n", b"{oops"]
    uri = put(s3, "mixed.jsonl", lines)
    local = tmp_path / "mixed.jsonl"
    local.write_bytes(b"".join(lines))
    from_s3 = validate_path(uri, NOVA, s3_client=s3)
    from_disk = validate_path(local, NOVA)
    assert [(p.line, p.code, p.message) for p in from_s3.problems] == [
        (p.line, p.code, p.message) for p in from_disk.problems
    ]
    assert (from_s3.records, from_s3.tokens, from_s3.bytes) == (
        from_disk.records,
        from_disk.tokens,
        from_disk.bytes,
    )


def test_missing_s3_object_raises(s3) -> None:
    with pytest.raises(s3.exceptions.NoSuchKey):
        validate_path("s3://data-bucket/nope.jsonl", NOVA, s3_client=s3)


def test_line_splitter_matches_file_reading() -> None:
    data = b'{"a": 1}\r\n\n{"b": 2}\n{"c": 3}'
    from_file = list(sources._read_lines(io.BytesIO(data)))
    for size in (1, 2, 3, 5, 64):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(sources._split_lines(iter(chunks))) == from_file

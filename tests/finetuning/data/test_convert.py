"""Format conversion: round trips, every input type, prompts, all-or-nothing writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from finetuning.data.convert import ConversionError, convert_file, convert_record
from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages
from finetuning.data.validate import validate_path
from tests.support.records import CLAUDE, NOVA, TITAN, claude, converse, image, prompt_completion

ALPACA = {"instruction": "Translate to French", "input": "cat", "output": "chat"}


@pytest.mark.parametrize(
    "record",
    [prompt_completion(), claude(), converse(), converse(system=None)],
    ids=["prompt-completion", "messages", "converse", "converse-no-system"],
)
@pytest.mark.parametrize("via", ["messages", "bedrock-conversation"])
def test_round_trip_through_chat_formats_keeps_every_turn(record: dict, via: str) -> None:
    source = detect_format(record)
    there = convert_record(record, via)
    back = convert_record(there, source)
    assert back == record
    assert to_messages(there, via if via == "messages" else DataFormat.BEDROCK_CONVERSATION) == (
        to_messages(record, source)
    )


def test_converse_with_images_round_trips_through_messages() -> None:
    record = converse(
        user=[{"text": "What is it?"}, image("s3://bucket/a.png", bucketOwner="123456789012")]
    )
    there = convert_record(record, "messages")
    assert there["messages"][0]["content"][1] == {
        "type": "image",
        "format": "png",
        "source": {"s3Location": {"uri": "s3://bucket/a.png", "bucketOwner": "123456789012"}},
    }
    assert convert_record(there, "bedrock-conversation") == record


def test_alpaca_to_every_format() -> None:
    assert convert_record(ALPACA, "prompt-completion") == {
        "prompt": "Translate to French\n\ncat",
        "completion": "chat",
    }
    assert convert_record(ALPACA, "bedrock-conversation") == converse(
        user="Translate to French\n\ncat", assistant="chat", system=None
    )
    assert convert_record(ALPACA, "messages") == {
        "messages": [
            {"role": "user", "content": "Translate to French\n\ncat"},
            {"role": "assistant", "content": "chat"},
        ]
    }


def test_system_and_task_prompts() -> None:
    converted = convert_record(
        prompt_completion("Invoice 42 total $10", "10"),
        "bedrock-conversation",
        system_prompt="You extract totals.",
        task_prompt="Extract the total.",
    )
    assert converted["system"] == [{"text": "You extract totals."}]
    assert converted["messages"][0]["content"] == [
        {"text": "Extract the total.\n\nInvoice 42 total $10"}
    ]
    # A system prompt replaces the record's own; into prompt-completion it leads the prompt.
    pc = convert_record(claude(system="old"), "prompt-completion", system_prompt="new")
    assert pc == {"prompt": "new\n\nHello?", "completion": "Hi."}


@pytest.mark.parametrize(
    ("record", "to", "fragment"),
    [
        (
            claude(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
            "prompt-completion",
            "this record has 4 turns",
        ),
        (converse(user=[{"text": "x"}, image()]), "prompt-completion", "contains image"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                    },
                    {"role": "assistant", "content": "a"},
                ]
            },
            "bedrock-conversation",
            "Bedrock reads images from S3 only",
        ),
        ({"question": "q"}, "messages", "matches no known format"),
    ],
)
def test_records_that_cannot_convert(record: dict, to: str, fragment: str) -> None:
    with pytest.raises(FormatError, match=fragment):
        convert_record(record, to)


def test_media_format_is_taken_from_the_file_extension() -> None:
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "url": "s3://b1b/x/photo.JPG"}]},
            {"role": "assistant", "content": "a cat"},
        ]
    }
    converted = convert_record(record, "bedrock-conversation")
    assert converted["messages"][0]["content"][0]["image"]["format"] == "jpeg"


@settings(max_examples=40, deadline=None)
@given(
    prompt=st.text(min_size=1, max_size=40),
    completion=st.text(min_size=1, max_size=40),
    system=st.none() | st.text(min_size=1, max_size=20),
)
def test_round_trip_property(prompt: str, completion: str, system: str | None) -> None:
    record = claude(("user", prompt), ("assistant", completion), system=system)
    for via in ("bedrock-conversation", "messages"):
        assert convert_record(convert_record(record, via), "messages") == record
    pc = convert_record(record, "prompt-completion")
    assert pc["completion"] == completion and pc["prompt"].endswith(prompt)


# -- files ---------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_to_nova_output_validates(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "pc.jsonl", [prompt_completion(f"Question {i}?", "Answer.") for i in range(10)]
    )
    result = convert_file(source, tmp_path / "nova.jsonl", to="bedrock-conversation")
    assert (result.records, result.format) == (10, "bedrock-conversation-2024")
    assert result.source_formats == {"prompt-completion": 10}
    assert validate_path(tmp_path / "nova.jsonl", NOVA).ok


def test_csv_input_with_renamed_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerow(["What is 2+2?", "4"])
        writer.writerow(["Multi\nline?", 'yes, "quoted"'])
    result = convert_file(
        path,
        tmp_path / "out.jsonl",
        to="prompt-completion",
        field_map={"question": "prompt", "answer": "completion"},
    )
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert result.records == 2
    assert lines[1] == {"prompt": "Multi\nline?", "completion": 'yes, "quoted"'}


def test_csv_messages_column_holding_json(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["system", "messages"])
        writer.writerow(["Be brief.", json.dumps(claude(system=None)["messages"])])
    convert_file(path, tmp_path / "out.jsonl", to="messages")
    assert json.loads((tmp_path / "out.jsonl").read_text()) == claude()


def test_parquet_input(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "instruction": ["Say hi", "Say bye"],
            "input": ["", "politely"],
            "output": ["hi", "goodbye"],
        }
    )
    pq.write_table(table, tmp_path / "alpaca.parquet")
    result = convert_file(
        tmp_path / "alpaca.parquet", tmp_path / "out.jsonl", to="bedrock-conversation"
    )
    assert result.records == 2 and result.source_formats == {"alpaca": 2}
    second = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[1])
    assert second["messages"][0]["content"] == [{"text": "Say bye\n\npolitely"}]


def test_json_array_input(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text(
        json.dumps([prompt_completion(), prompt_completion("x", "y")])
    )
    assert convert_file(tmp_path / "data.json", tmp_path / "out.jsonl", to="messages").records == 2


def test_nothing_is_written_when_a_record_fails(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [prompt_completion(), {"question": "?"}, prompt_completion("a", "b")],
    )
    (tmp_path / "in2.jsonl").write_bytes(source.read_bytes() + b"{broken\n")
    with pytest.raises(ConversionError) as excinfo:
        convert_file(tmp_path / "in2.jsonl", tmp_path / "out.jsonl", to="messages")
    assert "2 of 4 records could not be converted; nothing was written" in str(excinfo.value)
    assert excinfo.value.problems[0].startswith(
        f'{tmp_path / "in2.jsonl"}:2: error: found "question"'
    )
    assert excinfo.value.problems[1].startswith(
        f"{tmp_path / 'in2.jsonl'}:4: error: not valid JSON"
    )
    assert not (tmp_path / "out.jsonl").exists()
    assert not list(tmp_path.glob(".convert-*"))


def test_existing_output_and_input_as_output_are_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", [prompt_completion()])
    with pytest.raises(FileExistsError, match="is the input"):
        convert_file(source, source, to="messages", overwrite=True)
    (tmp_path / "b.jsonl").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"):
        convert_file(source, tmp_path / "b.jsonl", to="messages")
    assert (tmp_path / "b.jsonl").read_text() == "keep"
    convert_file(source, tmp_path / "b.jsonl", to="messages", overwrite=True)
    assert validate_path(tmp_path / "b.jsonl", CLAUDE).records == 1


def test_s3_output(tmp_path: Path, fake_aws_credentials: None) -> None:
    source = write_jsonl(tmp_path / "pc.jsonl", [prompt_completion()])
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="out-bucket")
        convert_file(
            source, "s3://out-bucket/data/titan.jsonl", to="prompt-completion", client=client
        )
        body = client.get_object(Bucket="out-bucket", Key="data/titan.jsonl")["Body"].read()
    assert json.loads(body) == prompt_completion()
    assert validate_path(source, TITAN).ok

"""Reading data files: one format per file, conversion, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.training import write_jsonl
from training_scripts.data import DataError, load_data, split_validation

PROMPT_COMPLETION = {"prompt": "Q: 2+2?\nA:", "completion": " 4"}
MESSAGES = {
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ],
}
BEDROCK = {
    "schemaVersion": "bedrock-conversation-2024",
    "system": [{"text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]},
        {"role": "assistant", "content": [{"text": "Hello."}]},
    ],
}
ALPACA = {"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"}


@pytest.mark.parametrize(
    ("record", "fmt", "roles"),
    [
        (PROMPT_COMPLETION, "prompt-completion", ["user", "assistant"]),
        (MESSAGES, "messages", ["system", "user", "assistant"]),
        (BEDROCK, "bedrock-conversation-2024", ["system", "user", "assistant"]),
        (ALPACA, "alpaca", ["user", "assistant"]),
    ],
)
def test_each_format_is_detected_and_converted(
    tmp_path: Path, record: dict, fmt: str, roles: list[str]
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [record, record])
    loaded = load_data(str(path), "--train_file", "auto")
    assert loaded.files == {str(path): fmt}
    assert len(loaded.conversations) == 2
    conversation = loaded.conversations[0]
    assert [m["role"] for m in conversation.messages] == roles
    assert all(isinstance(m["content"], str) for m in conversation.messages)
    assert conversation.source == f"{path} line 1"
    assert (conversation.plain is not None) == (fmt == "prompt-completion")
    assert len(loaded.sha256[str(path)]) == 64


def test_bedrock_text_parts_are_joined(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [BEDROCK])
    (conversation,) = load_data(str(path), "--train_file", "auto").conversations
    assert conversation.messages[1]["content"] == "Hi\nthere"
    assert conversation.messages[0]["content"] == "Be brief."


def test_a_directory_mixes_formats_file_by_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [MESSAGES])
    write_jsonl(tmp_path / "b.jsonl", [ALPACA, ALPACA])
    (tmp_path / "c.json").write_text(json.dumps([PROMPT_COMPLETION]))
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_data(str(tmp_path), "--train_file", "auto")
    assert list(loaded.files.values()) == ["messages", "alpaca", "prompt-completion"]
    assert len(loaded.conversations) == 4


def test_a_forced_format_is_applied_to_every_record(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [MESSAGES, PROMPT_COMPLETION])
    with pytest.raises(DataError) as caught:
        load_data(str(path), "--train_file", "messages")
    assert f"{path} line 2: not a valid messages record" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--train_file .*nope\.jsonl: no such file or directory"):
        load_data(str(tmp_path / "nope.jsonl"), "--train_file", "auto")


def test_empty_file_and_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty.jsonl: no records \(the file is empty\)"):
        load_data(str(empty), "--train_file", "auto")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match="directory has no data files"):
        load_data(str(folder), "--validation_file", "auto")


def test_unknown_format_lists_what_each_format_needs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"question": "a", "answer": "b"}])
    with pytest.raises(DataError) as caught:
        load_data(str(path), "--train_file", "auto")
    message = str(caught.value)
    assert f"{path} line 1: unknown data format" in message
    assert '"question", "answer"' in message and "prompt-completion needs" in message


def test_unknown_forced_format() -> None:
    with pytest.raises(DataError, match="--data_format must be one of auto, prompt-completion"):
        load_data("unused", "--train_file", "chatml")


def test_record_without_an_assistant_turn(tmp_path: Path) -> None:
    record = {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "?"}]}
    path = write_jsonl(tmp_path / "train.jsonl", [MESSAGES, record])
    with pytest.raises(DataError) as caught:
        load_data(str(path), "--train_file", "auto")
    assert str(caught.value) == (
        f"{path} line 2: no assistant turn to learn from (roles found: user, user)"
    )


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(MESSAGES) + "\n{not json}\n")
    with pytest.raises(DataError, match=r"train.jsonl line 2: invalid JSON: .*\(column 2\)"):
        load_data(str(path), "--train_file", "auto")


def test_image_parts_are_refused_for_text_models(tmp_path: Path) -> None:
    record = json.loads(json.dumps(BEDROCK))
    record["messages"][0]["content"].append(
        {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k.png"}}}}
    )
    path = write_jsonl(tmp_path / "train.jsonl", [record])
    with pytest.raises(DataError) as caught:
        load_data(str(path), "--train_file", "auto")
    assert f"{path} line 1 user turn has image content" in str(caught.value)
    assert "text-only" in str(caught.value)


def test_validation_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    records = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(50)]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    conversations = load_data(str(path), "--train_file", "auto").conversations
    train, validation = split_validation(conversations, 0.1)
    again_train, again_validation = split_validation(conversations, 0.1)
    assert len(validation) == 5 and len(train) == 45
    assert [c.source for c in validation] == [c.source for c in again_validation]
    assert {c.source for c in train}.isdisjoint(c.source for c in validation)
    assert [c.source for c in train] == [c.source for c in again_train]
    with pytest.raises(DataError, match="leaves no training records"):
        split_validation(conversations[:1], 0.5)


def test_validation_split_holds_out_what_finetune_data_split_would() -> None:
    from finetuning.data.split import split_lines

    lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}).encode() for i in range(50)]
    _, toolkit_validation = split_lines(lines, 0.2, seed=42)
    train, validation = split_validation(list(range(50)), 0.2, seed=42)
    assert [lines[i] for i in validation] == toolkit_validation
    assert sorted(train + validation) == list(range(50))
    assert len(validation) == 10

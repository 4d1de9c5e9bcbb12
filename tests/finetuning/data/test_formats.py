"""detect_format and to_messages: every format, its variants and its structural errors."""

from __future__ import annotations

import pytest

from finetuning.data.formats import DataFormat, FormatError, detect_format, to_messages

S3_IMAGE = {
    "image": {
        "format": "png",
        "source": {
            "s3Location": {"uri": "s3://bucket/images/a.png", "bucketOwner": "123456789012"}
        },
    }
}

CONVERSE = {
    "schemaVersion": "bedrock-conversation-2024",
    "system": [{"text": "You classify documents."}],
    "messages": [
        {"role": "user", "content": [{"text": "What is this?"}, S3_IMAGE]},
        {"role": "assistant", "content": [{"text": "invoice"}]},
    ],
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"prompt": "a", "completion": "b"}, DataFormat.PROMPT_COMPLETION),
        ({"messages": [{"role": "user", "content": "a"}]}, DataFormat.MESSAGES),
        ({"system": "s", "messages": []}, DataFormat.MESSAGES),
        (CONVERSE, DataFormat.BEDROCK_CONVERSATION),
        # Converse shape without its schemaVersion is still recognised (validation flags it).
        (
            {"messages": [{"role": "user", "content": [{"text": "a"}]}]},
            DataFormat.BEDROCK_CONVERSATION,
        ),
        ({"system": [{"text": "s"}], "messages": []}, DataFormat.BEDROCK_CONVERSATION),
        ({"instruction": "a", "input": "", "output": "b"}, DataFormat.ALPACA),
        ({"instruction": "a", "output": "b"}, DataFormat.ALPACA),
    ],
)
def test_detect_format(record: dict, expected: DataFormat) -> None:
    assert detect_format(record) is expected


def test_detect_format_names_found_keys_and_needs() -> None:
    with pytest.raises(FormatError) as excinfo:
        detect_format({"question": "q", "answer": "a"})
    message = str(excinfo.value)
    assert '"question", "answer"' in message
    for needs in ('"prompt" and "completion"', '"instruction" and "output"', '"messages"'):
        assert needs in message


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None])
def test_detect_format_rejects_non_objects(value: object) -> None:
    with pytest.raises(FormatError, match="expected a JSON object"):
        detect_format(value)  # type: ignore[arg-type]


def test_enum_values() -> None:
    assert [f.value for f in DataFormat] == [
        "prompt-completion",
        "messages",
        "bedrock-conversation-2024",
        "alpaca",
    ]
    assert DataFormat("bedrock-conversation-2024") is DataFormat.BEDROCK_CONVERSATION


def test_prompt_completion() -> None:
    assert to_messages({"prompt": "p", "completion": "c"}, DataFormat.PROMPT_COMPLETION) == [
        {"role": "user", "content": "p"},
        {"role": "assistant", "content": "c"},
    ]


def test_prompt_completion_conversational() -> None:
    record = {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "p"}],
        "completion": [{"role": "assistant", "content": "c"}],
    }
    assert to_messages(record, DataFormat.PROMPT_COMPLETION) == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "p"},
        {"role": "assistant", "content": "c"},
    ]


def test_messages_claude_top_level_system() -> None:
    record = {
        "system": "be brief",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    assert to_messages(record, DataFormat.MESSAGES) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]


def test_messages_typed_parts() -> None:
    record = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "image", "path": "imgs/a.jpg"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    }
    assert to_messages(record, DataFormat.MESSAGES) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "format": None, "source": {"url": "https://x/y.png"}},
                {"type": "image", "format": None, "source": {"path": "imgs/a.jpg"}},
            ],
        },
        {"role": "assistant", "content": "a\nb"},
    ]


def test_messages_two_system_prompts_rejected() -> None:
    record = {"system": "a", "messages": [{"role": "system", "content": "b"}]}
    with pytest.raises(FormatError, match="both a top-level") as excinfo:
        to_messages(record, DataFormat.MESSAGES)
    assert excinfo.value.field == "system"


def test_converse_keeps_media_source_and_format() -> None:
    messages = to_messages(CONVERSE, DataFormat.BEDROCK_CONVERSATION)
    assert messages == [
        {"role": "system", "content": "You classify documents."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "format": "png",
                    "source": {
                        "s3Location": {
                            "uri": "s3://bucket/images/a.png",
                            "bucketOwner": "123456789012",
                        }
                    },
                },
            ],
        },
        {"role": "assistant", "content": "invoice"},
    ]


def test_converse_video() -> None:
    record = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"video": {"format": "MP4", "source": {"s3Location": {"uri": "s3://b/v.mp4"}}}}
                ],
            },
            {"role": "assistant", "content": [{"text": "a cat"}]},
        ],
    }
    user = to_messages(record, DataFormat.BEDROCK_CONVERSATION)[0]
    assert user["content"] == [
        {"type": "video", "format": "mp4", "source": {"s3Location": {"uri": "s3://b/v.mp4"}}}
    ]


def test_alpaca() -> None:
    assert to_messages(
        {"instruction": "Translate", "input": "chat", "output": "cat"}, DataFormat.ALPACA
    ) == [{"role": "user", "content": "Translate\n\nchat"}, {"role": "assistant", "content": "cat"}]
    assert to_messages({"instruction": "Hi", "input": "", "output": "Hello"}, "alpaca") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


@pytest.mark.parametrize(
    ("record", "fmt", "field", "fragment"),
    [
        (
            {"prompt": 3, "completion": "c"},
            DataFormat.PROMPT_COMPLETION,
            "prompt",
            "found a number",
        ),
        ({"prompt": "p"}, DataFormat.PROMPT_COMPLETION, "completion", "missing"),
        ({"messages": "hi"}, DataFormat.MESSAGES, "messages", "expected a list, found a string"),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            DataFormat.MESSAGES,
            "messages[0].role",
            "'bot'",
        ),
        ({"messages": [{"role": "user"}]}, DataFormat.MESSAGES, "messages[0]", "content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            DataFormat.MESSAGES,
            "messages[0].content[0].type",
            "'audio'",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "user", "content": "x"}],
            },
            DataFormat.BEDROCK_CONVERSATION,
            "messages[0].content",
            "list of content blocks",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "user", "content": [{"toolUse": {}}]}],
            },
            DataFormat.BEDROCK_CONVERSATION,
            "messages[0].content[0]",
            '"toolUse"',
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "system", "content": [{"text": "x"}]}],
            },
            DataFormat.BEDROCK_CONVERSATION,
            "messages[0].role",
            "'system'",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "user", "content": [{"image": {"format": "png"}}]}],
            },
            DataFormat.BEDROCK_CONVERSATION,
            "messages[0].content[0].image.source",
            "found null",
        ),
        ({"instruction": "i", "output": None}, DataFormat.ALPACA, "output", "found null"),
    ],
)
def test_structural_errors_name_the_field(
    record: dict, fmt: DataFormat, field: str, fragment: str
) -> None:
    with pytest.raises(FormatError) as excinfo:
        to_messages(record, fmt)
    assert excinfo.value.field == field
    assert fragment in str(excinfo.value)


def test_trl_image_placeholder_keeps_an_empty_source() -> None:
    record = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        ],
        "images": ["cat.png"],
    }
    assert to_messages(record, DataFormat.MESSAGES)[0]["content"] == [
        {"type": "image", "format": None, "source": {}},
        {"type": "text", "text": "What is it?"},
    ]
    with pytest.raises(FormatError, match="found none of them"):
        to_messages(
            {"messages": [{"role": "user", "content": [{"type": "image", "x": 1}]}]}, "messages"
        )

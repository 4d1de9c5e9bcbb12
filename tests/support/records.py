"""Record builders shared by the data toolkit's tests."""

from __future__ import annotations

import json
from typing import Any

NOVA = "amazon.nova-lite-v1:0:300k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
TITAN = "amazon.titan-text-express-v1"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
COHERE = "cohere.command-text-v14"
OPEN = "HuggingFaceTB/SmolLM2-135M-Instruct"


def image(uri: str = "s3://bucket/images/a.png", fmt: str = "png", **location: Any) -> dict:
    return {"image": {"format": fmt, "source": {"s3Location": {"uri": uri, **location}}}}


def video(uri: str = "s3://bucket/videos/a.mp4", fmt: str = "mp4") -> dict:
    return {"video": {"format": fmt, "source": {"s3Location": {"uri": uri}}}}


def converse(
    user: str | list = "What is the capital of France?",
    assistant: str | list = "Paris.",
    system: str | None = "You are a geography tutor.",
    *,
    turns: list[tuple[str, Any]] | None = None,
) -> dict:
    """A bedrock-conversation-2024 record; content given as text or a list of blocks."""

    def blocks(value: str | list) -> list:
        return [{"text": value}] if isinstance(value, str) else value

    record: dict[str, Any] = {"schemaVersion": "bedrock-conversation-2024"}
    if system is not None:
        record["system"] = [{"text": system}]
    pairs = turns if turns is not None else [("user", user), ("assistant", assistant)]
    record["messages"] = [{"role": role, "content": blocks(content)} for role, content in pairs]
    return record


def claude(*pairs: tuple[str, str], system: str | None = "Be brief.") -> dict:
    pairs = pairs or (("user", "Hello?"), ("assistant", "Hi."))
    record: dict[str, Any] = {} if system is None else {"system": system}
    record["messages"] = [{"role": role, "content": content} for role, content in pairs]
    return record


def prompt_completion(
    prompt: str = "Summarize: the sky is blue.", completion: str = "Blue sky."
) -> dict:
    return {"prompt": prompt, "completion": completion}


def jsonl(*records: Any, ending: bytes = b"\n") -> list[bytes]:
    """Lines of a JSONL file; non-dict items that are bytes are used as raw lines."""
    return [r if isinstance(r, bytes) else json.dumps(r).encode() + ending for r in records]

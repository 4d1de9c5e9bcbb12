"""Default prompts for image classification, and reading prompt files.

The defaults ask for the answer shape the old guide trained with (``{"type": "<label>"}``), so
a model fine-tuned on that data is evaluated with the question it learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DEFAULT_SYSTEM_PROMPT = (
    "You are a document classification expert. You look at an image of a document and "
    "identify its type."
)

DEFAULT_TASK_PROMPT = (
    "Classify the document in the image. Answer with JSON only, in the form "
    '{{"type": "<document type>"}}.{choices}'
)


def task_prompt(labels: Sequence[str] | None = None) -> str:
    """The default task prompt, listing the allowed labels when they are known."""
    choices = f" The document type is one of: {', '.join(labels)}." if labels else ""
    return DEFAULT_TASK_PROMPT.format(choices=choices)


def read_prompt(path: Path, what: str) -> str:
    """A prompt file's text; an empty or missing file is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"{path}: {what} file not found") from None
    if not text:
        raise ValueError(f"{path}: {what} file is empty")
    return text

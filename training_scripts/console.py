"""train.py's lines on stdout (``data:``, ``model:``, ``checkpoint:``, ...): printed by the
main process only, so that ``torchrun`` with N processes prints each line once."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def say(message: str) -> None:
    """A line on stdout, from the main process only."""
    if is_main_process():
        print(message, flush=True)

"""Message checks: roles start with user, alternate and end with assistant (system only
first); no turn is empty; no reserved keyword of the family appears. Media parts met on
the way are handed to the ``MediaChecker``.
"""

from __future__ import annotations

from collections.abc import Iterable

from finetuning.data.formats import DataFormat
from finetuning.data.models import ModelFamily
from finetuning.data.validation.media import MediaChecker
from finetuning.data.validation.report import ProblemLog, RecordProblem

# What the length and media-count checks need of a record whose messages passed: its
# texts, characters in all and in assistant turns, images, videos (a plain tuple: built
# once per record on the hot path).
RecordText = tuple[list[str], int, int, int, int]


class MessageChecker:
    """Checks one record's canonical messages."""

    def __init__(self, family: ModelFamily, log: ProblemLog, media: MediaChecker) -> None:
        self.family = family
        self.log = log
        self.media = media
        self.scan_reserved = (
            KeywordScanner(family.reserved_keywords).search if family.reserved_keywords else None
        )

    def check(self, record: dict, fmt: DataFormat, messages: list[dict], number: int) -> RecordText:
        # Hot path: runs once per record; the field namer and messages are built only when
        # a problem is found.
        count = len(messages)
        start = 1 if count and messages[0]["role"] == "system" else 0
        if count - start < 2:
            turns = count - start
            raise RecordProblem(
                "roles",
                f"expected at least a user turn and an assistant turn, found {turns} "
                f"turn{'s' if turns != 1 else ''}",
            )
        texts: list[str] = []
        total_chars = output_chars = images = videos = 0
        expected = "user"
        for index in range(count):
            message = messages[index]
            role = message["role"]
            if index >= start:
                if role != expected:
                    _raise_role_problem(record, fmt, messages, index, expected)
                expected = "assistant" if expected == "user" else "user"
            content = message["content"]
            if type(content) is str:
                text = content
                has_media = False
            else:
                text = "\n".join(part["text"] for part in content if part["type"] == "text")
                media = [part for part in content if part["type"] != "text"]
                has_media = bool(media)
                if has_media:
                    where = FieldNamer(record, fmt, count).content(index)
                    if role != "user" and self.family.is_bedrock:
                        raise RecordProblem(
                            "media",
                            f"{where}: images and videos may only appear in user turns, found "
                            f"one in a {role} turn",
                        )
                    for part in media:
                        if part["type"] == "image":
                            images += 1
                        else:
                            videos += 1
                        self.media.check_part(part, where, number)
            if not has_media and (not text or text.isspace()):
                where = FieldNamer(record, fmt, count).content(index)
                if role == "system":
                    self.log.warning("empty-text", f"{where}: the system prompt is blank", number)
                else:
                    raise RecordProblem(
                        "empty-text",
                        f"{where}: expected non-empty text in the {role} turn, found "
                        f"{'an empty string' if not text else 'only whitespace'}",
                    )
            size = len(text)
            total_chars += size
            if role == "assistant":
                output_chars += size
            texts.append(text)
        if messages[-1]["role"] != "assistant":
            where = FieldNamer(record, fmt, count).role(count - 1)
            raise RecordProblem(
                "roles",
                f"{where}: expected the last turn to be 'assistant' (the response to learn), "
                f"found '{messages[-1]['role']}'",
            )
        scan = self.scan_reserved
        # One scan over all turns joined (NUL cannot occur inside a keyword); the turn is
        # looked up only when a keyword is found.
        if scan is not None and scan("\x00".join(texts)) is not None:
            for index, text in enumerate(texts):
                hit = scan(text)
                if hit is not None:
                    where = FieldNamer(record, fmt, count).content(index)
                    raise RecordProblem(
                        "reserved-keyword",
                        f"{where}: '{hit}' is a reserved keyword for "
                        f"{self.family.display_name} and fails the training job; reword it",
                    )
        return texts, total_chars, output_chars, images, videos


def _raise_role_problem(
    record: dict, fmt: DataFormat, messages: list[dict], index: int, expected: str
) -> None:
    where = FieldNamer(record, fmt, len(messages)).role(index)
    role = messages[index]["role"]
    if role == "system":
        raise RecordProblem("roles", f"{where}: a system message may only come first")
    start = 1 if messages[0]["role"] == "system" else 0
    previous = "the start" if index == start else f"a {messages[index - 1]['role']} turn"
    raise RecordProblem(
        "roles",
        f"{where}: expected '{expected}' after {previous} (turns start with user and "
        f"alternate), found '{role}'",
    )


class KeywordScanner:
    """Tells whether a text contains any of a set of literal keywords, and which.

    A regex alternation tries every keyword at every position of every text; here each
    keyword is anchored on its last character, found with ``str.find`` (memchr speed), and
    only where that character occurs is one ``str.endswith(tuple)`` call made. Validation
    runs this over every record, so it has to cost little more than one scan of the text.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        by_last: dict[str, list[str]] = {}
        for keyword in keywords:
            by_last.setdefault(keyword[-1], []).append(keyword)
        self.groups = [(last, tuple(words)) for last, words in by_last.items()]

    def search(self, text: str) -> str | None:
        find = text.find
        endswith = text.endswith
        for last, words in self.groups:
            position = find(last)
            while position >= 0:
                end = position + 1
                if endswith(words, 0, end):
                    return next(word for word in words if endswith(word, 0, end))
                position = find(last, end)
        return None


class FieldNamer:
    """Maps a canonical message index back to the record field it came from."""

    def __init__(self, record: dict, fmt: DataFormat, canonical_count: int) -> None:
        self.fmt = fmt
        raw = record.get("messages")
        # A top-level system prompt becomes canonical message 0, shifting messages[i] by one.
        self.offset = canonical_count - len(raw) if isinstance(raw, list) else 0

    def _base(self, index: int) -> str:
        if self.fmt is DataFormat.PROMPT_COMPLETION or self.fmt is DataFormat.ALPACA:
            return f"message {index + 1}"
        if index < self.offset:
            return "system"
        return f"messages[{index - self.offset}]"

    def role(self, index: int) -> str:
        base = self._base(index)
        return base if base == "system" or base.startswith("message ") else f"{base}.role"

    def content(self, index: int) -> str:
        if self.fmt is DataFormat.PROMPT_COMPLETION and index < 2:
            return ("prompt", "completion")[index]
        if self.fmt is DataFormat.ALPACA and index < 2:
            return ("instruction", "output")[index]
        base = self._base(index)
        return base if base == "system" or base.startswith("message ") else f"{base}.content"

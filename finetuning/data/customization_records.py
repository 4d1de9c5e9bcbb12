"""Record rules of reinforcement fine-tuning and distillation datasets.

Supervised datasets are checked by ``finetuning.data.validate``; the two other Bedrock
customization types read different records, checked here and reported the same way
(``ValidationReport``: line, field, what was expected, what was found).

Reinforcement fine-tuning (Nova 2 Lite), "Reinforcement fine-tuning (RFT) for Amazon Nova
models", https://docs.aws.amazon.com/bedrock/latest/userguide/nova-rft.html:
- one JSON object per line with a ``messages`` array of ``system`` and ``user`` turns and a
  ``reference_answer`` (any JSON value the grader reads); an optional ``id``; other keys are
  passed to the grader;
- single-turn only (one user turn), text only (no images or videos);
- "Minimum 100 training examples" as the starting point (a warning below that).

Reinforcement fine-tuning of the open-weight models (gpt-oss-20b, Qwen3 32B), "Prepare data
for open-weight models",
https://docs.aws.amazon.com/bedrock/latest/userguide/rft-prepare-data-open-weight.html:
- the OpenAI chat completions format, one prompt per line: ``messages`` with system, user
  or assistant turns holding the prompt, and ``reference_answer``; other keys are for the
  grader;
- "100-20K examples", "A minimum of 100 records in training dataset" (errors here, since
  Bedrock validates the dataset and refuses it).

Distillation, "Option 1: Provide your own prompts for data preparation",
https://docs.aws.amazon.com/bedrock/latest/userguide/distillation-data-prep-option-1.html
(summarised on https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html):
- the ``bedrock-conversation-2024`` schema with ``schemaVersion``, optional ``system`` and
  ``messages``; a record is a prompt (ending with a user turn) or a labeled example
  (prompt plus the assistant's golden answer).

Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from finetuning.data.models import OPEN_WEIGHT_RFT_FAMILY, ModelFamily

RFT_RECOMMENDED_MIN_RECORDS = 100
RFT_ROLES = ("system", "user")
OPEN_WEIGHT_RFT_ROLES = ("system", "user", "assistant")
DISTILLATION_SCHEMA = "bedrock-conversation-2024"
REINFORCEMENT_FINE_TUNING = "REINFORCEMENT_FINE_TUNING"
DISTILLATION = "DISTILLATION"


def check_rft_record(record: Any) -> list[tuple[str, str]]:
    """(code, message) for each problem of one RFT record (Nova 2 Lite)."""
    if not isinstance(record, dict):
        return [("schema", f"expected a JSON object, found {type(record).__name__}")]
    problems: list[tuple[str, str]] = []
    if "reference_answer" not in record or record["reference_answer"] in (None, "", {}, []):
        problems.append(
            (
                "reference-answer",
                "reference_answer: expected the answer (or criteria) the grader scores "
                "against; found none",
            )
        )
    if "id" in record and not isinstance(record["id"], str | int):
        problems.append(("schema", f"id: expected a string, found {json.dumps(record['id'])}"))
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(("schema", "messages: expected a non-empty array of system/user turns"))
        return problems
    users = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(("schema", f"{where}: expected an object with role and content"))
            continue
        role = message.get("role")
        if role not in RFT_ROLES:
            problems.append(
                (
                    "role",
                    f"{where}.role: expected system or user (RFT records are prompts; the "
                    f"model writes the answer), found {role!r}",
                )
            )
        if role == "system" and index != 0:
            problems.append(("role", f"{where}.role: a system turn may only come first"))
        users += role == "user"
        text = _text(message.get("content"))
        if text is None:
            problems.append(
                (
                    "content",
                    f"{where}.content: expected text (RFT is text only), found "
                    f"{json.dumps(message.get('content'))[:80]}",
                )
            )
        elif not text.strip():
            problems.append(("empty-turn", f"{where}.content: empty text"))
    if users != 1:
        problems.append(
            ("role", f"messages: expected exactly one user turn (single-turn only), found {users}")
        )
    return problems


def check_open_weight_rft_record(record: Any) -> list[tuple[str, str]]:
    """(code, message) for each problem of one open-weight RFT record: the prompt in OpenAI
    chat format (system, user and assistant turns), text, with a user turn, and a
    ``reference_answer``."""
    if not isinstance(record, dict):
        return [("schema", f"expected a JSON object, found {type(record).__name__}")]
    problems = [p for p in check_rft_record(record) if p[0] in ("reference-answer", "schema")]
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return problems
    users = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            continue  # reported by check_rft_record
        role = message.get("role")
        if role not in OPEN_WEIGHT_RFT_ROLES:
            problems.append(
                ("role", f"{where}.role: expected system, user or assistant, found {role!r}")
            )
        users += role == "user"
        text = _text(message.get("content"))
        if text is None:
            problems.append(
                (
                    "content",
                    f"{where}.content: expected text, found "
                    f"{json.dumps(message.get('content'))[:80]}",
                )
            )
        elif not text.strip():
            problems.append(("empty-turn", f"{where}.content: empty text"))
    if users == 0:
        problems.append(("role", "messages: expected a user turn holding the prompt, found none"))
    return problems


def check_distillation_record(record: Any) -> list[tuple[str, str]]:
    """(code, message) for each problem of one distillation prompt record."""
    if not isinstance(record, dict):
        return [("schema", f"expected a JSON object, found {type(record).__name__}")]
    problems: list[tuple[str, str]] = []
    if record.get("schemaVersion") != DISTILLATION_SCHEMA:
        problems.append(
            (
                "schema",
                f"schemaVersion: expected {DISTILLATION_SCHEMA!r}, found "
                f"{record.get('schemaVersion')!r}",
            )
        )
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(("schema", "messages: expected a non-empty array of turns"))
        return problems
    expected = "user"
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role != expected:
            problems.append(("role", f"{where}.role: expected {expected}, found {role!r}"))
            break
        content = message.get("content")
        if not isinstance(content, list) or not any(
            isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"].strip()
            for part in content
        ):
            problems.append(("content", f"{where}.content: expected [{{'text': ...}}] with text"))
        expected = "assistant" if expected == "user" else "user"
    if len(messages) > 2:
        problems.append(
            (
                "role",
                f"messages: expected a prompt (one user turn) or a prompt with its golden "
                f"answer (user, assistant), found {len(messages)} turns",
            )
        )
    return problems


def _text(content: Any) -> str | None:
    """The text of an OpenAI-style content (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = []
        for part in content:
            if not isinstance(part, dict):
                return None
            if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
                return None
            parts.append(part["text"])
        return "".join(parts)
    return None


def reference_text(record: dict[str, Any]) -> str:
    """The text of a record's prompt turns (for token estimates)."""
    return "".join(_text(m.get("content")) or "" for m in record.get("messages") or [])


def feed_customization_records(
    validator: Any, lines: Iterable[bytes], customization: str, family: ModelFamily
) -> None:
    """Check each line with the rules of ``customization``, reporting through the
    ``ProblemLog`` of ``finetuning.data.validation.report`` (its error/warning/report
    interface)."""
    open_weight = family.name == OPEN_WEIGHT_RFT_FAMILY
    if customization == REINFORCEMENT_FINE_TUNING:
        check = check_open_weight_rft_record if open_weight else check_rft_record
    else:
        check = check_distillation_record
    report = validator.report
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            validator.warning("blank-line", "blank line (skipped)", number)
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            validator.error("json", f"not valid JSON: {exc}", number)
            continue
        report.records += 1
        for code, message in check(record):
            validator.error(code, message, number)
        if isinstance(record, dict):
            characters = len(json.dumps(record.get("messages"), ensure_ascii=False))
            report.characters += characters
            report.tokens += -(-characters // family.chars_per_token)
    if open_weight:
        _check_record_count(validator, family, report.records)
    elif customization == REINFORCEMENT_FINE_TUNING and 0 < report.records < (
        RFT_RECOMMENDED_MIN_RECORDS
    ):
        validator.warning(
            "record-count",
            f"{report.records:,} records; the RFT guide recommends at least "
            f"{RFT_RECOMMENDED_MIN_RECORDS} to start with",
            None,
        )


def _check_record_count(validator: Any, family: ModelFamily, records: int) -> None:
    """The documented record range of the family, as errors (Bedrock refuses the dataset)."""
    if family.min_records is not None and 0 < records < family.min_records:
        validator.error(
            "record-count",
            f"{records:,} records; {family.display_name} needs at least "
            f"{family.min_records:,} (see {family.source_url})",
            None,
        )
    if family.max_train_records is not None and records > family.max_train_records:
        validator.error(
            "record-count",
            f"{records:,} records; {family.display_name} accepts at most "
            f"{family.max_train_records:,} (see {family.source_url})",
            None,
        )

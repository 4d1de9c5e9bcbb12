"""Length checks: each record's tokens (counted exactly or estimated from characters)
against the family's input/output limits, and against train.py's ``--max-tokens``."""

from __future__ import annotations

from collections.abc import Callable

from finetuning.data.models import CAUTIOUS_CHARS_PER_TOKEN, ModelFamily
from finetuning.data.validation.report import ProblemLog, RecordProblem


class LengthChecker:
    """Adds each record's characters and tokens to the report and checks its limits.

    With a ``token_counter`` the family's token limits are checked exactly; without one,
    against AWS's characters-per-token quota, with a warning from the cautious ratio on.
    ``max_tokens`` applies to open models only (Bedrock families use documented limits).
    """

    def __init__(
        self,
        family: ModelFamily,
        log: ProblemLog,
        *,
        token_counter: Callable[[str], int] | None,
        max_tokens: int | None,
    ) -> None:
        self.family = family
        self.log = log
        self.token_counter = token_counter
        self.max_tokens = max_tokens if not family.is_bedrock else None
        self.limits = [
            (limit, label)
            for limit, label in (
                (family.max_total_tokens, "input and output"),
                (family.max_input_tokens, "input"),
                (family.max_output_tokens, "output"),
            )
            if limit is not None
        ]

    def check(
        self,
        total_chars: int,
        output_chars: int,
        texts: list[str],
        messages: list[dict],
        number: int,
    ) -> None:
        family = self.family
        report = self.log.report
        report.characters += total_chars
        if self.token_counter is not None:
            counts = [self.token_counter(text) for text in texts]
            total = sum(counts)
            output = sum(
                count
                for count, message in zip(counts, messages, strict=True)
                if message["role"] == "assistant"
            )
        else:
            per_token = family.chars_per_token
            total = -(-total_chars // per_token)
            output = -(-output_chars // per_token)
        report.tokens += total
        if total > report.max_record_tokens:
            report.max_record_tokens = total
        for limit, label in self.limits:
            if label == "input and output":
                chars, tokens = total_chars, total
            elif label == "output":
                chars, tokens = output_chars, output
            else:
                chars, tokens = total_chars - output_chars, total - output
            if self.token_counter is not None:
                if tokens > limit:
                    raise RecordProblem(
                        "too-long",
                        f"{tokens:,} {label} tokens, more than the {limit:,} that "
                        f"{family.display_name} accepts",
                    )
                continue
            quota = limit * family.chars_per_token
            if chars > quota:
                raise RecordProblem(
                    "too-long",
                    f"{chars:,} characters of {label} text, more than the {quota:,} that "
                    f"{family.display_name} accepts ({limit:,} tokens x "
                    f"{family.chars_per_token} characters per token, AWS's quota)",
                )
            if chars > limit * CAUTIOUS_CHARS_PER_TOKEN:
                self.log.warning(
                    "may-be-too-long",
                    f"{chars:,} characters of {label} text may exceed {family.display_name}'s "
                    f"{limit:,}-token limit (about {-(-chars // CAUTIOUS_CHARS_PER_TOKEN):,} "
                    f"tokens at {CAUTIOUS_CHARS_PER_TOKEN} characters per token); shorten it "
                    "or count exactly with --tokenizer",
                    number,
                )
        if self.max_tokens is not None and total > self.max_tokens:
            self.log.warning(
                "truncated",
                f"about {total:,} tokens, more than --max-tokens {self.max_tokens:,}; "
                "train.py truncates it",
                number,
            )

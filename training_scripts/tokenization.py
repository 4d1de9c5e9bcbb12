"""From conversations to token ids and labels, with the loss mask.

A conversation is rendered through the tokenizer's chat template one assistant turn at a time:
the text up to the turn (with the generation prompt, exactly what the model sees at inference)
is context, the text the turn adds is what the model learns to produce. Each piece is tokenized
on its own, as at inference, where the prompt is tokenized alone and generation continues from
it. The end-of-turn token belongs to the assistant piece, so it is always a trained label, also
when the pad token is the EOS token: labels come from this mask, never from comparing ids with
the pad id.

Prompt-completion records with string fields train as plain text: ``prompt`` (context), then
``completion`` and the EOS token (learned).

``tokenize_data`` turns a run's prepared conversations into examples and logs what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from training_scripts.console import say
from training_scripts.data import Conversation, DataError, PreparedData

if TYPE_CHECKING:
    from training_scripts.arguments import DataArguments

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy skips

# Used when the tokenizer has none (base models). Plain-text role markers, so no new tokens and no
# embedding resize are needed; the assistant turn ends with the EOS token, which is what stops
# generation. Saved with the tokenizer, so inference formats prompts the same way.
FALLBACK_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)

_TOKENIZE_BATCH = 1024


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizationReport:
    """What happened to the records on their way to token ids (logged and saved)."""

    records: int = 0
    examples: int = 0
    truncated: int = 0
    dropped_no_trainable_tokens: int = 0
    dropped_examples: list[str] = field(default_factory=list)  # the first few, by source
    tokens: int = 0
    trainable_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "examples": self.examples,
            "truncated": self.truncated,
            "dropped_no_trainable_tokens": self.dropped_no_trainable_tokens,
            "dropped_examples_first": self.dropped_examples,
            "tokens": self.tokens,
            "trainable_tokens": self.trainable_tokens,
        }


def ensure_chat_template(tokenizer: Any) -> bool:
    """Install :data:`FALLBACK_CHAT_TEMPLATE` when the tokenizer has none; True if it did."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def special_token_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after plain text (BOS for Llama, none for GPT-2)."""
    probe = "a b c"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []


def _special_token_texts(tokenizer: Any) -> tuple[str, ...]:
    texts = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            texts.add(str(added))
    return tuple(sorted(t for t in texts if t))


def _render(tokenizer: Any, messages: Sequence[dict], generation_prompt: bool, where: str) -> str:
    try:
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
    except Exception as exc:  # jinja2 errors and the templates' own raise_exception()
        raise DataError(f"{where}: the chat template rejected this conversation: {exc}") from None


def conversation_segments(
    conversation: Conversation, tokenizer: Any, special_tokens: tuple[str, ...] = ()
) -> list[tuple[str, bool]]:
    """``[(text, is_assistant_output)]`` whose concatenation is the rendered conversation.

    Turns after the last assistant turn teach nothing and are left out.
    """
    messages = conversation.messages
    segments: list[tuple[str, bool]] = []
    consumed = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:index], True, conversation.source)
        full = _render(tokenizer, messages[: index + 1], False, conversation.source)
        if not prompt.startswith(consumed) or not full.startswith(prompt):
            raise DataError(
                f"{conversation.source}: the chat template renders earlier turns differently "
                f"once assistant turn {index} is added, so the assistant text cannot be located; "
                "train on single-turn records or give the tokenizer a prefix-stable template"
            )
        output = full[len(prompt) :]
        # Whitespace the template puts after the end-of-turn token is context, not output.
        trimmed = output.rstrip()
        tail = ""
        if trimmed != output and trimmed.endswith(special_tokens):
            output, tail = trimmed, output[len(trimmed) :]
        segments.append((prompt[len(consumed) :], False))
        segments.append((output, True))
        if tail:
            segments.append((tail, False))
        consumed = full
    return [(text, trained) for text, trained in segments if text]


class ConversationTokenizer:
    """Turns conversations into :class:`TokenizedExample` s with the loss mask applied."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_seq_length: int,
        completion_only_loss: bool = True,
        prompt_completion_chat_template: bool = False,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has no EOS token, so examples could not end")
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.completion_only_loss = completion_only_loss
        self.prompt_completion_chat_template = prompt_completion_chat_template
        self.prefix_ids, _ = special_token_affixes(tokenizer)
        self.special_tokens = _special_token_texts(tokenizer)

    def _pieces(self, conversation: Conversation) -> list[tuple[str | list[int], bool]]:
        """Text (to tokenize) or ids, each flagged trained or not."""
        if conversation.plain is not None and not self.prompt_completion_chat_template:
            prompt, completion = conversation.plain
            return [
                (list(self.prefix_ids), False),
                (prompt, False),
                (completion, True),
                ([self.tokenizer.eos_token_id], True),
            ]
        segments = conversation_segments(conversation, self.tokenizer, self.special_tokens)
        return list(segments)

    def __call__(
        self, conversations: Sequence[Conversation]
    ) -> tuple[list[TokenizedExample], TokenizationReport]:
        report = TokenizationReport(records=len(conversations))
        examples: list[TokenizedExample] = []
        for start in range(0, len(conversations), _TOKENIZE_BATCH):
            batch = conversations[start : start + _TOKENIZE_BATCH]
            pieces = [self._pieces(c) for c in batch]
            texts = [p for conv in pieces for p, _ in conv if isinstance(p, str)]
            encoded = iter(
                self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
            )
            for conversation, conv_pieces in zip(batch, pieces, strict=True):
                input_ids: list[int] = []
                labels: list[int] = []
                for piece, trained in conv_pieces:
                    ids = list(next(encoded)) if isinstance(piece, str) else piece
                    input_ids.extend(ids)
                    if trained or not self.completion_only_loss:
                        labels.extend(ids)
                    else:
                        labels.extend([IGNORE_INDEX] * len(ids))
                example = self._finish(input_ids, labels, conversation.source, report)
                if example is not None:
                    examples.append(example)
        report.examples = len(examples)
        return examples, report

    def _finish(
        self, input_ids: list[int], labels: list[int], source: str, report: TokenizationReport
    ) -> TokenizedExample | None:
        if len(input_ids) > self.max_seq_length:
            input_ids = input_ids[: self.max_seq_length]
            labels = labels[: self.max_seq_length]
            report.truncated += 1
        if labels:
            # The first token is never predicted; masking it also keeps a packed example's first
            # label from being learned from the end of the previous example.
            labels[0] = IGNORE_INDEX
        trainable = sum(1 for label in labels if label != IGNORE_INDEX)
        if trainable == 0:
            report.dropped_no_trainable_tokens += 1
            if len(report.dropped_examples) < 5:
                report.dropped_examples.append(source)
            return None
        report.tokens += len(input_ids)
        report.trainable_tokens += trainable
        return TokenizedExample(input_ids=input_ids, labels=labels)


@dataclass
class TokenizedData:
    """A run's training and validation examples, and how the records became examples."""

    train: list[TokenizedExample]
    validation: list[TokenizedExample]
    train_report: TokenizationReport
    validation_report: TokenizationReport
    fallback_template: bool  # the tokenizer had no chat template; train.py's was used


def describe(name: str, report: TokenizationReport, max_seq_length: int) -> str:
    line = (
        f"data: {name}: {report.records} records -> {report.examples} examples, "
        f"{report.tokens} tokens ({report.trainable_tokens} trained), {report.truncated} "
        f"truncated to {max_seq_length} tokens, {report.dropped_no_trainable_tokens} dropped "
        "with no trainable token"
    )
    if report.dropped_examples:
        line += f" (first: {', '.join(report.dropped_examples)})"
    return line


def tokenize_data(tokenizer: Any, prepared: PreparedData, data: DataArguments) -> TokenizedData:
    """Tokenize the run's conversations and print a ``data:`` line per split; raises
    ``DataError`` when no training example is left."""
    fallback_template = ensure_chat_template(tokenizer)
    if fallback_template:
        say("warning: the tokenizer has no chat template; using train.py's fallback template")
    to_examples = ConversationTokenizer(
        tokenizer,
        max_seq_length=data.max_seq_length,
        completion_only_loss=data.completion_only_loss,
        prompt_completion_chat_template=data.prompt_completion_chat_template,
    )
    train_examples, train_report = to_examples(prepared.train)
    validation_examples, validation_report = to_examples(prepared.validation)
    say(describe("train", train_report, data.max_seq_length))
    if validation_report.records:
        say(describe("validation", validation_report, data.max_seq_length))
    if not train_examples:
        raise DataError(
            f"--train_file {data.train_file}: none of the {train_report.records} records "
            f"has a trainable token within --max_seq_length {data.max_seq_length}"
        )
    return TokenizedData(
        train=train_examples,
        validation=validation_examples,
        train_report=train_report,
        validation_report=validation_report,
        fallback_template=fallback_template,
    )

"""Exceptions of the fine-tuning library.

Every configuration problem is an :class:`InvalidJobConfigError`, a ``ValueError`` that names
the field, what was expected and what was found, and is raised before any AWS call. AWS errors
other than throttling (which botocore retries) pass through unchanged as
``botocore.exceptions.ClientError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetuning.jobs import FinetuningJobResult


class FinetuningError(Exception):
    """Base class of the library's own errors."""


class EnvironmentSetupError(FinetuningError):
    """This machine's setup cannot make the call: a missing or rejected API key, or an
    endpoint that does not answer. The message says what to set (the CLI exits 3)."""


class InvalidJobConfigError(FinetuningError, ValueError):
    """A job, throughput or service configuration that cannot work.

    ``field`` is the dotted name of the offending field (``hyperparameters.epochCount``),
    ``expected`` says what would be accepted and ``found`` what was given.
    """

    def __init__(self, field: str, expected: str, found: Any = None, *, hint: str = "") -> None:
        self.field = field
        self.expected = expected
        self.found = found
        message = f"{field}: expected {expected}"
        if found is not None:
            message += f", found {found!r}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class HyperparameterError(InvalidJobConfigError):
    """A hyperparameter with an unknown name, a wrong type or a value out of range."""


class ModelNotFoundError(InvalidJobConfigError):
    """The base model (or a registered fine-tuned model) cannot be found."""

    def __init__(self, model: str, searched: str) -> None:
        super().__init__("base_model", f"a model that exists ({searched})", model)
        self.model = model


class JobNotFoundError(FinetuningError, LookupError):
    """No job with this identifier on the backend asked."""

    def __init__(self, identifier: str, backend: str) -> None:
        super().__init__(f"no {backend} job {identifier!r}")
        self.identifier = identifier
        self.backend = backend


class JobExecutionError(FinetuningError):
    """A job failed while it ran (data preparation, training or registration).

    ``phase`` is ``preprocessing``, ``training`` or ``registration``; the message is what the
    job's ``failure_reason`` shows.
    """

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


class WaitTimeoutError(FinetuningError, TimeoutError):
    """``max_wait_time`` passed before the job or throughput reached a terminal state.

    ``last`` holds the last status seen, so a caller can report or keep waiting.
    """

    def __init__(self, what: str, waited_seconds: float, last: FinetuningJobResult | Any) -> None:
        status = getattr(last, "status", None)
        status_text = getattr(status, "value", status)
        super().__init__(
            f"{what} did not finish within {waited_seconds:.0f} s (last status: {status_text})"
        )
        self.waited_seconds = waited_seconds
        self.last = last

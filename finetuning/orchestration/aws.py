"""AWS clients for the orchestration, and the line between retryable and final errors.

Clients use botocore's adaptive retry mode, which backs off and rate-limits itself on
throttling. What still fails after those retries is sorted here: throttling and server
faults become :class:`RetryableServiceError`, which the state machine retries again with a
longer backoff; everything else (access denied, validation) passes through unchanged and
fails the task at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from finetuning.orchestration.errors import RetryableServiceError

# Error codes botocore itself treats as throttling or transient, see
# https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
CLIENT_RETRY_ATTEMPTS = 5


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client with adaptive retries (imported here so the library stays light)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "adaptive", "max_attempts": CLIENT_RETRY_ATTEMPTS},
        user_agent_extra="llm-finetuning-platform/orchestration",
    )
    return boto3.client(service, region_name=region, config=config)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def is_retryable(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in THROTTLING_CODES or code in TRANSIENT_CODES or status >= 500
    return False


@contextmanager
def retryable_errors(action: str) -> Iterator[None]:
    """Turn throttling and server faults raised inside the block into RetryableServiceError.

    ``action`` says what was being done ("starting SageMaker training job x"), so the
    error the state machine records is readable without the stack trace.
    """
    try:
        yield
    except Exception as exc:
        if is_retryable(exc):
            raise RetryableServiceError(f"{action}: {exc}") from exc
        raise

"""The CLI's one error policy: every failure becomes an exit code and one line on stderr.

``finetune`` never shows a raw traceback: :func:`report` turns an exception into the line
``finetune: error: <what failed>; <what to do>`` and the exit code of its kind (the table
:data:`EXIT_CODES`, also in ``finetune --help`` and docs/cli.md). ``--verbose`` prints the
traceback first. The same AWS error gives the same code in every command.
"""

from __future__ import annotations

import sys
import traceback
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SETUP = 3
EXIT_INTERRUPTED = 130

# Exit code -> meaning; docs/cli.md and the top-level help are generated from this table.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok: the command did what it was asked (a job submitted, completed, listed)",
    EXIT_FAILED: "failed: a job failed or was cancelled, a wait timed out, a quality gate "
    "failed, AWS refused a request (access denied, not found, limits), or an internal error",
    EXIT_USAGE: "bad usage: wrong or conflicting arguments, or input that cannot work (a "
    "missing or invalid file, bad data, a bad job spec); nothing was started or written",
    EXIT_SETUP: "this machine cannot run it: no AWS region or credentials, credentials AWS "
    "rejects, AWS unreachable, or a device that is not available (--device cuda without CUDA)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class UsageError(Exception):
    """A command was called with arguments that cannot work together (exit code 2)."""


class SetupError(Exception):
    """The machine's setup cannot run the command: AWS region, credentials, network or a
    device (exit code 3). The message says what to do."""


# AWS error codes that mean "these credentials are not valid here": a setup problem, not a
# failed request and not "nothing deployed".
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
CREDENTIALS_HINT = (
    "run `aws configure` (or `aws sso login --profile NAME`), or set AWS_PROFILE or "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)
NETWORK_HINT = "check the network, a proxy (HTTPS_PROXY) or the region (--region, AWS_REGION)"


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception raised by a command."""
    from finetuning.errors import (
        EnvironmentSetupError,
        FinetuningError,
        InvalidJobConfigError,
        JobNotFoundError,
        WaitTimeoutError,
    )

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, UsageError | InvalidJobConfigError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, SetupError | EnvironmentSetupError):
        return EXIT_SETUP, str(exc)
    aws = _classify_aws(exc)
    if aws is not None:
        return aws
    if _is_manifest_error(exc):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, WaitTimeoutError):
        return EXIT_FAILED, f"timed out: {exc}; the job keeps running (`finetune job wait`)"
    if isinstance(exc, JobNotFoundError | FinetuningError):
        return EXIT_FAILED, str(exc)
    if _is_platform_not_found(exc):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return EXIT_USAGE, f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.filename:
        return EXIT_FAILED, f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_USAGE, f"an input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return (
        EXIT_FAILED,
        f"internal error: {type(exc).__name__}: {exc}; run again with --verbose for the "
        "traceback and report it",
    )


def _is_platform_not_found(exc: BaseException) -> bool:
    from finetuning.platform_client import PlatformNotFoundError

    return isinstance(exc, PlatformNotFoundError)


def _is_manifest_error(exc: BaseException) -> bool:
    try:
        from finetuning.orchestration.errors import ManifestError
    except ImportError:  # pragma: no cover - the package ships with the library
        return False
    return isinstance(exc, ManifestError)


# Deletions Bedrock refuses with ConflictException while the resource is in a state that
# cannot be deleted, e.g. still Creating (API reference, Errors of each operation):
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_DeleteCustomModelDeployment.html
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_DeleteProvisionedModelThroughput.html
BUSY_DELETIONS = {
    "DeleteCustomModelDeployment": (
        "; Bedrock cannot delete the deployment in its present state (still being created?): "
        "check it with `finetune throughput status` and delete it once it is Active or Failed"
    ),
    "DeleteProvisionedModelThroughput": (
        "; Bedrock cannot delete the throughput in its present state (still being created, "
        "or within its commitment term?): check it with `finetune throughput status`"
    ),
}


def _classify_aws(exc: BaseException) -> tuple[int, str] | None:
    try:
        from botocore import exceptions as errors
    except ImportError:  # pragma: no cover - botocore is a runtime dependency
        return None
    if isinstance(exc, errors.NoRegionError):
        return EXIT_SETUP, (
            "no AWS region configured; pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
            "or set a region in your profile with `aws configure`"
        )
    if isinstance(exc, errors.NoCredentialsError):
        return EXIT_SETUP, f"no AWS credentials found; {CREDENTIALS_HINT}"
    if isinstance(
        exc,
        errors.PartialCredentialsError
        | errors.ProfileNotFound
        | errors.CredentialRetrievalError
        | errors.SSOError
        | errors.TokenRetrievalError,
    ):
        return EXIT_SETUP, f"AWS credentials: {exc}; {CREDENTIALS_HINT}"
    if isinstance(exc, errors.ConnectionError | errors.HTTPClientError):
        # Endpoint, proxy, connect and read timeouts, closed connections.
        return EXIT_SETUP, f"cannot reach AWS: {exc}; {NETWORK_HINT}"
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):
        # Something other than AWS answered (a captive portal, a proxy, a wrong endpoint).
        return EXIT_SETUP, (
            f"the answer did not come from AWS ({str(exc).splitlines()[0]}); {NETWORK_HINT}, "
            "AWS_ENDPOINT_URL"
        )
    if isinstance(exc, errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        message = error.get("Message") or ""
        operation = getattr(exc, "operation_name", None) or "AWS call"
        if code in CREDENTIAL_ERROR_CODES:
            return EXIT_SETUP, (
                f"AWS rejected the credentials ({operation}: {code}: {message}); {CREDENTIALS_HINT}"
            )
        hint = ""
        if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
            hint = "; the identity lacks a permission (see docs/orchestration.md for the policy)"
        elif code == "ConflictException" and operation in BUSY_DELETIONS:
            hint = BUSY_DELETIONS[operation]
        return EXIT_FAILED, f"{operation} failed: {code}: {message}{hint}"
    if isinstance(exc, errors.BotoCoreError):
        return EXIT_FAILED, f"AWS: {exc}"
    return None


def report(exc: BaseException, *, verbose: bool, stream: TextIO | None = None) -> int:
    """Print the traceback (``verbose``) and the error line; return the exit code."""
    stream = stream or sys.stderr
    code, message = classify(exc)
    if verbose and code != EXIT_INTERRUPTED:
        traceback.print_exception(exc, file=stream)
    prefix = "finetune: " if code == EXIT_INTERRUPTED else "finetune: error: "
    if code == EXIT_FAILED and message.startswith("timed out"):
        prefix = "finetune: "
    print(prefix + " ".join(message.split("\n")), file=stream)
    return code

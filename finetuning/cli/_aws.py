"""AWS region, credentials and connection for the CLI, resolved the way the AWS CLI does.

Region: ``--region``, then ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's
``region`` (``AWS_PROFILE`` or the default profile). ``AWS_REGION`` overrides
``AWS_DEFAULT_REGION``, which overrides the profile:
https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html and
https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html (botocore itself reads
only ``AWS_DEFAULT_REGION``, so a shell with ``AWS_REGION`` alone would get "You must specify a
region").

Credentials: botocore's chain (environment, ``AWS_PROFILE``, config files, SSO, container and
instance roles). Before a command's first AWS call, a preflight checks that a
region and credentials exist and calls ``sts:GetCallerIdentity`` once (it needs no IAM
permission: https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)
with a short connect timeout, so missing or rejected credentials and an unreachable network
stop the command at its first call, with a hint, instead of after every sample or minutes of
retries. Commands that never create a client (the local backend) never need AWS.
"""

from __future__ import annotations

import os
from typing import Any

from finetuning.cli._errors import CREDENTIALS_HINT, SetupError

# Seconds to open a connection (botocore's default is 60, then retries: 65 s of silence).
CONNECT_TIMEOUT_SECONDS = 5
# Attempts of the preflight call: one retry for a dropped connection, no more.
PREFLIGHT_ATTEMPTS = 2
# Set to 1 to skip the STS call of the preflight (region and credentials are still checked).
NO_STS_CHECK_VARIABLE = "FINETUNE_NO_STS_CHECK"
REGION_HINT = (
    "pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set a region in your profile "
    "with `aws configure`"
)


def resolve_region(explicit: str | None = None) -> str | None:
    """The region the AWS CLI would use; None when none is configured anywhere."""
    for value in (explicit, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")):
        if value:
            return value
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    try:
        return botocore.session.Session().get_config_variable("region") or None
    except ProfileNotFound as exc:
        raise SetupError(f"{exc}; {CREDENTIALS_HINT}") from None


def session(region: str | None = None, *, preflight: bool = True) -> Any:
    """A boto3 session in the resolved region whose clients connect with a short timeout;
    with ``preflight``, its first API call (not the creation of a client: configuration
    errors still come first) is preceded by :func:`check`, once."""
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session()
    core.set_default_client_config(Config(connect_timeout=CONNECT_TIMEOUT_SECONDS))
    boto_session = boto3.Session(botocore_session=core, region_name=resolve_region(region))
    if preflight:
        checked = False

        def before_first_call(**_: Any) -> None:
            nonlocal checked
            if not checked:
                checked = True  # first: the check's own STS call passes through here too
                check(boto_session)

        core.register("before-call", before_first_call)
    return boto_session


def check(boto_session: Any) -> str:
    """Region, credentials, and one STS call; returns the caller's ARN.

    Raises :class:`SetupError` (exit 3) naming what is missing and how to fix it.
    """
    from botocore.config import Config

    if not boto_session.region_name:
        raise SetupError(f"no AWS region configured; {REGION_HINT}")
    try:
        credentials = boto_session.get_credentials()
    except Exception as exc:  # a broken profile or SSO cache: the same fix applies
        raise SetupError(f"cannot load AWS credentials ({exc}); {CREDENTIALS_HINT}") from None
    if credentials is None:
        raise SetupError(f"no AWS credentials found; {CREDENTIALS_HINT}")
    if os.environ.get(NO_STS_CHECK_VARIABLE, "") not in ("", "0"):
        return ""  # e.g. a VPC with endpoints for the services used but none for STS
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=CONNECT_TIMEOUT_SECONDS * 2,
        retries={"mode": "standard", "total_max_attempts": PREFLIGHT_ATTEMPTS},
    )
    sts = boto_session.client("sts", config=config)
    # Errors are mapped by finetuning.cli._errors: rejected credentials and connection
    # failures are setup problems (exit 3), the same in every command.
    return sts.get_caller_identity()["Arn"]

"""Log groups the platform's way: encrypted with the platform key, with a retention."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_RETENTION = logs.RetentionDays
RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    1: _RETENTION.ONE_DAY,
    3: _RETENTION.THREE_DAYS,
    5: _RETENTION.FIVE_DAYS,
    7: _RETENTION.ONE_WEEK,
    14: _RETENTION.TWO_WEEKS,
    30: _RETENTION.ONE_MONTH,
    60: _RETENTION.TWO_MONTHS,
    90: _RETENTION.THREE_MONTHS,
    120: _RETENTION.FOUR_MONTHS,
    150: _RETENTION.FIVE_MONTHS,
    180: _RETENTION.SIX_MONTHS,
    365: _RETENTION.ONE_YEAR,
    400: _RETENTION.THIRTEEN_MONTHS,
    545: _RETENTION.EIGHTEEN_MONTHS,
    731: _RETENTION.TWO_YEARS,
    1096: _RETENTION.THREE_YEARS,
    1827: _RETENTION.FIVE_YEARS,
    2192: _RETENTION.SIX_YEARS,
    2557: _RETENTION.SEVEN_YEARS,
    2922: _RETENTION.EIGHT_YEARS,
    3288: _RETENTION.NINE_YEARS,
    3653: _RETENTION.TEN_YEARS,
}


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention_days: int,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with ``key``, kept ``retention_days`` and retained on delete."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        encryption_key=key,
        retention=RETENTION_BY_DAYS[retention_days],
        removal_policy=RemovalPolicy.RETAIN,
    )

"""Patterns and value sets that more than one settings model checks against.

The SageMaker instance type is the library's field type (``finetuning.settings.InstanceType``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
POLICY_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]+$")
# Project and environment names: they prefix physical names (buckets, stacks, alarms).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
NAME_RULE = "expected 3-32 lowercase letters, digits and hyphens, starting with a letter"
ACCOUNT_RULE = "expected a 12-digit AWS account id, or null for any account"
REGION_RULE = "expected an AWS region code such as us-east-1 or eu-west-2"


def _matching(pattern: re.Pattern[str], rule: str) -> AfterValidator:
    """A field check: the value (None passes) must match ``pattern``, else ``rule``."""

    def check(value: str | None) -> str | None:
        if value is not None and not pattern.match(str(value)):
            raise ValueError(rule)
        return value

    return AfterValidator(check)


# Field types the settings models share, so each rule is written once.
ResourceName = Annotated[str, _matching(NAME_PATTERN, NAME_RULE)]
AccountId = Annotated[str | None, _matching(ACCOUNT_PATTERN, ACCOUNT_RULE)]
RegionCode = Annotated[str, _matching(REGION_PATTERN, REGION_RULE)]

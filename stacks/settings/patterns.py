"""Patterns and value sets that more than one settings model checks against."""

from __future__ import annotations

import re

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
# SageMaker instance types: ml.<family>.<size>, e.g. ml.g5.2xlarge.
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
POLICY_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]+$")
# Project and environment names: they prefix physical names (buckets, stacks, alarms).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
NAME_RULE = "expected 3-32 lowercase letters, digits and hyphens, starting with a letter"
ACCOUNT_RULE = "expected a 12-digit AWS account id, or null for any account"
REGION_RULE = "expected an AWS region code such as us-east-1 or eu-west-2"

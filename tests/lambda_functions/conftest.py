"""Fixtures of the Lambda handler tests: the moto-backed platform and ``invoke``, which runs
a handler as Lambda would (a fresh module)."""

from tests.support.platform_fixtures import invoke, platform  # noqa: F401  (fixtures)

"""Fixtures of the Lambda handler tests: the moto-backed platform and ``invoke``, which runs
a handler as Lambda would (a fresh module); the synthesized app, for the environment each
function is given."""

from tests.support.platform_fixtures import invoke, platform  # noqa: F401  (fixtures)
from tests.support.synth import dev, synth  # noqa: F401  (fixtures)

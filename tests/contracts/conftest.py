"""The contract tests read the synthesized app (``tests/support/synth.py``) and run handlers
on the moto-backed platform."""

from tests.support.platform_fixtures import platform  # noqa: F401  (fixture)
from tests.support.synth import dev, prod, synth  # noqa: F401  (fixtures)

"""The contract tests read the synthesized app (``tests/support/synth.py``)."""

from tests.support.synth import dev, prod, synth  # noqa: F401  (fixtures)

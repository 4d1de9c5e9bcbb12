"""The stack tests synthesize the app in-process with the cdk-nag gate on; each settings
variant once per run, shared by the xdist workers (``tests/support/synth.py``). The event-rule
and workflow tests also run handlers on the moto-backed platform."""

from tests.support.platform_fixtures import invoke, platform  # noqa: F401  (fixtures)
from tests.support.synth import dev, prod, synth  # noqa: F401  (fixtures)

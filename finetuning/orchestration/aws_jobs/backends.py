"""Where a fine-tuning job runs: the one ``Backend`` vocabulary of the library, the CLI and the
platform's job manifest.

The library runs all three; the platform runs the two AWS ones (``PLATFORM_BACKENDS``), which
is what a job manifest accepts. Standard library only, so the functions' bundles ship it.
"""

from __future__ import annotations

from enum import StrEnum


class Backend(StrEnum):
    """Where a job runs."""

    BEDROCK = "bedrock"
    SAGEMAKER = "sagemaker"
    LOCAL = "local"


# What ``finetune job create --via-platform`` and the state machine run (no local jobs).
PLATFORM_BACKENDS: tuple[Backend, ...] = (Backend.BEDROCK, Backend.SAGEMAKER)

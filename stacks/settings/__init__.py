"""The CDK app's settings: one package, one strict base, shared patterns.

- :mod:`stacks.settings.base`: :class:`~stacks.settings.base.StrictModel`, ``SettingsError``
  and the one error formatter every settings file goes through;
- :mod:`stacks.settings.patterns`: e-mail, instance type, region, account and name patterns;
- :mod:`stacks.settings.platform`: ``config/<env>.yaml`` (``PlatformSettings``);
- :mod:`stacks.settings.monitoring`: its ``monitoring:`` section (alarms, gauges, budget);
- :mod:`stacks.settings.orchestration`: its ``orchestration:`` section;
- :mod:`stacks.settings.pipeline`: ``config/pipeline.yaml`` (the deployment pipeline);
- :mod:`stacks.settings.naming`: physical names two stacks agree on.

``from stacks.settings import PlatformSettings, load_settings`` works, but the names of the
platform module are resolved on first use (PEP 562): every submodule import runs this file
first, and the leaves (``base``, ``patterns``) must stay leaves, loading neither the platform
model nor the library models it imports (``finetuning.approved_model_deployment``). No
settings module imports names from this package, so there is no import circle either way.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CONFIG_DIR",
    "KNOWN_ACCELERATED_FAMILIES",
    "LOG_RETENTION_DAYS",
    "LogSettings",
    "NetworkSettings",
    "PlatformSettings",
    "SecuritySettings",
    "SettingsError",
    "StorageSettings",
    "TrainingSettings",
    "load_settings",
    "settings_from_mapping",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("stacks.settings.platform"), name)
    raise AttributeError(f"module 'stacks.settings' has no attribute {name!r}")

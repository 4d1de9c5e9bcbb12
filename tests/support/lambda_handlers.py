"""The one loader of Lambda handlers in tests: ``lambda/<folder>/index.py`` imported afresh.

Every function's module-level setup reads its environment once, at import (as on a Lambda
cold start), so each load is a new module under a unique name, imported with the given
extra variables set for the duration of the import only.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from collections.abc import Mapping
from types import ModuleType

from stacks.lambda_bundling import LAMBDA_ROOT

_counter = itertools.count()


def load_handler(folder: str, *, environment: Mapping[str, str] | None = None) -> ModuleType:
    """Import ``lambda/<folder>/index.py`` as a new module, with ``environment`` set while
    its module-level code runs."""
    path = LAMBDA_ROOT / folder / "index.py"
    module_name = f"lambda_{folder}_index_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    extra = dict(environment or {})
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return module

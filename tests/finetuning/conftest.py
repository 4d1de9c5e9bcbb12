"""Fixtures of the library tests (backends, local service, CLI, orchestration helpers): a
moto-backed account with a data bucket and a ``ModelFinetuningService``, the moto-backed
platform with its handler runner; labelled images for evaluation."""

from tests.support.evaluation import labelled_images  # noqa: F401  (fixture)
from tests.support.library import (  # noqa: F401  (fixtures)
    aws,
    base_model_dir,
    bucket,
    python,
    service,
    stand_in_script,
)
from tests.support.mantle import mantle  # noqa: F401  (fixture)
from tests.support.platform_fixtures import invoke, platform  # noqa: F401  (fixtures)

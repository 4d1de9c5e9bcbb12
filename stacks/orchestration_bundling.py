"""Lambda assets built on this machine, without Docker.

Each function's asset is its own folder under ``lambda/`` plus the parts of the
``finetuning`` library it imports, copied by :class:`LocalPythonBundling` (a CDK
``ILocalBundling``, so ``cdk synth`` needs no container runtime). Third-party code comes
from the AWS-managed Powertools layer (Powertools, pydantic, the X-Ray SDK) and the Lambda
runtime (boto3); the only other dependency, PyYAML, is copied from this virtualenv without
its compiled extension, since PyYAML falls back to pure Python and the functions run on
ARM64. The asset hash is taken over the bundle's output, so a change in ``finetuning/``
redeploys the functions that include it.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ROOT = REPO_ROOT / "lambda"
LIBRARY = "finetuning"
# Never part of an asset: caches and compiled files of this machine's interpreter.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", "*.pyd", "tests")
# The bundle's finetuning/__init__.py: the library's own one may import modules (and
# dependencies) that a function does not ship.
_PACKAGE_STUB = '"""The parts of the finetuning library this function ships with."""\n'


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    """Copies a function folder, library modules and pure-Python packages into the asset."""

    def __init__(
        self,
        function_dir: Path,
        *,
        library_paths: Sequence[str],
        pure_packages: Sequence[str] = (),
        extra_files: Sequence[str] = (),
    ) -> None:
        self._function_dir = function_dir
        self._library_paths = tuple(library_paths)
        self._pure_packages = tuple(pure_packages)
        self._extra_files = tuple(extra_files)

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        out = Path(output_dir)
        shutil.copytree(self._function_dir, out, dirs_exist_ok=True, ignore=_IGNORED)
        (out / LIBRARY).mkdir(exist_ok=True)
        (out / LIBRARY / "__init__.py").write_text(_PACKAGE_STUB)
        for relative in self._library_paths:
            _copy(REPO_ROOT / LIBRARY / relative, out / LIBRARY / relative)
        for relative in self._extra_files:
            _copy(REPO_ROOT / relative, out / relative)
        for package in self._pure_packages:
            _copy(_installed_package(package), out / package)
        return True


def _copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise FileNotFoundError(f"cannot bundle {source}: it does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=_IGNORED)
    else:
        shutil.copy2(source, target)


def _installed_package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"cannot bundle {name!r}: it is not an installed package")
    return Path(next(iter(spec.submodule_search_locations)))


def function_code(
    name: str,
    *,
    library_paths: Sequence[str],
    pure_packages: Sequence[str] = (),
    extra_files: Sequence[str] = (),
) -> lambda_.Code:
    """The asset of ``lambda/<name>``, bundled locally."""
    function_dir = LAMBDA_ROOT / name
    if not (function_dir / "index.py").is_file():
        raise FileNotFoundError(f"{function_dir}/index.py: every function folder needs one")
    contents = ",".join((*library_paths, *pure_packages, *extra_files))
    return lambda_.Code.from_asset(
        str(function_dir),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds; CDK requires an image anyway.
            image=DockerImage.from_registry("local-bundling-only"),
            # CDK caches a bundle per source folder and options; naming the contents here
            # keeps two functions built from one folder with different extras apart.
            environment={"BUNDLE_CONTENTS": contents},
            local=LocalPythonBundling(
                function_dir,
                library_paths=library_paths,
                pure_packages=pure_packages,
                extra_files=extra_files,
            ),
        ),
    )

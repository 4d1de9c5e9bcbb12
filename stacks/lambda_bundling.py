"""Lambda assets built on this machine, without Docker, for every stack's functions.

Each function's asset is its own folder under ``lambda/`` plus the parts of the
``finetuning`` library it imports, copied by :class:`LocalPythonBundling` (a CDK
``ILocalBundling``, so ``cdk synth`` needs no container runtime).

Third-party code comes one of two ways:
- most functions use the AWS-managed Powertools layer (Powertools, pydantic, the X-Ray SDK)
  and the Lambda runtime (boto3); pure-Python packages such as PyYAML are copied from this
  virtualenv (PyYAML falls back to pure Python on ARM64);
- a function folder with a ``requirements.txt`` (those that need compiled packages, such as
  matplotlib for report charts) gets those pins installed as ARM64 wheels from PyPI, cached
  in ``.cache/lambda-deps/<hash>`` so only a change of requirements downloads again.

The asset hash is taken over the bundle's inputs (the function folder, the library paths,
extra files, pure packages, the requirements and the Python version), so a change in
``finetuning/`` redeploys exactly the functions that include it, and synth never reads the
hundreds of megabytes of wheels back to hash them. Wheels are hard-linked from the cache
into the bundle (copied where links cannot be made): they are never modified in place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from stacks.source_digest import add_tree

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ROOT = REPO_ROOT / "lambda"
LIBRARY = "finetuning"
WHEEL_CACHE = REPO_ROOT / ".cache" / "lambda-deps"
# Wheels for Lambda's ARM64 (Graviton) Linux. Python 3.12+ runtimes run on Amazon Linux 2023
# (glibc 2.34), so manylinux_2_28 wheels load, see
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
PIP_PLATFORM = ("--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64")
# Never part of an asset: caches and compiled files of this machine's interpreter.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", "*.pyd", "tests")
# The bundle's finetuning/__init__.py: the library's own one may import modules (and
# dependencies) that a function does not ship. It keeps ``__version__``, which the
# evaluation documents record.
_VERSION = re.search(
    r'^__version__ = "([^"]+)"$', (REPO_ROOT / LIBRARY / "__init__.py").read_text(), re.M
)
_PACKAGE_STUB = (
    '"""The parts of the finetuning library this function ships with."""\n\n'
    f'__version__ = "{_VERSION.group(1) if _VERSION else "0"}"\n'
)


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
        python_version: str = "3.14",
    ) -> None:
        self._function_dir = function_dir
        self._library_paths = tuple(library_paths)
        self._pure_packages = tuple(pure_packages)
        self._extra_files = tuple(extra_files)
        self._python_version = python_version

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        out = Path(output_dir)
        requirements = self._function_dir / "requirements.txt"
        if requirements.is_file():
            wheels = _installed_requirements(requirements, self._python_version)
            shutil.copytree(wheels, out, dirs_exist_ok=True, copy_function=_link_or_copy)
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


def bundle_inputs_digest(
    function_dir: Path,
    *,
    library_paths: Sequence[str],
    pure_packages: Sequence[str] = (),
    extra_files: Sequence[str] = (),
    python_version: str = "3.14",
) -> str:
    """SHA-256 over everything a bundle is made from, file names and contents."""
    digest = hashlib.sha256(f"python{python_version}".encode())
    digest.update(_PACKAGE_STUB.encode())
    sources = [function_dir]
    sources += [REPO_ROOT / LIBRARY / relative for relative in library_paths]
    sources += [REPO_ROOT / relative for relative in extra_files]
    sources += [_installed_package(package) for package in pure_packages]
    for source in sources:
        add_tree(digest, source, source.name)
    return digest.hexdigest()


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _installed_requirements(requirements: Path, python_version: str) -> Path:
    """The requirements installed as ARM64 wheels for ``python_version``, cached."""
    key = hashlib.sha256(requirements.read_bytes() + python_version.encode()).hexdigest()[:16]
    cache = WHEEL_CACHE / key
    if not cache.is_dir():
        staging = cache.with_suffix(".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"),
                *("--target", str(staging), *PIP_PLATFORM, "--implementation", "cp"),
                *("--python-version", python_version, "--only-binary=:all:"),
                *("-r", str(requirements)),
            ],
            check=True,
        )
        # Console scripts carry this machine's interpreter path and are never run in Lambda.
        shutil.rmtree(staging / "bin", ignore_errors=True)
        staging.rename(cache)
    return cache


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
    """The asset of ``lambda/<name>``, bundled locally.

    ``library_paths`` are paths inside ``finetuning/`` (``"."`` for the whole package)."""
    function_dir = LAMBDA_ROOT / name
    if not (function_dir / "index.py").is_file():
        raise FileNotFoundError(f"{function_dir}: a function folder needs index.py (handler)")
    contents = ",".join((*library_paths, *pure_packages, *extra_files))
    return lambda_.Code.from_asset(
        str(function_dir),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle_inputs_digest(
            function_dir,
            library_paths=library_paths,
            pure_packages=pure_packages,
            extra_files=extra_files,
        ),
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

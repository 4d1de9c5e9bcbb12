"""The Lambda asset hash: taken over a bundle's inputs (stacks/lambda_bundling.py)."""

from __future__ import annotations

import os
from pathlib import Path

from stacks.lambda_bundling import _link_or_copy, bundle_inputs_digest


def function(tmp_path: Path, body: str = "def handler(event, context):\n    return 1\n") -> Path:
    folder = tmp_path / "fn"
    folder.mkdir(exist_ok=True)
    (folder / "index.py").write_text(body)
    return folder


def test_digest_is_stable_and_ignores_caches(tmp_path: Path) -> None:
    folder = function(tmp_path)
    first = bundle_inputs_digest(folder, library_paths=("platform.py",))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "index.cpython-311.pyc").write_bytes(b"\0")
    assert bundle_inputs_digest(folder, library_paths=("platform.py",)) == first


def test_digest_changes_with_the_handler_the_library_extras_and_the_runtime(
    tmp_path: Path,
) -> None:
    folder = function(tmp_path)
    base = bundle_inputs_digest(folder, library_paths=("platform.py",))
    variants = {
        bundle_inputs_digest(folder, library_paths=("platform.py", "orchestration")),
        bundle_inputs_digest(folder, library_paths=("platform.py",), pure_packages=("yaml",)),
        bundle_inputs_digest(
            folder, library_paths=("platform.py",), extra_files=("training_scripts/__init__.py",)
        ),
        bundle_inputs_digest(folder, library_paths=("platform.py",), python_version="3.13"),
    }
    (folder / "requirements.txt").write_text("pyyaml==6.0.3\n")
    variants.add(bundle_inputs_digest(folder, library_paths=("platform.py",)))
    (folder / "requirements.txt").unlink()
    function(tmp_path, "def handler(event, context):\n    return 2\n")
    variants.add(bundle_inputs_digest(folder, library_paths=("platform.py",)))
    assert base not in variants and len(variants) == 6


def test_wheels_are_linked_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "wheel.py"
    source.write_text("x = 1\n")
    _link_or_copy(str(source), str(tmp_path / "linked.py"))
    assert os.stat(tmp_path / "linked.py").st_ino == os.stat(source).st_ino

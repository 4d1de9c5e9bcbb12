"""Content digests of source trees, for asset hashes and staging folder names."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def source_files(source: Path) -> list[Path]:
    """``source`` itself, or the files under it in a stable order, without bytecode caches."""
    candidates = [source] if source.is_file() else sorted(source.rglob("*"))
    return [
        path
        for path in candidates
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def add_tree(digest: Any, source: Path, name: str) -> list[Path]:
    """Feed each file's path (under ``name``) and bytes to ``digest``; return the files."""
    files = source_files(source)
    for path in files:
        relative = path.relative_to(source).as_posix() if source.is_dir() else ""
        digest.update(f"{name}/{relative}".encode() + b"\0")
        digest.update(path.read_bytes())
    return files

"""Fixtures for the evaluation tests: labelled image folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.support import LABELS, png_bytes


@pytest.fixture
def labelled_images(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Six images in a folder (two per label) and their {path: label} ground truth."""
    folder = tmp_path / "images"
    folder.mkdir()
    truth = {}
    for label, colour in LABELS.items():
        for index in range(2):
            path = folder / f"{label}_{index}.png"
            path.write_bytes(png_bytes(colour))
            truth[str(path)] = label
    return folder, truth

"""Helpers shared by the evaluation tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

LABELS = {"invoice": (200, 40, 40), "letter": (40, 200, 40), "memo": (40, 40, 200)}


def png_bytes(colour: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


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

"""Helpers shared by the evaluation tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io

from PIL import Image

LABELS = {"invoice": (200, 40, 40), "letter": (40, 200, 40), "memo": (40, 40, 200)}


def png_bytes(colour: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()

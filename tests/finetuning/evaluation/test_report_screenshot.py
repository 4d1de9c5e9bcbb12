"""The HTML report rendered by headless Chromium (slow: starts a browser).

Run with ``python -m pytest -m slow tests/finetuning/evaluation/test_report_screenshot.py``; needs
Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from finetuning.evaluation.curves import LossCurves, Point
from finetuning.evaluation.document import EvaluationDocument
from finetuning.evaluation.report import write_report
from tests.finetuning.evaluation.test_report import run

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "screenshot_report.sh"


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    assert shutil.which("chromium") or shutil.which("chromium-browser"), (
        "Chromium is needed for this test: apt-get install -y chromium"
    )
    truth = ["invoice", "letter", "memo"] * 4
    tuned = run("Fine-tuned Model", [*truth[:-2], "memo", "invoice"], truth)
    base = run("Base Model", ["letter"] * 12, truth)
    curves = LossCurves(training=[Point(s, 3 / (s + 1)) for s in range(20)])
    files = write_report(EvaluationDocument(tuned=tuned, base=base), tmp_path, curves=curves)

    shot = tmp_path / "report.png"
    completed = subprocess.run(
        [str(SCRIPT), str(files.html), str(shot), "1280", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        top = image.convert("L").crop((0, 0, 1280, 1200))
        # a rendered page has text and charts: many dark pixels, not a blank white sheet
        assert ImageStat.Stat(top).stddev[0] > 20
        darkest, _ = top.getextrema()
        assert darkest < 60

"""The SageMaker metric definitions match the lines train.py prints, and stay torch-free."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.training import REPO_ROOT
from training_scripts.metric_definitions import (
    LOGGED_METRICS,
    MAX_METRIC_DEFINITIONS,
    METRIC_DEFINITIONS,
)


def test_definitions_have_the_sagemaker_shape() -> None:
    assert 0 < len(METRIC_DEFINITIONS) <= MAX_METRIC_DEFINITIONS
    for definition in METRIC_DEFINITIONS:
        assert set(definition) == {"Name", "Regex"}
        assert 1 <= len(definition["Name"]) <= 255
        assert 1 <= len(definition["Regex"]) <= 500
        assert re.compile(definition["Regex"]).groups == 1
    assert [d["Name"] for d in METRIC_DEFINITIONS] == list(LOGGED_METRICS)


def test_regexes_read_back_what_the_printer_writes() -> None:
    from training_scripts.reporting import metric_line

    values = {
        "step": 20,
        "epoch": 0.5,
        "train_loss": 1.234567,
        "learning_rate": 0.0001963,
        "grad_norm": 12.5,
        "tokens_per_second": 53210.25,
        "eval_loss": 1.3e-05,
        "eval_perplexity": 1.0000130001,
    }
    line = metric_line("metrics", values)
    for definition in METRIC_DEFINITIONS:
        match = re.search(definition["Regex"], line)
        assert match is not None, definition
        assert float(match.group(1)) == float(f"{values[definition['Name']]:.6g}")


def test_a_name_never_matches_inside_a_longer_one() -> None:
    by_name = {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}
    final = "final: global_step=10 train_loss_mean=1.5 train_tokens_per_second=99.0"
    assert re.search(by_name["tokens_per_second"], final) is None
    assert re.search(by_name["train_loss"], final) is None
    eval_line = "eval: step=10 epoch=1 eval_loss=2.5 eval_perplexity=12.18"
    assert re.search(by_name["train_loss"], eval_line) is None
    assert re.search(by_name["eval_loss"], eval_line).group(1) == "2.5"


def test_importing_the_definitions_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from training_scripts.metric_definitions import METRIC_DEFINITIONS\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert METRIC_DEFINITIONS\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

"""The QualityGate action's script: the verdict it reaches on execution outputs.

The script is run exactly as CodeBuild runs it (``python3 -c "$SCRIPT" <dir> <require>``),
on output artifacts laid out the way the Step Functions action writes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.codebuild.quality_gate_check import find_gate_verdicts, judge_execution_output
from stacks.finetuning_pipeline_stage import GATE_CHECK_SCRIPT, gate_check_script

PASSED = {"passed": True, "checks": [{"metric": "accuracy", "passed": True, "message": "ok"}]}
REJECTED = {
    "passed": False,
    "checks": [
        {"metric": "accuracy", "passed": False, "message": "accuracy 0.71 < min 0.85"},
        {"metric": "macro_f1", "passed": True, "message": "macro_f1 0.80 >= min 0.75"},
    ],
}


def run_script(artifact: Path, require: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", gate_check_script(), str(artifact), "true" if require else "false"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_output(root: Path, document: object, name: str = "output.json") -> Path:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(document))
    return root


def test_verdicts_are_found_under_either_spelling_at_any_depth() -> None:
    document = {
        "job": {"status": "Completed"},
        "evaluation": {"quality_gate": PASSED},
        "branches": [{"qualityGate": REJECTED}],
        "notes": {"quality_gate": "text, not a verdict"},
    }
    found = find_gate_verdicts(document)
    assert [path for path, _ in found] == [
        "$.evaluation.quality_gate",
        "$.branches[0].qualityGate",
    ]


def test_a_rejection_fails_and_lists_only_the_failed_checks() -> None:
    passed, lines = judge_execution_output({"output.json": {"quality_gate": REJECTED}}, False)
    assert not passed
    assert lines[0] == "quality gate REJECTED the model at output.json:$.quality_gate"
    assert lines[1:] == ["  failed check: accuracy 0.71 < min 0.85"]


def test_no_verdict_passes_unless_one_is_required() -> None:
    documents = {"output.json": {"status": "SUCCEEDED", "metrics": {"accuracy": 0.9}}}
    assert judge_execution_output(documents, require_verdict=False)[0]
    passed, lines = judge_execution_output(documents, require_verdict=True)
    assert not passed and "this stage requires one" in lines[0]


def test_an_empty_artifact_never_passes() -> None:
    passed, lines = judge_execution_output({}, require_verdict=False)
    assert not passed and "no JSON execution output" in lines[0]


def test_the_shipped_script_passes_an_accepted_model(tmp_path: Path) -> None:
    artifact = write_output(tmp_path, {"evaluation": {"quality_gate": PASSED}})
    result = run_script(artifact, require=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quality gate passed at output.json:$.evaluation.quality_gate" in result.stdout


def test_the_shipped_script_fails_a_rejected_model(tmp_path: Path) -> None:
    artifact = write_output(tmp_path, {"result": {"qualityGate": REJECTED}})
    result = run_script(artifact, require=False)
    assert result.returncode == 1
    assert "REJECTED" in result.stdout and "accuracy 0.71 < min 0.85" in result.stdout


@pytest.mark.parametrize(("require", "code"), [(False, 0), (True, 1)])
def test_the_shipped_script_honours_require_quality_gate(
    tmp_path: Path, require: bool, code: int
) -> None:
    artifact = write_output(tmp_path, {"status": "SUCCEEDED"})
    assert run_script(artifact, require).returncode == code


def test_the_shipped_script_ignores_hidden_and_non_json_files(tmp_path: Path) -> None:
    write_output(tmp_path, {"quality_gate": REJECTED}, name=".codebuild-metadata.json")
    (tmp_path / "notes.txt").write_text("not json")
    write_output(tmp_path, {"quality_gate": PASSED}, name="sub/output.json")
    result = run_script(tmp_path, require=True)
    assert result.returncode == 0, result.stdout
    assert "sub/output.json" in result.stdout


def test_the_shipped_script_fails_on_an_empty_artifact(tmp_path: Path) -> None:
    result = run_script(tmp_path, require=False)
    assert result.returncode == 1 and "nothing to judge" in result.stdout


def test_the_script_needs_nothing_but_the_standard_library() -> None:
    script = gate_check_script()
    imports = {line for line in script.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {
        "import json",
        "import sys",
        "from pathlib import Path",
        "from typing import Any",
    }


def test_the_stage_ships_the_script_file_unchanged() -> None:
    assert GATE_CHECK_SCRIPT.name == "quality_gate_check.py"
    assert gate_check_script() == GATE_CHECK_SCRIPT.read_text(encoding="utf-8")


def test_the_script_file_runs_as_a_program_too(tmp_path: Path) -> None:
    artifact = write_output(tmp_path, {"quality_gate": REJECTED})
    result = subprocess.run(
        [sys.executable, str(GATE_CHECK_SCRIPT), str(artifact), "false"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "failed check: accuracy 0.71 < min 0.85" in result.stdout

"""The fine-tuning stage's quality gate, run by its CodeBuild action.

``python3 -c "$GATE_CHECK_SCRIPT" <artifact dir> <true|false>`` (the stage ships this file's
text in the build spec): reads the Step Functions action's output artifact and exits 1 when
a ``quality_gate``/``qualityGate`` verdict says ``passed: false`` (or, with ``true``, when
there is no verdict at all). Standard library only: the build image has nothing else.
"""

import json
import sys
from pathlib import Path
from typing import Any

# Keys under which the state machine output may carry the evaluation's verdict
# ({"passed": bool, "checks": [...]}, as finetuning.evaluation writes it).
GATE_KEYS = ("quality_gate", "qualityGate")


def find_gate_verdicts(document: Any, where: str = "$") -> list[tuple[str, dict]]:
    """Every ``quality_gate``/``qualityGate`` object with a boolean ``passed`` in ``document``."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            path = f"{where}.{key}"
            is_gate = key in GATE_KEYS and isinstance(value, dict)
            if is_gate and isinstance(value.get("passed"), bool):
                found.append((path, value))
                continue
            found.extend(find_gate_verdicts(value, path))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(find_gate_verdicts(value, f"{where}[{index}]"))
    return found


def judge_execution_output(documents: dict, require_verdict: bool) -> tuple[bool, list[str]]:
    """Decide on the parsed JSON files of the invoke action's output artifact.

    Returns (passed, lines to print). A verdict with ``passed: false`` fails; no verdict at
    all fails only when ``require_verdict``; no JSON document at all always fails.
    """
    if not documents:
        return False, ["no JSON execution output in the artifact: nothing to judge"]
    lines, passed = [], True
    verdicts = [
        (f"{name}:{path}", verdict)
        for name, document in sorted(documents.items())
        for path, verdict in find_gate_verdicts(document)
    ]
    for where, verdict in verdicts:
        if verdict["passed"]:
            lines.append(f"quality gate passed at {where}")
            continue
        passed = False
        lines.append(f"quality gate REJECTED the model at {where}")
        for check in verdict.get("checks") or []:
            if isinstance(check, dict) and check.get("passed") is False:
                lines.append(f"  failed check: {check.get('message') or check}")
    if not verdicts:
        if require_verdict:
            passed = False
            lines.append(
                "no quality_gate verdict in the execution output, and this stage requires "
                "one: add a quality_gate to the job spec"
            )
        else:
            lines.append("no quality_gate verdict in the execution output: the job succeeded")
    return passed, lines


def read_json_documents(root: Path) -> dict:
    """Parse every visible file under ``root`` that holds JSON, by relative path."""
    documents = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        try:
            documents[str(relative)] = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
    return documents


def main(argv: list) -> int:
    """``python3 -c "$SCRIPT" <artifact dir> <true|false>``: exit 0 passes, 1 fails."""
    root, require_verdict = Path(argv[1]), argv[2] == "true"
    passed, lines = judge_execution_output(read_json_documents(root), require_verdict)
    for line in lines:
        print(line)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Scan synthesized templates with checkov; fail on findings docs/compliance.md does not accept.

Usage: ``python scripts/checkov_scan.py [TEMPLATE_DIR] [--checkov PATH]`` (``make checkov``
synthesizes into cdk.out/ first and runs checkov from its own virtualenv,
``.cache/checkov-venv``: checkov pins boto3/botocore older than the platform's).

A finding is accepted when a row of the "Accepted checkov findings" table in
docs/compliance.md names its check id and a resource pattern matching
``<stack name>/<logical id>`` (shell wildcards), with a reason. Exit status: 0 when every
finding is accepted, 1 otherwise (each unaccepted finding printed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "compliance.md"
TABLE_HEADING = "### Accepted checkov findings"
ROW = re.compile(
    r"^\|\s*`(?P<check>CKV2?_AWS_\d+)`\s*\|\s*`(?P<pattern>[^`]+)`\s*\|(?P<reason>.+)\|\s*$"
)
DEFAULT_CHECKOV = ROOT / ".cache" / "checkov-venv" / "bin" / "checkov"


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str  # <stack name>/<logical id>

    def __str__(self) -> str:
        return f"{self.check} {self.resource}: {self.name}"


@dataclass(frozen=True)
class Acceptance:
    check: str
    pattern: str
    reason: str

    def accepts(self, finding: Finding) -> bool:
        return self.check == finding.check and fnmatch.fnmatchcase(finding.resource, self.pattern)


def accepted(doc: Path = DOC) -> list[Acceptance]:
    """The rows of the acceptance table; a row without a reason is an error."""
    lines = doc.read_text().splitlines()
    if TABLE_HEADING not in lines:
        raise SystemExit(f"{doc}: no '{TABLE_HEADING}' section")
    rows = []
    for line in lines[lines.index(TABLE_HEADING) + 1 :]:
        if line.startswith("#"):
            break
        match = ROW.match(line)
        if match:
            reason = match["reason"].strip()
            if len(reason) < 30:
                raise SystemExit(f"{doc}: accepted finding {match['check']} needs a reason")
            rows.append(Acceptance(match["check"], match["pattern"], reason))
    return rows


def scan(template_dir: Path, checkov: Path) -> list[Finding]:
    """Run checkov once over every *.template.json of a cloud assembly."""
    with tempfile.TemporaryDirectory() as scratch:
        # checkov reads a directory; give it only the stack templates (no assets, manifests).
        for template in sorted(template_dir.glob("*.template.json")):
            (Path(scratch) / template.name).write_bytes(template.read_bytes())
        result = subprocess.run(
            [
                str(checkov),
                "--directory",
                scratch,
                "--framework",
                "cloudformation",
                "--output",
                "json",
                "--quiet",
                "--compact",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode not in (0, 1):
        raise SystemExit(f"checkov failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout or "[]")
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        for failed in report.get("results", {}).get("failed_checks", []):
            stack = Path(failed["file_path"]).name.removesuffix(".template.json")
            logical_id = failed["resource"].split(".", 1)[-1]
            resource = f"{stack}/{logical_id}"
            findings.append(Finding(failed["check_id"], failed["check_name"], resource))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template_dir", nargs="?", type=Path, default=ROOT / "cdk.out")
    parser.add_argument("--checkov", type=Path, default=DEFAULT_CHECKOV)
    args = parser.parse_args(argv)
    if not list(args.template_dir.glob("*.template.json")):
        print(f"{args.template_dir}: no *.template.json (run make synth first)", file=sys.stderr)
        return 2
    if not args.checkov.exists():
        print(f"{args.checkov}: not found (make checkov-venv creates it)", file=sys.stderr)
        return 2
    rows = accepted()
    findings = scan(args.template_dir, args.checkov)
    unaccepted = [f for f in findings if not any(r.accepts(f) for r in rows)]
    unused = [r for r in rows if not any(r.accepts(f) for f in findings)]
    for finding in unaccepted:
        print(f"not accepted in docs/compliance.md: {finding}")
    for row in unused:
        print(f"stale acceptance (no such finding any more): {row.check} {row.pattern}")
    print(f"checkov: {len(findings)} findings, {len(findings) - len(unaccepted)} accepted")
    return 1 if unaccepted or unused else 0


if __name__ == "__main__":
    sys.exit(main())

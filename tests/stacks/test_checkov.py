"""checkov over the synthesized dev app: every finding is accepted, with its reason, in
docs/compliance.md ("Accepted checkov findings"), and every acceptance still matches a
finding. Slow (checkov takes about a minute to start and scan on a shared 2-core machine):
`make test-slow` runs it, `make checkov` runs the same scan on cdk.out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.checkov_scan import DEFAULT_CHECKOV, accepted, scan

pytestmark = pytest.mark.slow


def test_checkov_reports_only_accepted_findings(synth, tmp_path: Path) -> None:
    assert DEFAULT_CHECKOV.exists(), f"{DEFAULT_CHECKOV} is missing: run `make test-slow`"
    for stack, template in synth("dev").templates.items():
        (tmp_path / f"{stack}.template.json").write_text(json.dumps(template))
    findings = scan(tmp_path, DEFAULT_CHECKOV)
    rows = accepted()
    unaccepted = [str(f) for f in findings if not any(r.accepts(f) for r in rows)]
    assert not unaccepted, "checkov findings not accepted in docs/compliance.md:\n" + "\n".join(
        unaccepted
    )
    stale = [f"{r.check} {r.pattern}" for r in rows if not any(r.accepts(f) for f in findings)]
    assert not stale, "accepted findings checkov no longer reports:\n" + "\n".join(stale)

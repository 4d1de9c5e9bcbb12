"""Docs and help that tell the truth: docs/cli.md is generated from the parsers, and the
examples in README.md and docs/library.md are accepted by the code they describe."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from finetuning.cli import build_parser
from tests.installed_cli.conftest import REPOSITORY


def test_docs_cli_md_is_generated_from_the_parsers():
    result = subprocess.run(
        [sys.executable, "scripts/cli_reference.py", "--check"],
        cwd=REPOSITORY, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + " (regenerate: make docs)"


def test_docs_cli_md_lists_every_command_and_the_exit_codes():
    text = (REPOSITORY / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in text
    for command in ("job create", "local submit", "evaluate", "data split", "train"):
        assert f"### finetune {command}\n" in text


S3_URI = re.compile(r"s3://[^\s`'\")\]<>]+")


@pytest.mark.parametrize("document", ["README.md", "docs/library.md", "docs/cli.md"])
def test_example_s3_uris_are_ones_the_library_accepts(document):
    from finetuning.uris import parse_s3_uri

    text = (REPOSITORY / document).read_text(encoding="utf-8")
    # Placeholders (s3://<artifacts>/..., s3://...) are not examples.
    uris = [u for u in S3_URI.findall(text) if not re.search(r"[{}]|\.\.\.|://$", u)]
    assert uris
    for uri in uris:
        parse_s3_uri(uri.rstrip(".,;:"), document)


def readme_commands(prefix: str) -> list[list[str]]:
    """The README's ``finetune ...`` example lines starting with ``prefix`` (continued lines
    joined, trailing comments dropped)."""
    text = (REPOSITORY / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.startswith(prefix):
            commands.append(shlex.split(line, comments=True))
    return commands


def test_readme_via_platform_example_is_a_complete_submission():
    from finetuning.cli.job import job_config_from_args
    from finetuning.platform_client import manifest_from_job_config

    (argv,) = readme_commands("finetune job create --via-platform")
    args = build_parser().parse_args(argv[1:])
    manifest = manifest_from_job_config(job_config_from_args(args))
    assert manifest.base_model == "amazon.nova-lite-v1:0:300k"


def test_readme_cli_examples_parse():
    from training_scripts.arguments import parse_args

    commands = readme_commands("finetune ")
    assert len(commands) >= 10
    for argv in commands:
        if argv[1] == "train":  # everything after `train` is train.py's
            parse_args(argv[2:])
        else:
            build_parser().parse_args(argv[1:])  # SystemExit (exit 2) on an unknown option


def test_estimate_help_promises_no_planning_figure(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["data", "estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "planning figure" not in text
    assert "without it the estimate gives tokens and the hourly price, not hours or cost" in text

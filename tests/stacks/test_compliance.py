"""The compliance gate bites, suppressions are justified and documented, templates lint clean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from stacks.compliance import add_compliance_gate, suppress
from tests.support.synth import ROOT, SynthResult, cdk_context


def test_gate_fails_an_insecure_stack(tmp_path) -> None:
    app = App(context=cdk_context(), outdir=str(tmp_path))
    stack = Stack(app, "Insecure")
    s3.Bucket(stack, "PlainBucket")  # no KMS, no SSL-only policy, no logging, no versioning
    add_compliance_gate(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    failed_rules = {
        violation["ruleName"]
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
    }
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "NIST.800.53.R5-S3DefaultEncryptionKMS"} <= (
        failed_rules
    )


def test_gate_passes_once_findings_are_acknowledged(tmp_path) -> None:
    app = App(context=cdk_context(), outdir=str(tmp_path))
    stack = Stack(app, "Acknowledged")
    bucket = s3.Bucket(stack, "PlainBucket")
    add_compliance_gate(app)
    s3_rules = (
        "S3BucketLoggingEnabled",
        "S3BucketReplicationEnabled",
        "S3BucketSSLRequestsOnly",
        "S3BucketVersioningEnabled",
        "S3DefaultEncryptionKMS",
        "S3BucketPublicReadProhibited",
        "S3BucketPublicWriteProhibited",
    )
    rules = [
        "AwsSolutions-S1",
        "AwsSolutions-S10",
        *(f"{pack}-{rule}" for pack in ("HIPAA.Security", "NIST.800.53.R5") for rule in s3_rules),
    ]
    for rule in rules:
        suppress(bucket, rule, "Test fixture: this bucket exists only inside this unit test.")
    app.synth()  # no exception: acknowledgements are honoured


@pytest.mark.parametrize("reason", ["", "ok", "needed for the app"])
def test_suppression_needs_a_real_reason(reason: str) -> None:
    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match="the reason must explain why"):
        suppress(s3.Bucket(stack, "B"), "AwsSolutions-S1", reason)


def test_suppression_of_unknown_pack_is_refused() -> None:
    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match="unknown nag rule 'Foo-S1'"):
        suppress(s3.Bucket(stack, "B"), "Foo-S1", "x" * 50)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_cost_allocation_tags_on_resources(synth, environment: str) -> None:
    result = synth(environment)
    expected = {"project": "llm-finetuning", "environment": environment}
    tagged = 0
    for cfn_type in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::IAM::Role", "AWS::EC2::VPC"):
        for _, logical_id, resource in result.resources(cfn_type):
            if logical_id.startswith("CustomVpcRestrictDefaultSG"):
                continue  # CDK's raw-CfnResource provider role: untaggable, costs nothing
            tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
            assert tags.items() >= expected.items(), logical_id
            assert tags["cost-centre"].startswith("ml-platform"), logical_id
            tagged += 1
    assert tagged >= 9


def test_compliance_doc_lists_every_suppression() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/compliance_report.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _lint(result: SynthResult) -> list[str]:
    from cfnlint.api import lint

    problems = []
    for stack, template in result.templates.items():
        for match in lint(json.dumps(template), regions=["us-east-1"]):
            problems.append(f"{stack}: {match.rule.id} {match.message}")
    return problems


@pytest.mark.parametrize(
    ("environment", "overrides"),
    [("dev", {}), ("prod", {}), ("dev", {"network.nat_gateways": 2})],
    ids=["dev", "prod", "dev-with-nat"],
)
def test_cfn_lint_has_no_errors_or_warnings(synth, environment: str, overrides: dict) -> None:
    assert _lint(synth(environment, **overrides)) == []

"""The platform's CDK Pipelines stack, built by pipeline_app.py from settings files.

One app holds two pipelines, synthesized once with the nag gate on:

- ``delivery``: the defaults. CodeConnections source, dev (smoke job) then prod (manual
  approval), everything in the account of whoever deploys it;
- ``xacct``: an S3 source and one environment in another account and region with a
  smoke job, which needs cross-account roles and a replication bucket.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from aws_cdk import Stack, Stage
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from pipeline_app import build
from stacks.compliance import add_compliance_gate
from stacks.pipeline_stack import PIPELINE_ASSEMBLY_DIR, pinned_cdk_cli_version, synth_commands
from stacks.platform_stacks import platform_environment
from stacks.settings import PlatformSettings, SettingsError
from tests.support.delivery import REPO, as_list, cdk_app, one, resources, statements

pytestmark = pytest.mark.xdist_group("delivery-pipeline")

TOOLCHAIN, PROD_ACCOUNT, PROD_REGION = "111111111111", "222222222222", "eu-west-1"
CONNECTION = (
    "arn:aws:codeconnections:us-east-1:111111111111:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
)


def write_config(directory: Path, pipeline: dict, env_changes: dict[str, dict]) -> Path:
    """config/ copied from the repository, with the given environment changes applied."""
    directory.mkdir(parents=True)
    for name in ("dev", "prod"):
        data = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
        data.update(env_changes.get(name, {}))
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(data))
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    return path


DEFAULT_PIPELINE = {
    "source": {
        "type": "codeconnections",
        "connection_arn": CONNECTION,
        "repository": "my-org/llm-finetuning-platform",
    },
    "stages": [
        {"environment": "dev", "smoke_job": {}},
        {"environment": "prod", "manual_approval": True},
    ],
    "notification_emails": ["ml-platform@example.com"],
}
CROSS_ACCOUNT_PIPELINE = {
    "pipeline_name": "llm-finetuning-xacct",
    "account": TOOLCHAIN,
    "source": {"type": "s3", "bucket": "my-source-bucket", "key": "platform/source.zip"},
    "stages": [
        {
            "environment": "prod",
            "manual_approval": True,
            "smoke_job": {"job_spec": "pipeline/prod-smoke.json", "require_quality_gate": True},
        }
    ],
}


def small_stage(scope: Construct, construct_id: str, settings: PlatformSettings) -> Stage:
    """One environment with a single, nag-clean stack (an SSM parameter)."""
    stage = Stage(scope, construct_id, env=platform_environment(settings))
    stack = Stack(stage, f"{settings.resource_prefix}-marker")
    ssm.StringParameter(
        stack,
        "Marker",
        parameter_name=f"/{settings.project}/{settings.environment}/marker",
        string_value=settings.environment,
    )
    return stage


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipeline-config")
    app = cdk_app()
    default = write_config(root / "default", DEFAULT_PIPELINE, {})
    build(app, default, default.parent)
    xacct = write_config(
        root / "xacct",
        CROSS_ACCOUNT_PIPELINE,
        {"prod": {"account": PROD_ACCOUNT, "region": PROD_REGION}},
    )
    # The cross-account mechanics do not depend on what the stage holds: a small one will do.
    build(app, xacct, xacct.parent, stage_factory=small_stage)
    add_compliance_gate(app)
    return app.synth()  # raises if any nag finding is left unacknowledged


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.get_stack_by_name("llm-finetuning-delivery").template


@pytest.fixture(scope="module")
def xacct(assembly) -> dict:
    return assembly.get_stack_by_name("llm-finetuning-xacct").template


def stages_of(template: dict) -> dict[str, list[dict]]:
    pipeline = one(template, "AWS::CodePipeline::Pipeline")["Properties"]
    return {stage["Name"]: stage["Actions"] for stage in pipeline["Stages"]}


def project_of(template: dict, action: dict) -> dict:
    """The CodeBuild project a CodeBuild action runs."""
    logical_id = action["Configuration"]["ProjectName"]["Ref"]
    return template["Resources"][logical_id]["Properties"]


def test_the_gate_passes_for_every_stack_of_both_pipelines(assembly) -> None:
    names = {stack.stack_name for stack in assembly.stacks}
    assert names == {
        "llm-finetuning-delivery",
        "llm-finetuning-xacct",
        f"llm-finetuning-xacct-support-{PROD_ACCOUNT}",
        f"llm-finetuning-xacct-support-{PROD_REGION}",
    }
    stages = {a.id for a in assembly.artifacts if a.id.startswith("assembly-")}
    assert stages == {
        "assembly-llm-finetuning-delivery-Dev",
        "assembly-llm-finetuning-delivery-Prod",
        "assembly-llm-finetuning-xacct-Prod",
    }


def test_stages_run_in_order(template) -> None:
    assert list(stages_of(template)) == [
        "Source",
        "Build",
        "UpdatePipeline",
        "Assets",
        "Dev",
        "Prod",
    ]


def test_source_is_the_codeconnections_repository(template) -> None:
    (source,) = stages_of(template)["Source"]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == CONNECTION
    assert source["Configuration"]["FullRepositoryId"] == "my-org/llm-finetuning-platform"
    assert source["Configuration"]["BranchName"] == "main"


def test_build_runs_the_readme_test_command_then_synth(template) -> None:
    (synth,) = stages_of(template)["Build"]
    project = project_of(template, synth)
    spec = json.loads(project["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"] == synth_commands()
    assert spec["phases"]["build"]["commands"][:2] == ["make test", "make synth"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.12", "nodejs": "20"}
    assert spec["artifacts"]["base-directory"] == PIPELINE_ASSEMBLY_DIR
    assert project["Environment"]["Image"] == "aws/codebuild/standard:7.0"
    assert project["Environment"]["ComputeType"] == "BUILD_GENERAL1_LARGE"
    assert project["TimeoutInMinutes"] == 60
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert variables["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


def test_the_pipeline_updates_itself_with_the_pinned_cdk_cli(template) -> None:
    (mutation,) = stages_of(template)["UpdatePipeline"]
    spec = json.loads(project_of(template, mutation)["Source"]["BuildSpec"])
    install = " ".join(spec["phases"]["install"]["commands"])
    assert f"aws-cdk@{pinned_cdk_cli_version()}" in install
    assert "cdk -a . deploy llm-finetuning-delivery" in " ".join(
        spec["phases"]["build"]["commands"]
    )


def stage_stacks(assembly, artifact_id: str) -> dict[str, dict]:
    """Stack name -> template of one environment's stage assembly."""
    stage = assembly.get_nested_assembly(artifact_id)
    return {stack.stack_name: stack.template for stack in stage.stacks}


def test_dev_deploys_every_platform_stack_then_runs_the_smoke_job(assembly, template) -> None:
    actions = stages_of(template)["Dev"]
    deploys = [a for a in actions if a["ActionTypeId"]["Provider"] == "CloudFormation"]
    start, gate = (a for a in actions if a["Name"].startswith("SmokeJob."))
    platform = stage_stacks(assembly, "assembly-llm-finetuning-delivery-Dev")
    assert {a["Configuration"]["StackName"] for a in deploys} == set(platform)
    assert "llm-finetuning-dev-storage" in platform
    assert start["Name"] == "SmokeJob.Start" and gate["Name"] == "SmokeJob.QualityGate"
    assert start["RunOrder"] > max(a["RunOrder"] for a in deploys)
    assert gate["RunOrder"] == start["RunOrder"] + 1
    assert start["Configuration"]["Input"] == "pipeline/smoke-job.json"
    assert start["Configuration"]["InputType"] == "FilePath"
    arn = start["Configuration"]["StateMachineArn"]["Fn::Join"][1]
    assert arn[-1] == ":stateMachine:llm-finetuning-dev-finetuning"
    assert {"Ref": "AWS::AccountId"} in arn


def test_the_smoke_job_targets_the_deployed_state_machine_and_its_key(assembly, template) -> None:
    """Cross-check against the orchestration stack the Dev stage deploys."""
    platform = stage_stacks(assembly, "assembly-llm-finetuning-delivery-Dev")
    orchestration = platform["llm-finetuning-dev-orchestration"]
    machine = one(orchestration, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineName"] == "llm-finetuning-dev-finetuning"
    assert machine["StateMachineType"] == "STANDARD"  # Express executions are not awaited
    key_id = machine["EncryptionConfiguration"]["KmsKeyId"]["Fn::GetAtt"][0]
    alias = next(
        a["Properties"]["AliasName"]
        for a in resources(orchestration, "AWS::KMS::Alias").values()
        if a["Properties"]["TargetKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    )
    key_use = next(
        s for s in statements(template) if s.get("Sid") == "UseStateMachineKeyThroughStepFunctions"
    )
    assert key_use["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": alias}


def test_prod_waits_for_a_manual_approval_before_deploying(template) -> None:
    actions = sorted(stages_of(template)["Prod"], key=lambda a: a["RunOrder"])
    approval = actions[0]
    assert approval["Name"] == "ApproveProd"
    assert approval["ActionTypeId"]["Category"] == "Approval"
    assert approval["Configuration"]["NotificationArn"] == {
        "Ref": _id(template, "PipelineTopic", "AWS::SNS::Topic")
    }
    assert all(a["RunOrder"] > approval["RunOrder"] for a in actions[1:])
    assert not any(a["Name"].startswith("SmokeJob") for a in actions)


def test_artifacts_are_encrypted_with_the_rotated_customer_key(template) -> None:
    pipeline = one(template, "AWS::CodePipeline::Pipeline")["Properties"]
    store = pipeline["ArtifactStore"]
    key_id, bucket_id = (
        _id(template, "ArtifactKey", "AWS::KMS::Key"),
        _id(template, "ArtifactBucket", "AWS::S3::Bucket"),
    )
    assert store["Location"] == {"Ref": bucket_id}
    assert store["EncryptionKey"] == {"Id": {"Fn::GetAtt": [key_id, "Arn"]}, "Type": "KMS"}
    assert pipeline["PipelineType"] == "V2" and pipeline["Name"] == "llm-finetuning-delivery"
    assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    bucket = template["Resources"][bucket_id]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::GetAtt": [key_id, "Arn"]
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": _id(template, "AccessLogsBucket", "AWS::S3::Bucket")
    }
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_every_build_logs_to_the_encrypted_log_group(template) -> None:
    group_id = _id(template, "BuildLogs", "AWS::Logs::LogGroup")
    assert template["Resources"][group_id]["Properties"]["KmsKeyId"] == {
        "Fn::GetAtt": [_id(template, "ArtifactKey", "AWS::KMS::Key"), "Arn"]
    }
    for project in resources(template, "AWS::CodeBuild::Project").values():
        logs = project["Properties"]["LogsConfig"]["CloudWatchLogs"]
        assert logs == {"GroupName": {"Ref": group_id}, "Status": "ENABLED"}


def test_runs_and_approvals_notify_the_encrypted_topic(template) -> None:
    rule = one(template, "AWS::CodeStarNotifications::NotificationRule")["Properties"]
    assert set(rule["EventTypeIds"]) == {
        "codepipeline-pipeline-pipeline-execution-failed",
        "codepipeline-pipeline-pipeline-execution-succeeded",
        "codepipeline-pipeline-manual-approval-needed",
    }
    topic_id = _id(template, "PipelineTopic", "AWS::SNS::Topic")
    assert rule["Targets"] == [{"TargetAddress": {"Ref": topic_id}, "TargetType": "SNS"}]
    assert "KmsMasterKeyId" in template["Resources"][topic_id]["Properties"]
    subscription = one(template, "AWS::SNS::Subscription")["Properties"]
    assert subscription["Endpoint"] == "ml-platform@example.com"


def test_no_iam_statement_allows_every_action(template, xacct) -> None:
    for granted in [*statements(template), *statements(xacct)]:
        assert "*" not in as_list(granted["Action"])


# -- cross-account, cross-region, S3 source ------------------------------------------------


def test_s3_source_starts_on_cloudtrail_events(xacct) -> None:
    (source,) = stages_of(xacct)["Source"]
    assert source["ActionTypeId"]["Provider"] == "S3"
    assert source["Configuration"]["S3Bucket"] == "my-source-bucket"
    assert source["Configuration"]["S3ObjectKey"] == "platform/source.zip"
    assert source["Configuration"]["PollForSourceChanges"] is False
    rule = next(
        r["Properties"]
        for r in resources(xacct, "AWS::Events::Rule").values()
        if "aws.s3" in r["Properties"]["EventPattern"]["source"]
    )
    assert rule["EventPattern"]["detail"]["requestParameters"]["key"] == ["platform/source.zip"]


def test_smoke_job_in_another_account_runs_with_a_role_of_that_account(assembly, xacct) -> None:
    start = next(a for a in stages_of(xacct)["Prod"] if a["Name"] == "SmokeJob.Start")
    machine = (
        f"arn:aws:states:{PROD_REGION}:{PROD_ACCOUNT}:stateMachine:llm-finetuning-prod-finetuning"
    )
    assert start["Configuration"]["StateMachineArn"] == machine
    assert start["Region"] == PROD_REGION
    support = assembly.get_stack_by_name(f"llm-finetuning-xacct-support-{PROD_ACCOUNT}").template
    role = one(support, "AWS::IAM::Role")["Properties"]
    assert start["RoleArn"] == f"arn:aws:iam::{PROD_ACCOUNT}:role/{role['RoleName']}"
    condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert "aws:PrincipalArn" in condition["ArnEquals"]
    started = [s for s in statements(support) if "states:StartExecution" in as_list(s["Action"])]
    assert [s["Resource"] for s in started] == [machine]


def test_the_other_account_reaches_the_artifacts_through_key_and_bucket_policies(
    assembly,
) -> None:
    # Actions in another region read the copies in that region's replication bucket.
    support = assembly.get_stack_by_name(f"llm-finetuning-xacct-support-{PROD_REGION}").template
    key_policy = json.dumps(one(support, "AWS::KMS::Key")["Properties"]["KeyPolicy"])
    deploy_role = (
        f":iam::{PROD_ACCOUNT}:role/cdk-hnb659fds-deploy-role-{PROD_ACCOUNT}-{PROD_REGION}"
    )
    assert deploy_role in key_policy
    assert f"arn:aws:iam::{PROD_ACCOUNT}:role/llm-finetuning-xacct-supp" in key_policy
    bucket_policies = json.dumps(resources(support, "AWS::S3::BucketPolicy"))
    assert deploy_role in bucket_policies


def test_the_other_regions_replication_bucket_is_versioned_and_access_logged(assembly) -> None:
    support = assembly.get_stack_by_name(f"llm-finetuning-xacct-support-{PROD_REGION}").template
    buckets = resources(support, "AWS::S3::Bucket")
    replication = next(b for k, b in buckets.items() if "Replication" in k and "Logs" not in k)
    logs_id = next(k for k in buckets if k.startswith("ReplicationAccessLogs"))
    properties = replication["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    key = one(support, "AWS::KMS::Key")["Properties"]
    assert key["EnableKeyRotation"] is True


def test_a_pinned_environment_account_needs_a_pinned_pipeline_account(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", DEFAULT_PIPELINE, {"dev": {"account": PROD_ACCOUNT}})
    with pytest.raises(SettingsError, match="set the pipeline's account too"):
        build(cdk_app(), config, config.parent)


def _id(template: dict, prefix: str, resource_type: str) -> str:
    matches = [k for k in resources(template, resource_type) if k.startswith(prefix)]
    assert len(matches) == 1, f"expected one resource named {prefix}*, found {matches}"
    return matches[0]

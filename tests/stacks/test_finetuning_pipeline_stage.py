"""The fine-tuning stage inside a user's own CodePipeline, with the nag gate on."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Environment, PhysicalName, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn

from stacks.compliance import add_compliance_gate, suppress
from stacks.finetuning_pipeline_stage import (
    FineTuningActionProps,
    FineTuningStage,
    FineTuningStep,
    acknowledge_artifact_access,
    gate_check_script,
)
from tests.support.delivery import as_list, cdk_app, one, resources, statements

pytestmark = pytest.mark.xdist_group("delivery-user-pipeline")

ACCOUNT, OTHER_ACCOUNT, REGION = "111111111111", "222222222222", "us-east-1"
MACHINE_NAME = "llm-finetuning-dev-finetuning"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{MACHINE_NAME}"
SHARED_ARN = f"arn:aws:states:{REGION}:{OTHER_ACCOUNT}:stateMachine:{MACHINE_NAME}"
CONNECTION = (
    f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
)


def _user_bucket(stack: Stack, construct_id: str, key: kms.IKey, **kwargs) -> s3.Bucket:
    return s3.Bucket(
        stack,
        construct_id,
        encryption_key=key,
        enforce_ssl=True,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        removal_policy=RemovalPolicy.RETAIN,
        **kwargs,
    )


def build_user_pipeline(app) -> Stack:
    """What a user already has: Source -> Build -> Deploy; then the fine-tuning stages."""
    stack = Stack(app, "UserPipeline", env=Environment(account=ACCOUNT, region=REGION))
    key = kms.Key(stack, "ArtifactKey", enable_key_rotation=True)
    logs = _user_bucket(stack, "AccessLogs", key)
    # A key and a physical name: another account's role names this bucket in its policy.
    artifacts = _user_bucket(
        stack,
        "Artifacts",
        key,
        server_access_logs_bucket=logs,
        bucket_name=PhysicalName.GENERATE_IF_NEEDED,
    )
    sources = _user_bucket(stack, "Sources", key, server_access_logs_bucket=logs)
    pipeline = codepipeline.Pipeline(
        stack, "Pipeline", artifact_bucket=artifacts, pipeline_type=codepipeline.PipelineType.V2
    )
    source = codepipeline.Artifact("Source")
    pipeline.add_stage(
        stage_name="Source",
        actions=[
            actions.S3SourceAction(
                action_name="Repository",
                bucket=sources,
                bucket_key="repo.zip",
                output=source,
                trigger=actions.S3Trigger.POLL,
            )
        ],
    )
    build = pipeline.add_stage(
        stage_name="Build", actions=[actions.ManualApprovalAction(action_name="Review")]
    )
    pipeline.add_stage(
        stage_name="Deploy", actions=[actions.ManualApprovalAction(action_name="Ship")]
    )

    # The construct under test: one stage placed after Build, one appended at the end
    # that runs a state machine in another account.
    FineTuningStage(
        stack,
        "FineTune",
        pipeline=pipeline,
        source=source,
        state_machine=sfn.StateMachine.from_state_machine_arn(stack, "Machine", MACHINE_ARN),
        job_spec="jobs/smoke.json",
        placement=codepipeline.StagePlacement(just_after=build),
        require_quality_gate=True,
        state_machine_key_alias="alias/llm-finetuning-dev",
    )
    FineTuningStage(
        stack,
        "FineTuneShared",
        pipeline=pipeline,
        source=source,
        state_machine=sfn.StateMachine.from_state_machine_arn(stack, "Shared", SHARED_ARN),
        job_spec="jobs/shared.json",
        stage_name="FineTuneShared",
        execution_name_prefix="release",
    )

    # The user acknowledges what their own pipeline was already flagged for.
    for role in (pipeline.role, _role(pipeline, "Source")):
        acknowledge_artifact_access(
            role, artifacts, write=True, purpose="The user's own pipeline and source roles."
        )
    for rule in ("AwsSolutions-S1", "HIPAA.Security-S3BucketLoggingEnabled",
                 "NIST.800.53.R5-S3BucketLoggingEnabled"):  # fmt: skip
        suppress(logs, rule, "The user's access-log bucket; logging it to itself would loop.")
    for bucket in (logs, artifacts, sources):
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                bucket,
                f"{pack}-S3BucketReplicationEnabled",
                "The user's single-region test pipeline buckets need no replication.",
            )
    return stack


def _role(pipeline: codepipeline.Pipeline, stage: str):
    scope = pipeline.node.find_child(stage)
    return next(c for c in scope.node.find_all() if c.node.id == "CodePipelineActionRole")


@pytest.fixture(scope="module")
def assembly():
    app = cdk_app()
    build_user_pipeline(app)
    add_compliance_gate(app)
    return app.synth()  # raises if any nag finding is left unacknowledged


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.get_stack_by_name("UserPipeline").template


@pytest.fixture(scope="module")
def stages(template) -> dict[str, dict]:
    pipeline = one(template, "AWS::CodePipeline::Pipeline")["Properties"]
    return {stage["Name"]: stage for stage in pipeline["Stages"]}


def test_the_gate_passes_with_the_stage_in_a_users_pipeline(assembly) -> None:
    names = {stack.stack_name for stack in assembly.stacks}
    assert names == {"UserPipeline", f"UserPipeline-support-{OTHER_ACCOUNT}"}


def test_stage_goes_where_it_is_placed(stages) -> None:
    assert list(stages) == ["Source", "Build", "FineTune", "Deploy", "FineTuneShared"]


def test_start_then_quality_gate(stages) -> None:
    start, gate = stages["FineTune"]["Actions"]
    assert (start["Name"], start["RunOrder"]) == ("Start", 1)
    assert (gate["Name"], gate["RunOrder"]) == ("QualityGate", 2)
    assert start["ActionTypeId"] == {
        "Category": "Invoke",
        "Owner": "AWS",
        "Provider": "StepFunctions",
        "Version": "1",
    }
    assert gate["ActionTypeId"]["Provider"] == "CodeBuild"


def test_start_reads_the_job_spec_from_the_source_and_hands_its_output_to_the_gate(
    stages,
) -> None:
    start, gate = stages["FineTune"]["Actions"]
    assert start["Configuration"] == {
        "StateMachineArn": MACHINE_ARN,
        "InputType": "FilePath",
        "Input": "jobs/smoke.json",
        "ExecutionNamePrefix": "pipeline",
    }
    assert start["InputArtifacts"] == [{"Name": "Source"}]
    assert gate["InputArtifacts"] == start["OutputArtifacts"]


def test_start_role_may_start_and_watch_only_its_own_executions(template) -> None:
    granted = list(statements(template))
    start = next(s for s in granted if "states:StartExecution" in as_list(s["Action"]))
    describe = next(s for s in granted if s["Action"] == "states:DescribeExecution")
    assert start["Resource"] == MACHINE_ARN
    assert describe["Resource"] == (
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{MACHINE_NAME}:pipeline*"
    )


def test_start_role_uses_the_state_machine_key_only_through_step_functions(template) -> None:
    key_use = next(
        s for s in statements(template) if s.get("Sid") == "UseStateMachineKeyThroughStepFunctions"
    )
    assert key_use["Resource"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"
    assert key_use["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/llm-finetuning-dev"},
        "StringEquals": {"kms:ViaService": f"states.{REGION}.amazonaws.com"},
    }


def test_quality_gate_project_runs_the_check_small_and_encrypted(template) -> None:
    projects = resources(template, "AWS::CodeBuild::Project")
    required = next(p for k, p in projects.items() if k.startswith("FineTuneQualityGateCheck"))
    optional = next(p for k, p in projects.items() if k.startswith("FineTuneSharedQualityGate"))
    properties = required["Properties"]
    assert properties["Environment"]["ComputeType"] == "BUILD_GENERAL1_SMALL"
    assert properties["Environment"]["Type"] == "ARM_CONTAINER"
    assert properties["TimeoutInMinutes"] == 10
    assert properties["EncryptionKey"] == {"Fn::GetAtt": [_key_id(template), "Arn"]}
    build_spec = json.loads(properties["Source"]["BuildSpec"])
    assert build_spec["env"]["variables"]["GATE_CHECK_SCRIPT"] == gate_check_script()
    assert build_spec["phases"]["build"]["commands"] == [
        'python3 -c "$GATE_CHECK_SCRIPT" "$CODEBUILD_SRC_DIR" true'
    ]
    lenient = json.loads(optional["Properties"]["Source"]["BuildSpec"])
    assert lenient["phases"]["build"]["commands"][0].endswith('"$CODEBUILD_SRC_DIR" false')


def test_a_state_machine_in_another_account_gets_a_role_there(assembly, stages) -> None:
    support = assembly.get_stack_by_name(f"UserPipeline-support-{OTHER_ACCOUNT}").template
    start, _ = stages["FineTuneShared"]["Actions"]
    assert start["Configuration"]["StateMachineArn"] == SHARED_ARN
    assert start["Configuration"]["ExecutionNamePrefix"] == "release"
    granted = [s for s in statements(support) if "states:StartExecution" in as_list(s["Action"])]
    assert [s["Resource"] for s in granted] == [SHARED_ARN]
    role = one(support, "AWS::IAM::Role")["Properties"]
    assert start["RoleArn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:role/{role['RoleName']}"


def test_the_other_account_reaches_artifacts_through_the_key_policy(template) -> None:
    key_policy = template["Resources"][_key_id(template)]["Properties"]["KeyPolicy"]
    principals = str([s.get("Principal") for s in key_policy["Statement"]])
    assert f"arn:aws:iam::{OTHER_ACCOUNT}:role/" in principals


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"job_spec": "spec.yaml"}, "expected a .json job spec"),
        ({"job_spec": "/abs/spec.json"}, "relative to the repository root"),
        ({"execution_name_prefix": "x" * 44}, "expected 1-43 letters"),
        ({"execution_name_prefix": "has space"}, "expected 1-43 letters"),
    ],
)
def test_bad_stage_properties_are_refused_before_anything_is_built(
    changes: dict, expected: str
) -> None:
    stack = Stack(cdk_app(), "Scratch")
    machine = sfn.StateMachine.from_state_machine_arn(stack, "Machine", MACHINE_ARN)
    props = {"state_machine": machine, "job_spec": "spec.json", **changes}
    with pytest.raises(ValueError, match=expected):
        FineTuningActionProps(**props)


def _key_id(template: dict) -> str:
    return next(iter(resources(template, "AWS::KMS::Key")))


def test_two_fine_tuning_steps_can_follow_one_cdk_pipelines_stage() -> None:
    """FineTuningStep in a user's CDK Pipelines pipeline (no gate: only the wiring)."""
    app = cdk_app()
    stack = Stack(app, "UserCdkPipeline", env=Environment(account=ACCOUNT, region=REGION))
    source = pipelines.CodePipelineSource.connection(
        "my-org/my-app", "main", connection_arn=CONNECTION
    )
    pipeline = pipelines.CodePipeline(
        stack,
        "Pipeline",
        cross_account_keys=True,
        synth=pipelines.ShellStep("Synth", input=source, commands=["npx cdk synth"]),
    )
    application = Stage(stack, "App")
    Stack(application, "Service")  # an (empty) stack to deploy
    machine = sfn.StateMachine.from_state_machine_arn(stack, "Machine", MACHINE_ARN)
    steps = [
        FineTuningStep(
            name,
            input=source,
            props=FineTuningActionProps(state_machine=machine, job_spec=f"jobs/{name}.json"),
        )
        for name in ("Classifier", "Extractor")
    ]
    pipeline.add_stage(application, post=steps)

    template = app.synth().get_stack_by_name("UserCdkPipeline").template
    stages = {
        s["Name"]: s["Actions"]
        for s in one(template, "AWS::CodePipeline::Pipeline")["Properties"]["Stages"]
    }
    fine_tuning = sorted(
        (a for a in stages["App"] if a["Name"].split(".")[0] in ("Classifier", "Extractor")),
        key=lambda a: (a["RunOrder"], a["Name"]),
    )
    assert [(a["Name"], a["Configuration"].get("Input")) for a in fine_tuning] == [
        ("Classifier.Start", "jobs/Classifier.json"),
        ("Extractor.Start", "jobs/Extractor.json"),
        ("Classifier.QualityGate", None),
        ("Extractor.QualityGate", None),
    ]
    deploy = max(a["RunOrder"] for a in stages["App"] if a["Name"].startswith("Service"))
    assert {a["RunOrder"] for a in fine_tuning} == {deploy + 1, deploy + 2}
    assert len(resources(template, "AWS::CodeBuild::Project")) >= 3  # synth, 2 gates

"""Fine-tuning as a pipeline stage: start a job, wait for it, gate on its result.

Two actions do the work, in order:

1. ``Start`` (Step Functions invoke action) starts the platform's fine-tuning state machine
   with a JSON job spec read from the input artifact, and waits: for a Standard state
   machine CodePipeline polls the execution until it ends and fails the action when it ends
   FAILED, TIMED_OUT or ABORTED (up to 7 days). The execution output becomes an artifact.
2. ``QualityGate`` (a small CodeBuild action) reads that output and fails when it carries a
   quality-gate verdict with ``passed: false`` (or, when asked, no verdict at all), printing
   the failed checks. A state machine that fails the run on rejection is caught by step 1;
   one that records the rejection and ends SUCCEEDED is caught here.

See https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-StepFunctions.html
for the invoke action's behaviour, input, output artifact and 7-day timeout.

Use :class:`FineTuningStage` to add a stage to any ``codepipeline.Pipeline`` and
:class:`FineTuningStep` inside a CDK Pipelines (``pipelines.CodePipeline``) stage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ArnFormat, Duration, Stack, Token, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.compliance import suppress, suppress_wildcards
from stacks.settings.pipeline import check_job_spec_path

# The execution name is "<prefix>-<36-character action execution id>" and may be 80
# characters long, see
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
MAX_EXECUTION_NAME_PREFIX = 80 - 37
EXECUTION_NAME_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
GATE_CHECK_TIMEOUT = Duration.minutes(10)
GATE_CHECK_SCRIPT = Path(__file__).resolve().parent / "codebuild" / "quality_gate_check.py"


def gate_check_script() -> str:
    """The standalone script the QualityGate action runs (``stacks/codebuild/``)."""
    return GATE_CHECK_SCRIPT.read_text(encoding="utf-8")


# -- the actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuningActionProps:
    """What the two actions need; shared by the stage construct and the CDK Pipelines step."""

    state_machine: sfn.IStateMachine
    job_spec: str
    execution_name_prefix: str = "pipeline"
    require_quality_gate: bool = False
    # Alias of the KMS key that encrypts the state machine, if a customer key does:
    # starting and describing its executions then needs that key (via Step Functions).
    state_machine_key_alias: str | None = None
    # Key for the gate check's build artifacts; defaults to the artifact bucket's key.
    encryption_key: kms.IKey | None = None
    log_group: logs.ILogGroup | None = None

    def __post_init__(self) -> None:
        check_job_spec_path(self.job_spec)
        prefix = self.execution_name_prefix
        if len(prefix) > MAX_EXECUTION_NAME_PREFIX or not EXECUTION_NAME_PREFIX_PATTERN.match(
            prefix
        ):
            raise ValueError(
                f"execution_name_prefix {prefix!r}: expected 1-{MAX_EXECUTION_NAME_PREFIX} "
                "letters, digits, hyphens and underscores (the execution name adds a "
                "36-character id and may be 80 characters long)"
            )


# Wildcard actions that CDK's own grants write (aws-s3 bucket grants, aws-kms key grants).
BUCKET_READ_WILDCARDS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
BUCKET_WRITE_WILDCARDS = ("s3:DeleteObject*", "s3:Abort*")
KEY_USE_WILDCARDS = ("kms:ReEncrypt*", "kms:GenerateDataKey*")
INLINE_POLICY_RULES = ("HIPAA.Security-IAMNoInlinePolicy", "NIST.800.53.R5-IAMNoInlinePolicy")


def acknowledge_artifact_access(
    role: iam.IRole, bucket: s3.IBucket, *, write: bool, purpose: str, extra: Sequence[str] = ()
) -> None:
    """Acknowledge the findings of CDK's artifact-bucket grant on a single-purpose role.

    ``purpose`` says what the role does; ``extra`` are further wildcard resources of the
    same role (already reviewed by the caller and described in ``purpose``).
    """
    if not isinstance(role, Construct):
        return  # an imported role: its policies are not in this app
    wildcard_actions = [*BUCKET_READ_WILDCARDS, *(BUCKET_WRITE_WILDCARDS if write else ())]
    resources = [bucket.arn_for_objects("*"), *extra]
    if bucket.encryption_key is not None:
        wildcard_actions.extend(KEY_USE_WILDCARDS)
        if _other_account(role, bucket):
            # A role in another account gets the key grant on "*" in its own policy; the
            # key policy in the pipeline account names this role, which is what limits it.
            resources.append("*")
    suppress_wildcards(
        role,
        f"{purpose} The object wildcard and the Get*/List*"
        f"{'/Delete*/Abort*' if write else ''} actions are CDK's grant on the pipeline's own "
        "artifact bucket (and its key), which holds only this pipeline's artifacts.",
        actions=wildcard_actions,
        resources=resources,
    )
    for rule in INLINE_POLICY_RULES:
        suppress(
            role,
            rule,
            f"{purpose} CDK writes the grants of this single-purpose pipeline role as its "
            "inline default policy; the role lives and dies with its action.",
        )


def _other_account(role: iam.IRole, bucket: s3.IBucket) -> bool:
    mine, theirs = Stack.of(role).account, Stack.of(bucket).account
    return not Token.is_unresolved(mine) and not Token.is_unresolved(theirs) and mine != theirs


class _StartFineTuning(actions.StepFunctionInvokeAction):
    """The invoke action, plus what CDK's action does not grant by itself.

    ``bound`` receives the role CodePipeline chose for the action (created next to the
    action, or in a support stack of the state machine's account when that differs), so
    the KMS permission and the acknowledgements go onto exactly that role. It also writes
    the job spec path the way the Step Functions action reads it.
    """

    def __init__(self, *, props: FineTuningActionProps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fine_tuning = props

    def _bound(
        self, scope: Construct, stage: codepipeline.IStage, *, bucket: s3.IBucket, role: iam.IRole
    ) -> codepipeline.ActionConfig:
        config = super()._bound(scope, stage, bucket=bucket, role=role)
        props = self._fine_tuning
        machine = props.state_machine
        # The same ARN CDK's action builds for states:DescribeExecution.
        arn = Stack.of(machine).split_arn(machine.state_machine_arn, ArnFormat.COLON_RESOURCE_NAME)
        executions = Stack.of(machine).format_arn(
            partition=arn.partition,
            account=arn.account,
            region=arn.region,
            service="states",
            resource="execution",
            resource_name=f"{arn.resource_name}:{props.execution_name_prefix}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        extra = [executions]
        if props.state_machine_key_alias:
            keys = f"arn:{arn.partition}:kms:{arn.region}:{arn.account}:key/*"
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="UseStateMachineKeyThroughStepFunctions",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[keys],
                    conditions={
                        "ForAnyValue:StringEquals": {
                            "kms:ResourceAliases": props.state_machine_key_alias
                        },
                        "StringEquals": {"kms:ViaService": f"states.{arn.region}.amazonaws.com"},
                    },
                )
            )
            extra.append(keys)
        acknowledge_artifact_access(
            role,
            bucket,
            write=True,
            purpose="Starts the fine-tuning state machine from the job spec artifact, writes "
            "the execution output artifact, and describes only the executions it starts "
            f"(names begin with {props.execution_name_prefix!r}); the state machine's key, "
            "if any, is matched by its alias and usable only through Step Functions.",
            extra=extra,
        )
        # CDK renders a FilePath input as "<artifact>::<path>" (the CloudFormation-action
        # form); the Step Functions action wants the path inside its single input artifact,
        # e.g. "assets/input.json", see
        # https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-StepFunctions.html
        configuration = dict(config.configuration or {})
        configuration["Input"] = props.job_spec
        return codepipeline.ActionConfig(configuration=configuration)


class _CheckQualityGate(actions.CodeBuildAction):
    """The CodeBuild action, acknowledging the findings of the role CodePipeline gives it."""

    def _bound(
        self, scope: Construct, stage: codepipeline.IStage, *, bucket: s3.IBucket, role: iam.IRole
    ) -> codepipeline.ActionConfig:
        config = super()._bound(scope, stage, bucket=bucket, role=role)
        if isinstance(role, Construct):
            for rule in INLINE_POLICY_RULES:
                suppress(
                    role,
                    rule,
                    "Single-purpose role that starts and watches the quality-gate build; CDK "
                    "writes its codebuild:StartBuild/BatchGetBuilds/StopBuild grant inline.",
                )
        return config


def add_finetuning_actions(
    scope: Construct,
    stage: codepipeline.IStage,
    *,
    props: FineTuningActionProps,
    source: codepipeline.Artifact,
    artifact_bucket: s3.IBucket,
    run_order: int = 1,
    action_prefix: str = "",
) -> tuple[actions.StepFunctionInvokeAction, actions.CodeBuildAction]:
    """Add Start (at ``run_order``) and QualityGate (the next run order) to ``stage``."""
    output = codepipeline.Artifact(f"{_artifact_name(scope)}_ExecutionOutput")
    start = _StartFineTuning(
        props=props,
        action_name=f"{action_prefix}Start",
        state_machine=props.state_machine,
        state_machine_input=actions.StateMachineInput.file_path(source.at_path(props.job_spec)),
        execution_name_prefix=props.execution_name_prefix,
        output=output,
        run_order=run_order,
    )
    project = _gate_check_project(scope, props, artifact_bucket)
    check = _CheckQualityGate(
        action_name=f"{action_prefix}QualityGate",
        project=project,
        input=output,
        run_order=run_order + 1,
    )
    stage.add_action(start)
    stage.add_action(check)
    return start, check


def _artifact_name(scope: Construct) -> str:
    # Artifact names: letters, digits, _ and -, unique in the pipeline.
    return re.sub(r"[^A-Za-z0-9_-]", "_", scope.node.path)[-80:]


def _gate_check_project(
    scope: Construct, props: FineTuningActionProps, artifact_bucket: s3.IBucket
) -> codebuild.PipelineProject:
    logging = (
        codebuild.LoggingOptions(
            cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=props.log_group)
        )
        if props.log_group
        else None
    )
    project = codebuild.PipelineProject(
        scope,
        "QualityGateCheck",
        description="Fails the fine-tuning stage when the job's quality gate rejected the model",
        build_spec=codebuild.BuildSpec.from_object(
            {
                "version": "0.2",
                "env": {"variables": {"GATE_CHECK_SCRIPT": gate_check_script()}},
                "phases": {
                    "build": {
                        "commands": [
                            'python3 -c "$GATE_CHECK_SCRIPT" "$CODEBUILD_SRC_DIR" '
                            f"{'true' if props.require_quality_gate else 'false'}"
                        ]
                    }
                },
            }
        ),
        # Reading a JSON file needs the smallest ARM build box there is.
        environment=codebuild.BuildEnvironment(
            build_image=codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0,
            compute_type=codebuild.ComputeType.SMALL,
        ),
        encryption_key=props.encryption_key or artifact_bucket.encryption_key,
        timeout=GATE_CHECK_TIMEOUT,
        logging=logging,
        grant_report_group_permissions=False,
    )
    suppress(
        project,
        "HIPAA.Security-CodeBuildProjectSourceRepoUrl",
        "The quality-gate project's source is the pipeline artifact (type CODEPIPELINE); it "
        "never clones a repository, so there is no repository credential to protect.",
    )
    # CDK grants every project its default log group /aws/codebuild/<project>, used
    # when no log group is given.
    default_log_streams = Stack.of(project).format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"/aws/codebuild/{project.project_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    acknowledge_artifact_access(
        project.role,
        artifact_bucket,
        write=False,
        purpose="Reads the fine-tuning execution output to judge the quality gate, logging "
        "to its own /aws/codebuild/ group unless a log group is given.",
        extra=[default_log_streams],
    )
    return project


# -- public constructs ----------------------------------------------------------------------


class FineTuningStage(Construct):
    """Adds a fine-tuning stage (Start, QualityGate) to an existing CodePipeline.

    ``source`` is the artifact that holds ``job_spec`` (normally the source action's
    output). ``placement`` puts the stage after or before another stage; by default it is
    appended.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: codepipeline.Pipeline,
        source: codepipeline.Artifact,
        state_machine: sfn.IStateMachine,
        job_spec: str,
        stage_name: str = "FineTune",
        placement: codepipeline.StagePlacement | None = None,
        execution_name_prefix: str = "pipeline",
        require_quality_gate: bool = False,
        state_machine_key_alias: str | None = None,
        encryption_key: kms.IKey | None = None,
        log_group: logs.ILogGroup | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.props = FineTuningActionProps(
            state_machine=state_machine,
            job_spec=job_spec,
            execution_name_prefix=execution_name_prefix,
            require_quality_gate=require_quality_gate,
            state_machine_key_alias=state_machine_key_alias,
            encryption_key=encryption_key,
            log_group=log_group,
        )
        self.stage = pipeline.add_stage(stage_name=stage_name, placement=placement)
        self.start_action, self.gate_action = add_finetuning_actions(
            self,
            self.stage,
            props=self.props,
            source=source,
            artifact_bucket=pipeline.artifact_bucket,
        )


@jsii.implements(pipelines.ICodePipelineActionFactory)
class FineTuningStep(pipelines.Step):
    """The same two actions as a CDK Pipelines step (``pre``/``post`` of a stage or wave)."""

    def __init__(
        self,
        step_id: str,
        *,
        input: pipelines.IFileSetProducer,
        props: FineTuningActionProps,
    ) -> None:
        super().__init__(step_id)
        self.props = props
        file_set = input.primary_output
        if file_set is None:
            raise ValueError(f"{step_id}: the input step produces no files to read the spec from")
        self._input = file_set
        self._add_dependency_file_set(file_set)
        self.project: codebuild.PipelineProject | None = None

    def produce_action(
        self,
        stage: codepipeline.IStage,
        *,
        scope: Construct,
        artifacts: pipelines.ArtifactMap,
        pipeline: pipelines.CodePipeline,
        run_order: int,
        action_name: str,
        **_: Any,
    ) -> pipelines.CodePipelineActionFactoryResult:
        # A scope of its own: several steps may share one pipeline stage.
        add_finetuning_actions(
            Construct(scope, self.id),
            stage,
            props=self.props,
            source=artifacts.to_code_pipeline(self._input),
            artifact_bucket=pipeline.pipeline.artifact_bucket,
            run_order=run_order,
            action_prefix=f"{action_name}.",
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=2)

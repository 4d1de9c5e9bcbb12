"""EventBridge rules that drive the orchestration: job state changes answer waiting
executions, ended executions are cleaned up, and job manifests put under ``jobs/`` in the
data bucket start new executions."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from finetuning.orchestration.waiting import BEDROCK_EVENT, SAGEMAKER_EVENT
from finetuning.platform import JOB_MANIFESTS_PREFIX
from stacks.constructs.logical_ids import StackLevelConstruct, keep_flat_logical_ids

# Step Functions execution status change events, see
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html
EXECUTION_ENDED_STATUSES = ["ABORTED", "TIMED_OUT", "FAILED"]
JOB_END_STATUSES = ["Completed", "Failed", "Stopped"]


@dataclass(frozen=True)
class JobEventRulesProps:
    """What the rules connect.

    - ``job_events``: answers waits from Bedrock and SageMaker job state changes.
    - ``execution_ended``: stops the job of an execution that was stopped, timed out or failed.
    - ``submit_manifest``: starts the execution of an uploaded job manifest.
    - ``state_machine_arn``: the state machine whose ended executions are cleaned up.
    - ``data_bucket_name``: the bucket whose ``jobs/`` prefix holds manifests (it must send
      EventBridge notifications, which the storage stack turns on).
    - ``dead_letter_queue``: receives events no target could take after the retries.
    """

    job_events: lambda_.IFunction
    execution_ended: lambda_.IFunction
    submit_manifest: lambda_.IFunction
    state_machine_arn: str
    data_bucket_name: str
    dead_letter_queue: sqs.IQueue


class JobEventRules(StackLevelConstruct):
    """The four rules. Resources keep the logical ids they had as direct children of the
    orchestration stack (the Lambda permissions and queue-policy statements that targets add
    are named after the rule's path, so those change; see docs/architecture.md)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: JobEventRulesProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        events.Rule(
            self,
            "BedrockJobStateRule",
            description="Bedrock model customization job state changes -> waiting executions",
            event_pattern=events.EventPattern(
                source=[BEDROCK_EVENT[0]], detail_type=[BEDROCK_EVENT[1]]
            ),
            targets=[self._target(props.job_events)],
        )
        events.Rule(
            self,
            "SageMakerJobStateRule",
            description="SageMaker training jobs that ended -> waiting executions",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_EVENT[0]],
                detail_type=[SAGEMAKER_EVENT[1]],
                detail={"TrainingJobStatus": JOB_END_STATUSES},
            ),
            targets=[self._target(props.job_events)],
        )
        events.Rule(
            self,
            "ExecutionEndedRule",
            description="Fine-tuning executions stopped, timed out or failed -> clean up",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": EXECUTION_ENDED_STATUSES,
                    "stateMachineArn": [props.state_machine_arn],
                },
            ),
            targets=[self._target(props.execution_ended)],
        )
        # Needs EventBridge notifications on the data bucket (storage stack), see
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html
        events.Rule(
            self,
            "ManifestUploadedRule",
            description="Job manifests put under jobs/ in the data bucket -> new executions",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [props.data_bucket_name]},
                    "object": {"key": [{"prefix": JOB_MANIFESTS_PREFIX}]},
                },
            ),
            targets=[self._target(props.submit_manifest)],
        )
        keep_flat_logical_ids(self)

    def _target(self, function: lambda_.IFunction) -> targets.LambdaFunction:
        return targets.LambdaFunction(
            function,
            dead_letter_queue=self._props.dead_letter_queue,
            retry_attempts=4,
            max_event_age=Duration.hours(6),
        )

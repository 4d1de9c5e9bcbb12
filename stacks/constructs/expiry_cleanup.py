"""The scheduled expiry cleanup: EventBridge Scheduler invokes the cleanup function every
``orchestration.cleanup_interval_minutes``, which warns about and then deletes serving
resources past their ``finetuning:expires-at`` tag."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.logical_ids import StackLevelConstruct, keep_flat_logical_ids


@dataclass(frozen=True)
class ExpiryCleanupProps:
    """What the schedule runs.

    - ``cleanup``: the cleanup function (its permissions are the functions construct's).
    - ``interval_minutes``: how often it runs.
    - ``dead_letter_queue``: receives invocations that failed after the retries.
    - ``key``: encrypts the schedule; the queue's key.
    """

    cleanup: lambda_.IFunction
    interval_minutes: int
    dead_letter_queue: sqs.IQueue
    key: kms.IKey


class ExpiryCleanup(StackLevelConstruct):
    """The schedule and the role it invokes the cleanup with. Resources keep the logical
    ids they had as direct children of the orchestration stack."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ExpiryCleanupProps) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(
            self,
            "CleanupScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description="Lets EventBridge Scheduler start the expiry cleanup",
        )
        cleanup = props.cleanup
        iam.ManagedPolicy(
            self,
            "CleanupSchedulePolicy",
            roles=[role],
            description="Invoke the cleanup function; dead letters; the schedule's key",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeCleanup",
                    actions=["lambda:InvokeFunction"],
                    resources=[cleanup.function_arn],
                ),
                iam.PolicyStatement(
                    sid="SendToDeadLetterQueue",
                    actions=["sqs:SendMessage"],
                    resources=[props.dead_letter_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="UseOrchestrationKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[props.key.key_arn],
                ),
            ],
        )
        scheduler.Schedule(
            self,
            "CleanupSchedule",
            description="Warns about and deletes serving resources past their expiry",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(props.interval_minutes)),
            target=scheduler_targets.LambdaInvoke(
                cleanup,
                role=role.without_policy_updates(),
                dead_letter_queue=props.dead_letter_queue,
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            ),
            key=props.key,
        )
        keep_flat_logical_ids(self)

"""The fine-tuning state machine: its definition (``stacks/orchestration_workflow.py``),
role, execution log group and encryption.

The role may invoke exactly the task functions, deliver vended logs, write traces and use
the orchestration key; the machine is created only after that policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.compliance import suppress_wildcards
from stacks.constructs.logical_ids import StackLevelConstruct, keep_flat_logical_ids
from stacks.constructs.platform_function import depend_only_on_policy
from stacks.log_groups import encrypted_log_group
from stacks.orchestration_workflow import FineTuningWorkflow
from stacks.settings.orchestration import OrchestrationSettings


@dataclass(frozen=True)
class FineTuningStateMachineProps:
    """What the state machine is built from.

    - ``state_machine_name``: its physical name (``stacks.settings.naming``), which other
      stacks and the functions name it by.
    - ``task_functions``: the function of each task state, keyed by state name.
    - ``orchestration``: the ``orchestration:`` settings (retries, waits, job deadline).
    - ``key``: encrypts executions and the log group.
    - ``log_retention_days``: the platform's log retention.
    """

    state_machine_name: str
    task_functions: Mapping[str, lambda_.IFunction]
    orchestration: OrchestrationSettings
    key: kms.IKey
    log_retention_days: int


class FineTuningStateMachine(StackLevelConstruct):
    """The standard state machine (:attr:`state_machine`) that runs one fine-tuning job.
    Resources keep the logical ids they had as direct children of the orchestration stack."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: FineTuningStateMachineProps
    ) -> None:
        super().__init__(scope, construct_id)
        o = props.orchestration
        task_functions = dict(props.task_functions)
        workflow = FineTuningWorkflow(self, "Workflow", functions=task_functions, settings=o)
        log_group = encrypted_log_group(
            self,
            "StateMachineLogGroup",
            key=props.key,
            retention_days=props.log_retention_days,
            log_group_name=f"/aws/vendedlogs/states/{props.state_machine_name}",
        )
        role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the fine-tuning state machine",
        )
        policy = iam.ManagedPolicy(
            self,
            "StateMachinePolicy",
            roles=[role],
            description="Invoke the orchestration functions; logs, traces and the key",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeTaskFunctions",
                    actions=["lambda:InvokeFunction"],
                    resources=[fn.function_arn for fn in task_functions.values()],
                ),
                # Vended-log delivery to CloudWatch Logs, see
                # https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
                iam.PolicyStatement(
                    sid="DeliverExecutionLogs",
                    actions=[
                        "logs:CreateLogDelivery",
                        "logs:GetLogDelivery",
                        "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery",
                        "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies",
                        "logs:DescribeLogGroups",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="WriteTraces",
                    actions=[
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "xray:GetSamplingRules",
                        "xray:GetSamplingTargets",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="UseOrchestrationKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[props.key.key_arn],
                ),
            ],
        )
        suppress_wildcards(
            policy,
            "CloudWatch Logs delivery and X-Ray APIs support no resource-level permissions.",
            resources=["*"],
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=props.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(workflow.definition),
            role=role.without_policy_updates(),
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(
                props.key, Duration.minutes(5)
            ),
            # Backstop past the job deadline; the execution-ended rule stops the job.
            timeout=Duration.hours(o.max_job_hours + 12),
            comment="Validate, start, wait for, collect, evaluate and serve one fine-tuning job",
        )
        depend_only_on_policy(machine, policy)
        # Before depend_only_on_policy resolves the policy's logical id.
        keep_flat_logical_ids(self)
        depend_only_on_policy(machine, policy)
        self.state_machine = machine

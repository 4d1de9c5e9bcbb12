"""Orchestration: the state machine and functions that run a fine-tuning job end to end.

Composes the orchestration constructs (``stacks/constructs/``): the job store (key,
dead-letter queue, job and idempotency tables, notification topic), the functions with
their permissions, the fine-tuning state machine (``orchestration_workflow``), the
EventBridge rules (job state changes, stopped executions, manifests under ``jobs/``) and the
scheduled expiry cleanup. Owns the training and evaluation images, the RFT grader's and the
distillation teachers' permissions and the SSM parameters the CLI reads. Every construct
keeps the logical ids its resources had when this stack built them itself.

Policies name buckets and the state machine by their deterministic names, never by
reference, so no resource policy of another stack changes and no dependency cycle forms.
docs/orchestration.md describes the flow, the manifest and every permission.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from finetuning.orchestration.environment import Var
from finetuning.orchestration.workflow import States
from finetuning.platform import OrchestrationParameter
from stacks.constructs.expiry_cleanup import ExpiryCleanup, ExpiryCleanupProps
from stacks.constructs.fine_tuning_state_machine import (
    FineTuningStateMachine,
    FineTuningStateMachineProps,
)
from stacks.constructs.job_event_rules import JobEventRules, JobEventRulesProps
from stacks.constructs.job_permissions import JobPermissions, JobPermissionsProps
from stacks.constructs.job_store import JobStore, JobStoreProps
from stacks.constructs.logical_ids import keep_flat_logical_ids
from stacks.constructs.orchestration_functions import (
    CLEANUP_EXPIRED,
    EXECUTION_ENDED,
    JOB_EVENTS,
    SUBMIT_MANIFEST,
    OrchestrationFunctions,
    OrchestrationFunctionsProps,
)
from stacks.container_images import evaluation_image, training_image
from stacks.discovery import publish_parameter
from stacks.distillation_teachers import DistillationTeacherAccess
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack
from stacks.settings import PlatformSettings
from stacks.settings.naming import orchestration_key_alias
from stacks.settings.orchestration import OrchestrationSettings
from stacks.storage_stack import bucket_name

STATE_MACHINE_SUFFIX = "finetuning"
# The task states the orchestration's own functions run; the serving stack's functions
# run EVALUATE_BEDROCK and REGISTER_MODEL.
ORCHESTRATION_TASK_STATES = (
    States.REGISTER,
    States.VALIDATE,
    States.START_BEDROCK,
    States.START_SAGEMAKER,
    States.WAIT,
    States.COLLECT,
    States.PROVISION,
    States.CHECK_THROUGHPUT,
    States.PREPARE_EVALUATION,
    States.EVALUATE_OPEN,
    States.COMPLETE,
    States.HANDLE_FAILURE,
)
SERVING_TASK_STATES = (States.EVALUATE_BEDROCK, States.REGISTER_MODEL)


class OrchestrationStack(Stack):
    """State machine, functions, tables, topic, rules and the expiry cleanup."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PlatformSettings,
        platform_key: kms.IKey,
        network: NetworkStack,
        security: SecurityStack,
        serving_functions: Mapping[str, lambda_.IFunction],
        orchestration: OrchestrationSettings | None = None,
        **kwargs,
    ) -> None:
        """``serving_functions``: the serving stack's evaluate-candidate and register-model
        functions, keyed by the states that invoke them (``States.EVALUATE_BEDROCK``,
        ``States.REGISTER_MODEL``)."""
        super().__init__(scope, construct_id, **kwargs)
        self._settings = settings
        o = self._orchestration = orchestration or getattr(
            settings, "orchestration", OrchestrationSettings()
        )
        prefix = settings.resource_prefix
        self.state_machine_name = f"{prefix}-{STATE_MACHINE_SUFFIX}"

        self.job_store = JobStore(
            self,
            "JobStore",
            props=JobStoreProps(
                resource_prefix=prefix,
                key_alias=orchestration_key_alias(settings),
                notification_emails=o.notification_emails,
            ),
        )
        self.key = self.job_store.key
        self.dead_letter_queue = self.job_store.dead_letter_queue
        self.job_table = self.job_store.job_table
        self.idempotency_table = self.job_store.idempotency_table
        self.topic = self.job_store.topic

        subnet_ids = network.vpc.select_subnets(
            subnet_group_name=network.training_subnets.subnet_group_name
        ).subnet_ids
        security_group_id = network.training_security_group.security_group_id
        self.training_image = training_image(self, "TrainingImage", dlc_tag=o.training_image_tag)
        training_env = {
            Var.DATA_BUCKET: bucket_name(settings, "data"),
            Var.ARTIFACTS_BUCKET: bucket_name(settings, "artifacts"),
            Var.EVALUATION_BUCKET: bucket_name(settings, "evaluation"),
            Var.PLATFORM_KEY_ARN: platform_key.key_arn,
            Var.SAGEMAKER_ROLE_ARN: security.sagemaker_execution_role.role_arn,
            Var.BEDROCK_ROLE_ARN: security.bedrock_customization_role.role_arn,
            Var.SUBNET_IDS: ",".join(subnet_ids),
            Var.SECURITY_GROUP_IDS: security_group_id,
            Var.DEFAULT_INSTANCE_TYPE: settings.training.default_instance_type,
            Var.ALLOWED_INSTANCE_FAMILIES: ",".join(settings.training.allowed_instance_families),
            # The DLC with train.py's pinned packages: isolated jobs cannot install them.
            Var.TRAINING_IMAGE_URI: self.training_image.image_uri,
        }
        self.evaluation_image = evaluation_image(self, "EvaluationImage")
        self._allow_image_pull(security)

        permissions = JobPermissions(
            self,
            props=JobPermissionsProps(
                resource_prefix=prefix,
                platform_key_arn=platform_key.key_arn,
                subnet_ids=subnet_ids,
                security_group_id=security_group_id,
                allowed_instance_families=settings.training.allowed_instance_families,
            ),
        )
        self.orchestration_functions = OrchestrationFunctions(
            self,
            "Functions",
            props=OrchestrationFunctionsProps(
                settings=settings,
                orchestration=o,
                store=self.job_store,
                permissions=permissions,
                security=security,
                training_env=training_env,
                evaluation_image_uri=self.evaluation_image.image_uri,
                state_machine_arn=self.state_machine_arn,
                executions_arn=self.executions_arn,
            ),
        )
        self.rft_grader = self.orchestration_functions.rft_grader
        self.functions = self.orchestration_functions.functions
        DistillationTeacherAccess(
            self, "DistillationTeachers", bedrock_role=security.bedrock_customization_role
        )

        task_functions: dict[str, lambda_.IFunction] = {
            name: self.functions[name].function for name in ORCHESTRATION_TASK_STATES
        }
        for name in SERVING_TASK_STATES:
            task_functions[name] = serving_functions[name]
        self.state_machine = FineTuningStateMachine(
            self,
            "FineTuningStateMachine",
            props=FineTuningStateMachineProps(
                state_machine_name=self.state_machine_name,
                task_functions=task_functions,
                orchestration=o,
                key=self.key,
                log_retention_days=settings.logs.retention_days,
            ),
        ).state_machine
        JobEventRules(
            self,
            "JobEventRules",
            props=JobEventRulesProps(
                job_events=self.functions[JOB_EVENTS].function,
                execution_ended=self.functions[EXECUTION_ENDED].function,
                submit_manifest=self.functions[SUBMIT_MANIFEST].function,
                state_machine_arn=self.state_machine.state_machine_arn,
                data_bucket_name=bucket_name(settings, "data"),
                dead_letter_queue=self.dead_letter_queue,
            ),
        )
        ExpiryCleanup(
            self,
            "ExpiryCleanup",
            props=ExpiryCleanupProps(
                cleanup=self.functions[CLEANUP_EXPIRED].function,
                interval_minutes=o.cleanup_interval_minutes,
                dead_letter_queue=self.dead_letter_queue,
                key=self.key,
            ),
        )
        self._publish_parameters()
        # Resources that one construct adds to another's (rule targets' Lambda permissions,
        # dead-letter queue policies) also keep their stack-level paths.
        keep_flat_logical_ids(self)

    # -- ARNs by name ---------------------------------------------------------------------

    @property
    def state_machine_arn(self) -> str:
        return self._states_arn(f"stateMachine:{self.state_machine_name}")

    @property
    def executions_arn(self) -> str:
        return self._states_arn(f"execution:{self.state_machine_name}:*")

    def _states_arn(self, resource: str) -> str:
        return f"arn:{self.partition}:states:{self.region}:{self.account}:{resource}"

    # -- resources of its own -------------------------------------------------------------

    def _allow_image_pull(self, security: SecurityStack) -> None:
        """Let the SageMaker execution role pull the training and evaluation images (a
        customer managed policy here, next to the images, so the security stack need not know
        the assets)."""
        pull = [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        iam.ManagedPolicy(
            self,
            "EvaluationImagePull",
            description=(
                "The SageMaker execution role pulls the platform's training and evaluation images"
            ),
            roles=[security.sagemaker_execution_role],
            statements=[
                iam.PolicyStatement(
                    sid="PullEvaluationImage",
                    actions=pull,
                    resources=[self.evaluation_image.repository.repository_arn],
                ),
                iam.PolicyStatement(
                    sid="PullTrainingImage",
                    actions=pull,
                    resources=[self.training_image.repository.repository_arn],
                ),
            ],
        )

    def _publish_parameters(self) -> None:
        for parameter, value in {
            OrchestrationParameter.STATE_MACHINE_ARN: self.state_machine.state_machine_arn,
            OrchestrationParameter.JOB_TABLE_NAME: self.job_table.table_name,
            OrchestrationParameter.NOTIFICATION_TOPIC_ARN: self.topic.topic_arn,
            OrchestrationParameter.KMS_KEY_ARN: self.key.key_arn,
            OrchestrationParameter.RFT_GRADER_FUNCTION_ARN: self.rft_grader.arn,
        }.items():
            publish_parameter(self, self._settings, parameter, value)

    @property
    def lambda_functions(self) -> list[lambda_.Function]:
        """Every function of this stack, the RFT grader included (monitoring alarms on each)."""
        return self.orchestration_functions.lambda_functions

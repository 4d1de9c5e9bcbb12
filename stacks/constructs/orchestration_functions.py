"""The orchestration's functions, each with exactly the permissions its code uses.

Fifteen workflow and event functions (``lambda/<folder>/index.py``) and the platform's RFT
grader, all :class:`~stacks.constructs.platform_function.PlatformFunction` s sharing one key,
dead-letter queue and Powertools layer. Permissions come from the ``grant_*`` methods of the
construct that owns the resource (:class:`~stacks.constructs.job_store.JobStore`) and of
:class:`~stacks.constructs.job_permissions.JobPermissions` (jobs, serving resources, the
platform key); docs/orchestration.md lists every statement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from finetuning.orchestration.environment import Var
from finetuning.orchestration.workflow import States
from finetuning.platform import (
    EVALUATION_REPORTS_PREFIX,
    JOB_MANIFESTS_PREFIX,
    TRAINING_DATA_PROCESSED_PREFIX,
    TRAINING_DATA_RAW_PREFIX,
)
from stacks.compliance import suppress_wildcards
from stacks.constructs.job_permissions import JobPermissions
from stacks.constructs.job_store import JobStore
from stacks.constructs.logical_ids import StackLevelConstruct, keep_flat_logical_ids
from stacks.constructs.platform_function import (
    PlatformFunction,
    PlatformFunctionProps,
    powertools_layer,
)
from stacks.rft_grader import (
    GRADER_CONCURRENCY_REASON,
    GRADER_MEMORY_MB,
    GRADER_TIMEOUT,
    GRADER_VPC_REASON,
    RftGrader,
)
from stacks.security_stack import SecurityStack
from stacks.settings import PlatformSettings
from stacks.settings.orchestration import OrchestrationSettings
from stacks.storage_stack import bucket_name

# The regexes of train.py's log lines, which StartJob sends as SageMaker metric definitions.
METRIC_DEFINITION_FILES = (
    "training_scripts/__init__.py",
    "training_scripts/metric_definitions.py",
)
DYNAMODB_WRITE = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# What a caller creating a Bedrock job or throughput with a customer managed key needs, see
# https://docs.aws.amazon.com/nova/latest/userguide/customize-fine-tune-encrypt.html
KEY_FOR_SERVICE_ACTIONS = (
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:DescribeKey",
    "kms:CreateGrant",
)
# Functions that no state invokes, keyed by their construct ids.
# What the functions that start, watch or cancel open-weight RFT jobs ship besides the base
# library: the OpenAI-compatible API's client (finetuning.orchestration.open_weight) and
# AWS's short-term API key generator (pure Python, pinned in requirements.txt).
OPEN_WEIGHT_RFT_LIBRARY = ("backends/bedrock_openai_rft.py", "jobs.py", "errors.py")
OPEN_WEIGHT_RFT_PACKAGES = ("aws_bedrock_token_generator",)
OPEN_WEIGHT_RFT_BUNDLE = {
    "extra_library": OPEN_WEIGHT_RFT_LIBRARY,
    "pure_packages": OPEN_WEIGHT_RFT_PACKAGES,
}
JOB_EVENTS = "JobEvents"
EXECUTION_ENDED = "ExecutionEnded"
SUBMIT_MANIFEST = "SubmitManifest"
CLEANUP_EXPIRED = "CleanupExpired"


@dataclass(frozen=True)
class OrchestrationFunctionsProps:
    """What the functions are built from.

    - ``settings`` / ``orchestration``: the environment's settings and their
      ``orchestration:`` section (memory, timeouts, concurrency, layer version, prices).
    - ``store``: the job store (key, dead-letter queue, tables, topic) they use.
    - ``permissions``: job and serving permissions scoped to this environment.
    - ``security``: the roles the start and evaluation functions pass.
    - ``training_env``: the environment of the functions that start jobs (buckets, roles,
      network, instance types, training image); the grader's ARN is added here.
    - ``evaluation_image_uri``: the Processing image the evaluation function starts.
    - ``state_machine_arn`` / ``executions_arn``: the state machine (by name) that
      SubmitManifest starts and whose executions it describes.
    """

    settings: PlatformSettings
    orchestration: OrchestrationSettings
    store: JobStore
    permissions: JobPermissions
    security: SecurityStack
    training_env: Mapping[str, str]
    evaluation_image_uri: str
    state_machine_arn: str
    executions_arn: str


class OrchestrationFunctions(StackLevelConstruct):
    """The functions by name (:attr:`functions`: state names, or construct ids for those
    no state invokes) and the RFT grader (:attr:`rft_grader`). Resources keep the logical
    ids they had as direct children of the orchestration stack."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: OrchestrationFunctionsProps
    ) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self._settings = props.settings
        self._orchestration = props.orchestration
        self._store = props.store
        self._permissions = props.permissions
        self._layer = powertools_layer(self, props.orchestration.powertools_layer_version)
        self._platform_env = {
            Var.RESOURCE_PREFIX: props.settings.resource_prefix,
            Var.JOB_TABLE: props.store.job_table.table_name,
            Var.TOPIC_ARN: props.store.topic.topic_arn,
        }
        # The platform's RFT grader (stacks/rft_grader.py): start functions name it in a
        # REINFORCEMENT_FINE_TUNING job whose manifest gives no grader of its own.
        self.rft_grader = RftGrader(
            self,
            "RftGrader",
            function=self._function(
                "RftGraderFunction",
                "grader",
                "Scores RFT answers with the platform's evaluation scoring",
                env={},
                memory_mb=GRADER_MEMORY_MB,
                timeout=GRADER_TIMEOUT,
                vpc_reason=GRADER_VPC_REASON,
                concurrency_reason=GRADER_CONCURRENCY_REASON,
            ),
            bedrock_role=props.security.bedrock_customization_role,
            external_grader_arns=props.orchestration.rft_grader_arns,
        )
        self._training_env = {**props.training_env, Var.GRADER_FUNCTION_ARN: self.rft_grader.arn}
        self.functions = self._functions(props.security)
        keep_flat_logical_ids(self)

    @property
    def lambda_functions(self) -> list[lambda_.Function]:
        """Every function, the RFT grader included."""
        return [*(f.function for f in self.functions.values()), self.rft_grader.function.function]

    def _objects(self, purpose: str, prefix: str) -> str:
        partition = Stack.of(self).partition
        return f"arn:{partition}:s3:::{bucket_name(self._settings, purpose)}/{prefix}*"

    def _function(
        self, construct_id: str, folder: str, description: str, *, env: dict[str, str], **kw
    ) -> PlatformFunction:
        o = self._orchestration
        return PlatformFunction(
            self,
            construct_id,
            props=PlatformFunctionProps(
                folder=folder,
                description=description,
                key=self._store.key,
                dead_letter_queue=self._store.dead_letter_queue,
                layer=self._layer,
                log_retention_days=self._settings.logs.retention_days,
                environment={**self._platform_env, **env},
                memory_mb=kw.pop("memory_mb", o.function_memory_mb),
                timeout=kw.pop("timeout", Duration.seconds(o.function_timeout_seconds)),
                reserved_concurrency=o.reserved_concurrency,
                **kw,
            ),
        )

    def _functions(self, security: SecurityStack) -> dict[str, PlatformFunction]:
        o = self._orchestration
        idempotency = {
            Var.IDEMPOTENCY_TABLE: self._store.idempotency_table.table_name,
            Var.IDEMPOTENCY_TTL_SECONDS: str(o.idempotency_ttl_hours * 3600),
        }
        t = self._training_env
        fns: dict[str, PlatformFunction] = {}
        fns[States.REGISTER] = f = self._function(
            "RegisterJob", "register_job", "Puts a job in the job table", env={}
        )
        self._store.grant_job_table(f, "dynamodb:GetItem", "dynamodb:PutItem")

        fns[States.VALIDATE] = f = self._function(
            "ValidateDataset",
            "validate_dataset",
            "Validates a job's training data with finetuning.data",
            env={k: t[k] for k in (Var.DATA_BUCKET, Var.ARTIFACTS_BUCKET, Var.EVALUATION_BUCKET)},
            memory_mb=o.validation_memory_mb,
            timeout=Duration.seconds(o.validation_timeout_seconds),
            extra_library=("data",),
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        data_objects = [
            self._objects("data", TRAINING_DATA_RAW_PREFIX),
            self._objects("data", TRAINING_DATA_PROCESSED_PREFIX),
        ]
        reports = self._objects("evaluation", EVALUATION_REPORTS_PREFIX)
        f.allow("ReadTrainingData", ["s3:GetObject", "s3:GetObjectVersion"], data_objects)
        f.allow("WriteValidationReports", ["s3:PutObject"], [reports])
        self._permissions.grant_platform_key_via(f, "s3", ["kms:Decrypt", "kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Object wildcards stop at the data bucket's training-data/ prefixes (read) and the "
            "evaluation bucket's evaluation/reports/ prefix (write).",
            resources=[*data_objects, reports],
        )

        # One start function per backend, from the same code: each role can start one
        # kind of job and pass one service role.
        fns[States.START_BEDROCK] = f = self._function(
            "StartBedrockJob",
            "start_job",
            "Starts the Bedrock model customization job of a spec, once",
            env={**t, **idempotency, Var.EXPECTED_BACKEND: "bedrock"},
            extra_library=(*OPEN_WEIGHT_RFT_LIBRARY, "data"),
            pure_packages=OPEN_WEIGHT_RFT_PACKAGES,
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._store.grant_idempotency(f)
        self._permissions.grant_bedrock_jobs(f, create=True)
        self._permissions.grant_open_weight_rft(
            f,
            create=True,
            grader_arns=[self.rft_grader.arn, *self._orchestration.rft_grader_arns],
            training_data=data_objects,
        )
        f.adopt(security.grant_pass_bedrock_role(f.grantee))
        self._permissions.grant_platform_key_via(f, "bedrock", KEY_FOR_SERVICE_ACTIONS)

        fns[States.START_SAGEMAKER] = f = self._function(
            "StartSageMakerJob",
            "start_job",
            "Starts the SageMaker training job of a spec, once",
            env={**t, **idempotency, Var.EXPECTED_BACKEND: "sagemaker"},
            extra_files=METRIC_DEFINITION_FILES,
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._store.grant_idempotency(f)
        self._permissions.grant_sagemaker_jobs(f, create=True)
        f.adopt(security.grant_pass_sagemaker_role(f.grantee))
        self._permissions.grant_platform_key_via(f, "sagemaker", KEY_FOR_SERVICE_ACTIONS)

        for name, construct_id, folder, description in (
            (States.WAIT, "WaitForJob", "wait_for_job", "Stores the wait's task token; polls"),
            (None, JOB_EVENTS, "job_events", "Answers waits from job state-change events"),
        ):
            waits = construct_id == "WaitForJob"  # job events come from Bedrock/SageMaker only
            f = self._function(
                construct_id,
                folder,
                description,
                env={},
                **(OPEN_WEIGHT_RFT_BUNDLE if waits else {}),
            )
            self._store.grant_job_table(f, *DYNAMODB_WRITE)
            self._permissions.grant_bedrock_jobs(f)
            self._permissions.grant_sagemaker_jobs(f)
            if waits:
                self._permissions.grant_open_weight_rft(f)
            f.allow(
                "AnswerWaits",
                ["states:SendTaskSuccess", "states:SendTaskFailure"],
                ["*"],
            )
            suppress_wildcards(
                f.policy,
                "SendTaskSuccess and SendTaskFailure support no resource-level permissions; "
                "the task token, known only to the waiting execution, names the task.",
                resources=["*"],
            )
            fns[name or construct_id] = f

        fns[States.COLLECT] = f = self._function(
            "CollectResults",
            "collect_results",
            "Collects metrics, artifacts and a cost estimate of a finished job",
            env={Var.PRICE_TABLE: json.dumps(self._orchestration.prices.model_dump())},
            extra_library=("data", *OPEN_WEIGHT_RFT_LIBRARY),
            pure_packages=OPEN_WEIGHT_RFT_PACKAGES,
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._permissions.grant_bedrock_jobs(f)
        self._permissions.grant_sagemaker_jobs(f)
        self._permissions.grant_open_weight_rft(f)

        fns[States.PREPARE_EVALUATION] = f = self._function(
            "PrepareEvaluation",
            "prepare_evaluation",
            "Records the training metrics and plans the evaluation of a finished job",
            env={Var.EVALUATION_BUCKET: t[Var.EVALUATION_BUCKET]},
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        f.allow("WriteEvaluationRecords", ["s3:PutObject"], [reports])
        self._permissions.grant_platform_key_via(f, "s3", ["kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Writes only under the evaluation bucket's evaluation/reports/ prefix.",
            resources=[reports],
        )

        fns[States.EVALUATE_OPEN] = f = self._function(
            "EvaluateOpenModel",
            "evaluation_job",
            "Starts, once, and watches the Processing job that evaluates an open model",
            env={
                **{
                    k: t[k]
                    for k in (
                        Var.EVALUATION_BUCKET,
                        Var.PLATFORM_KEY_ARN,
                        Var.SAGEMAKER_ROLE_ARN,
                        Var.SUBNET_IDS,
                        Var.SECURITY_GROUP_IDS,
                    )
                },
                Var.EVALUATION_IMAGE_URI: self._props.evaluation_image_uri,
            },
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._permissions.grant_processing_jobs(f, create=True)
        f.adopt(security.grant_pass_sagemaker_role(f.grantee))
        f.allow("WriteRequestsReadOutcomes", ["s3:PutObject", "s3:GetObject"], [reports])
        self._permissions.grant_platform_key_via(f, "s3", ["kms:Decrypt", "kms:GenerateDataKey"])
        suppress_wildcards(
            f.policy,
            "Reads and writes only under the evaluation bucket's evaluation/reports/ prefix "
            "(the job's request and its outcome).",
            resources=[reports],
        )

        # Also the DeployCustomModel and CheckDeployment states' functions (on-demand mode).
        fns[States.PROVISION] = f = self._function(
            "ProvisionThroughput",
            "provision_throughput",
            "Creates the provisioned throughput or on-demand deployment a spec asks for, once",
            env=idempotency,
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._store.grant_idempotency(f)
        self._permissions.grant_throughput(f, create=True)
        self._permissions.grant_deployment(f, create=True)
        self._permissions.grant_platform_key_via(f, "bedrock", KEY_FOR_SERVICE_ACTIONS)

        fns[States.CHECK_THROUGHPUT] = f = self._function(
            "CheckThroughput",
            "check_throughput",
            "Waits for throughput InService or a deployment Active; starts its expiry",
            env={
                Var.DEFAULT_SERVING_HOURS: str(o.default_serving_hours),
                Var.THROUGHPUT_MAX_WAIT_MINUTES: str(o.throughput_max_wait_minutes),
            },
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._permissions.grant_throughput(f)
        self._permissions.grant_deployment(f)

        fns[States.COMPLETE] = f = self._function(
            "CompleteJob", "complete_job", "Marks a job completed and notifies", env={}
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._store.grant_publish(f)

        for name, construct_id, folder, description in (
            (
                States.HANDLE_FAILURE,
                "HandleFailure",
                "handle_failure",
                "Marks a failed job, removes its partial resources, notifies",
            ),
            (
                None,
                EXECUTION_ENDED,
                "execution_ended",
                "Stops the job of a stopped or timed-out execution, cleans up, notifies",
            ),
        ):
            f = self._function(construct_id, folder, description, env={}, **OPEN_WEIGHT_RFT_BUNDLE)
            self._store.grant_job_table(f, *DYNAMODB_WRITE)
            self._permissions.grant_bedrock_jobs(f, stop=True)
            self._permissions.grant_open_weight_rft(f, cancel=True)
            self._permissions.grant_sagemaker_jobs(f, stop=True)
            self._permissions.grant_processing_jobs(f, stop=True)
            self._permissions.grant_delete_serving(f, endpoints=False)
            self._store.grant_publish(f)
            fns[name or construct_id] = f

        fns[SUBMIT_MANIFEST] = f = self._function(
            "SubmitManifest",
            "submit_manifest",
            "Starts the execution of a job manifest put under jobs/ in the data bucket",
            env={Var.STATE_MACHINE_ARN: self._props.state_machine_arn, **idempotency},
            pure_packages=("yaml",),
        )
        self._store.grant_idempotency(f)
        manifests = self._objects("data", JOB_MANIFESTS_PREFIX)
        f.allow("ReadManifests", ["s3:GetObject", "s3:GetObjectVersion"], [manifests])
        self._permissions.grant_platform_key_via(f, "s3", ["kms:Decrypt"])
        f.allow("StartExecutions", ["states:StartExecution"], [self._props.state_machine_arn])
        f.allow("DescribeExecutions", ["states:DescribeExecution"], [self._props.executions_arn])
        self._store.grant_publish(f)
        suppress_wildcards(
            f.policy,
            "Reads only job manifests under the data bucket's jobs/ prefix and describes only "
            "executions of this platform's state machine (named after their job ids).",
            resources=[manifests, self._props.executions_arn],
        )

        fns[CLEANUP_EXPIRED] = f = self._function(
            "CleanupExpired",
            "cleanup_expired",
            "Warns about, then deletes, serving resources past their expiry",
            env={Var.EXPIRY_WARNING_HOURS: str(o.expiry_warning_hours)},
            timeout=Duration.minutes(5),
        )
        self._store.grant_job_table(f, *DYNAMODB_WRITE)
        self._permissions.grant_delete_serving(f, endpoints=True)
        self._store.grant_publish(f)
        return fns

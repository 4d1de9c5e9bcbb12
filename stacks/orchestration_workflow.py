"""The fine-tuning state machine's definition: one flow with a branch per backend.

RegisterJob -> ValidateDataset -> Backend -> StartBedrockJob | StartSageMakerJob ->
WaitForJob (task token; on timeout poll and wait again, up to the maximum job duration) ->
CollectResults -> ServingRequested (the serving mode ValidateDataset resolved, Bedrock only):
[ProvisionThroughput -> WaitForThroughput -> CheckThroughput until InService] |
[DeployCustomModel -> WaitForDeployment -> CheckDeployment until Active] | nothing ->
PrepareEvaluation -> EvaluationRoute ->
EvaluateBedrockModel (the serving stack's evaluate-candidate function) |
EvaluateOpenModel (a SageMaker Processing job, polled until it ends) | nothing to evaluate
-> QualityGate -> RegisterModel (the serving stack's register-model function) -> CompleteJob.

Every task retries Lambda service faults and RetryableServiceError with exponential backoff
and full jitter, and catches everything else into HandleFailure, which marks the job failed,
removes partial resources, notifies and ends in Failed.
State names and result keys come from ``finetuning.orchestration.workflow``.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from finetuning.orchestration.errors import (
    RETRYABLE,
    JobTimeoutError,
    QualityGateFailedError,
)
from finetuning.orchestration.manifest import ServingMode
from finetuning.orchestration.workflow import ResultKeys, States
from finetuning.orchestration.workflow_serving import SERVING_MODE_KEY
from stacks.settings.orchestration import OrchestrationSettings

# Errors the Lambda service itself raises that are worth retrying, see
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
)
TIMEOUT = "States.Timeout"
ALL_ERRORS = "States.ALL"


# What the register-model function receives: the plan's registration fields and where the
# evaluation put its results (docs/evaluation.md, "The workflow's steps").
_REGISTRATION_FIELDS = (
    "model_name",
    "job_name",
    "backend",
    "base_model",
    "model_data_url",
    "bedrock_custom_model_arn",
)


def _registration_payload() -> sfn.TaskInput:
    plan = f"$.{ResultKeys.EVALUATION}.registration"
    result = f"$.{ResultKeys.EVALUATION_RESULT}"
    payload = {name: sfn.JsonPath.string_at(f"{plan}.{name}") for name in _REGISTRATION_FIELDS}
    payload["evaluation_results_uri"] = sfn.JsonPath.string_at(f"{result}.evaluation_results_uri")
    payload["report_uri"] = sfn.JsonPath.string_at(f"{result}.report_uri")
    return sfn.TaskInput.from_object(payload)


def _payload(*, with_token: bool = False) -> sfn.TaskInput:
    payload = {
        "input": sfn.JsonPath.object_at("$"),
        "execution_arn": sfn.JsonPath.execution_id,
    }
    if with_token:
        payload["task_token"] = sfn.JsonPath.task_token
    return sfn.TaskInput.from_object(payload)


class FineTuningWorkflow(Construct):
    """Builds the definition from the task functions (keyed by state name)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        settings: OrchestrationSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self._functions = functions
        self._settings = settings
        self.failed = sfn.Fail(
            self,
            States.FAILED,
            error_path=f"$.{ResultKeys.ERROR}.Error",
            cause_path=f"$.{ResultKeys.ERROR}.Cause",
        )
        handle_failure = self._task(States.HANDLE_FAILURE, ResultKeys.FAILURE)
        # If even the failure handler fails, the run still ends Failed with the first error.
        handle_failure.add_catch(
            self.failed, errors=[ALL_ERRORS], result_path=f"$.{ResultKeys.FAILURE}"
        )
        self.handle_failure = handle_failure.next(self.failed)
        self.definition = self._build()

    # -- tasks ---------------------------------------------------------------------------

    def _task(
        self,
        name: str,
        result_key: str,
        *,
        timeout: Duration | None = None,
        wait_for_token: bool = False,
        payload: sfn.TaskInput | None = None,
        input_path: str | None = None,
        function: str | None = None,
    ) -> tasks.LambdaInvoke:
        """``input_path``: send that part of the state as the payload, as it is (for
        functions that take their own event shape) instead of the ``{"input": state}``
        envelope or ``payload``. ``function``: the state whose function this task invokes
        (default: its own)."""
        # A callback task's output is what SendTaskSuccess sends; a plain invocation's is
        # the function's return value (payloadResponseOnly drops the invocation envelope).
        pattern: dict[str, object] = (
            {"integration_pattern": sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN}
            if wait_for_token
            else {"payload_response_only": True}
        )
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=self._functions[function or name],
            payload=None if input_path else payload or _payload(with_token=wait_for_token),
            input_path=input_path,
            result_path=f"$.{result_key}",
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(timeout) if timeout else None,
            **pattern,
        )
        task.add_retry(
            errors=list(LAMBDA_SERVICE_ERRORS),
            interval=Duration.seconds(2),
            max_attempts=6,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        # Throttling and server faults that outlasted the client's own retries.
        task.add_retry(
            errors=[RETRYABLE],
            interval=Duration.seconds(30),
            max_attempts=6,
            backoff_rate=2,
            max_delay=Duration.minutes(10),
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _catching(self, task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
        task.add_catch(
            self.handle_failure, errors=[ALL_ERRORS], result_path=f"$.{ResultKeys.ERROR}"
        )
        return task

    def _error(
        self, name: str, error: str, cause: str | None = None, cause_path: str | None = None
    ):
        parameters: dict[str, object] = {"Error": error}
        if cause_path:
            parameters["Cause"] = sfn.JsonPath.string_at(cause_path)
        else:
            parameters["Cause"] = cause
        return sfn.Pass(
            self, name, parameters=parameters, result_path=f"$.{ResultKeys.ERROR}"
        ).next(self.handle_failure)

    # -- flow ----------------------------------------------------------------------------

    def _evaluation(self, complete: sfn.IChainable) -> sfn.IChainable:
        """PrepareEvaluation and what follows it, up to ``complete``."""
        plan = f"$.{ResultKeys.EVALUATION}"
        result = f"$.{ResultKeys.EVALUATION_RESULT}"
        prepare = self._catching(self._task(States.PREPARE_EVALUATION, ResultKeys.EVALUATION))
        evaluate_bedrock = self._catching(
            self._task(
                States.EVALUATE_BEDROCK,
                ResultKeys.EVALUATION_RESULT,
                input_path=f"{plan}.request",
            )
        )
        evaluate_open = self._catching(
            self._task(States.EVALUATE_OPEN, ResultKeys.EVALUATION_RESULT)
        )
        register = self._catching(
            self._task(
                States.REGISTER_MODEL,
                ResultKeys.MODEL_REGISTRATION,
                payload=_registration_payload(),
            )
        )
        wait_evaluation = sfn.Wait(
            self,
            States.WAIT_EVALUATION,
            time=sfn.WaitTime.duration(Duration.seconds(self._settings.evaluation_check_seconds)),
        )
        registration_requested = (
            sfn.Choice(self, States.REGISTRATION_REQUESTED)
            .when(sfn.Condition.boolean_equals(f"{plan}.registration.register", True), register)
            .otherwise(complete)
        )
        register.next(complete)
        # No gate in the spec leaves the verdict null: only an explicit false fails the run.
        gate = (
            sfn.Choice(self, States.GATE)
            .when(
                sfn.Condition.and_(
                    sfn.Condition.is_boolean(f"{result}.quality_gate_passed"),
                    sfn.Condition.boolean_equals(f"{result}.quality_gate_passed", False),
                ),
                self._error(
                    States.GATE_FAILED,
                    QualityGateFailedError.__name__,
                    cause_path=f"{result}.reason",
                ),
            )
            .otherwise(registration_requested)
        )
        evaluate_bedrock.next(gate)
        evaluation_done = (
            sfn.Choice(self, States.EVALUATION_DONE)
            .when(sfn.Condition.boolean_equals(f"{result}.done", True), gate)
            .otherwise(wait_evaluation)
        )
        evaluate_open.next(evaluation_done)
        wait_evaluation.next(evaluate_open)
        route = (
            sfn.Choice(self, States.EVALUATION_ROUTE)
            .when(sfn.Condition.string_equals(f"{plan}.route", "bedrock"), evaluate_bedrock)
            .when(sfn.Condition.string_equals(f"{plan}.route", "processing"), evaluate_open)
            .otherwise(complete)
        )
        return prepare.next(route)

    def _build(self) -> sfn.IChainable:
        s = self._settings
        register = self._catching(self._task(States.REGISTER, ResultKeys.REGISTRATION))
        validate = self._catching(self._task(States.VALIDATE, ResultKeys.VALIDATION))
        start_bedrock = self._catching(self._task(States.START_BEDROCK, ResultKeys.LAUNCH))
        start_sagemaker = self._catching(self._task(States.START_SAGEMAKER, ResultKeys.LAUNCH))
        wait = self._task(
            States.WAIT,
            ResultKeys.WAIT,
            timeout=Duration.minutes(s.poll_interval_minutes),
            wait_for_token=True,
        )
        collect = self._catching(self._task(States.COLLECT, ResultKeys.RESULTS))
        provision = self._catching(self._task(States.PROVISION, ResultKeys.SERVING))
        check = self._catching(self._task(States.CHECK_THROUGHPUT, ResultKeys.SERVING))
        # On-demand deployments: the serving functions dispatch on the serving mode.
        deploy = self._catching(
            self._task(States.DEPLOY, ResultKeys.SERVING, function=States.PROVISION)
        )
        check_deployment = self._catching(
            self._task(
                States.CHECK_DEPLOYMENT, ResultKeys.SERVING, function=States.CHECK_THROUGHPUT
            )
        )
        complete = self._catching(self._task(States.COMPLETE, "completion"))
        # The poll loop: each timeout of the wait counts one poll, bounded by max_job_hours.
        init_polls = sfn.Pass(
            self,
            "InitPolls",
            result=sfn.Result.from_object({"count": 0}),
            result_path=f"$.{ResultKeys.POLLS}",
        )
        count_poll = sfn.Pass(
            self,
            States.COUNT_POLL,
            parameters={
                "count": sfn.JsonPath.math_add(
                    sfn.JsonPath.number_at(f"$.{ResultKeys.POLLS}.count"), 1
                )
            },
            result_path=f"$.{ResultKeys.POLLS}",
        )
        timed_out = self._error(
            States.JOB_TIMED_OUT,
            JobTimeoutError.__name__,
            cause=f"the job ran past max_job_hours={s.max_job_hours}; it is being stopped",
        )
        polls_left = (
            sfn.Choice(self, States.POLLS_LEFT)
            .when(
                sfn.Condition.number_less_than(f"$.{ResultKeys.POLLS}.count", s.max_polls),
                wait,
            )
            .otherwise(timed_out)
        )
        wait.add_catch(count_poll, errors=[TIMEOUT], result_path=sfn.JsonPath.DISCARD)
        wait.add_catch(
            self.handle_failure, errors=[ALL_ERRORS], result_path=f"$.{ResultKeys.ERROR}"
        )
        count_poll.next(polls_left)

        evaluate = self._evaluation(complete)

        # Serving: an on-demand custom model deployment (no hourly charge) or provisioned
        # throughput, as the serving mode says. It comes before the evaluation, which calls
        # the tuned Bedrock model through it; a failed gate deletes it again (HandleFailure).
        wait_throughput = sfn.Wait(
            self,
            States.WAIT_THROUGHPUT,
            time=sfn.WaitTime.duration(Duration.seconds(s.throughput_check_seconds)),
        )
        throughput_ready = (
            sfn.Choice(self, States.THROUGHPUT_READY)
            .when(
                sfn.Condition.boolean_equals(f"$.{ResultKeys.SERVING}.in_service", True),
                evaluate,
            )
            .otherwise(wait_throughput)
        )
        provision.next(wait_throughput)
        wait_throughput.next(check)
        check.next(throughput_ready)
        wait_deployment = sfn.Wait(
            self,
            States.WAIT_DEPLOYMENT,
            time=sfn.WaitTime.duration(Duration.seconds(s.throughput_check_seconds)),
        )
        deployment_ready = (
            sfn.Choice(self, States.DEPLOYMENT_READY)
            .when(
                sfn.Condition.boolean_equals(f"$.{ResultKeys.SERVING}.in_service", True),
                evaluate,
            )
            .otherwise(wait_deployment)
        )
        deploy.next(wait_deployment)
        wait_deployment.next(check_deployment)
        check_deployment.next(deployment_ready)
        mode = f"$.{ResultKeys.VALIDATION}.{SERVING_MODE_KEY}"
        serving_requested = (
            sfn.Choice(self, States.SERVING_REQUESTED)
            .when(
                sfn.Condition.string_equals(mode, ServingMode.PROVISIONED_THROUGHPUT.value),
                provision,
            )
            .when(sfn.Condition.string_equals(mode, ServingMode.ON_DEMAND.value), deploy)
            .otherwise(evaluate)
        )
        complete.next(sfn.Succeed(self, States.SUCCEEDED))
        wait.next(collect).next(serving_requested)
        init_polls.next(wait)
        start_bedrock.next(init_polls)
        start_sagemaker.next(init_polls)
        backend = (
            sfn.Choice(self, States.BACKEND)
            .when(sfn.Condition.string_equals("$.job.backend", "bedrock"), start_bedrock)
            .when(sfn.Condition.string_equals("$.job.backend", "sagemaker"), start_sagemaker)
            .otherwise(
                self._error(
                    "UnknownBackend",
                    "ManifestError",
                    cause="the job spec names no backend this workflow can start",
                )
            )
        )
        return sfn.Chain.start(register).next(validate).next(backend)

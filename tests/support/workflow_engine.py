"""The fine-tuning state machine on a real Amazon States Language engine.

moto ships the Step Functions interpreter that LocalStack maintains (moto's
``stepfunctions/parser``, enabled per request by the ``execute_state_machine`` setting): it
parses the definition as the service's own grammar does and evaluates Parameters,
ResultSelector, ResultPath, intrinsic functions, Choice rules, Retry (backoff, jitter,
MaxDelaySeconds) and Catch as the Amazon States Language defines them. This harness runs the
definition that the ``FineTuningWorkflow`` construct synthesizes on that engine, against the
moto-backed platform of ``fakes``, and supplies what moto leaves out:

- **Lambda**: every invocation of a function (the engine's ``lambda:invoke`` tasks, and the
  EventBridge deliveries a test makes with :meth:`FunctionRouter.invoke`) goes through one
  function, :meth:`FunctionRouter.invoke`, which knows which function it runs (its name, and
  the construct id its template logical id starts with) and calls the real handler in this
  process. It replaces moto's ``LambdaBackend.invoke`` (which would start a container), so the
  engine sees what the Lambda service returns: the handler's JSON, an ``Unhandled`` function
  error with the Python runtime's ``errorType``/``errorMessage`` payload, or a Lambda service
  fault (``Lambda.ServiceException``) for :class:`LambdaServiceFault`.
- **Time**: nothing sleeps. Wait states and retry intervals are recorded (``Outcome.waits``,
  ``Outcome.intervals``); a ``waitForTaskToken`` task that nobody has answered by the time its
  function returned (answers come synchronously, from ``on_wait`` or the function) times out
  at once with ``States.Timeout``, as it would after its TimeoutSeconds.
- **Two moto defects**: StartExecution deep-copies the state machine and with it the whole
  backend, which fails once another execution holds threads (the copy here leaves the
  backend and the executions list shared); and moto's SendTaskFailure drops the ``cause``
  parameter, so a Catch would see ``"Cause": null`` (the request handler here passes it).
- **One engine gap**: for a task whose Resource is the function ARN itself (the
  payload-response-only tasks), the engine names a Lambda service fault ``Exception``; AWS
  reports Lambda service errors as ``Lambda.<error code>`` (bp-lambda-serviceexception.html),
  as the engine already does for ``arn:aws:states:::lambda:invoke`` tasks, whose naming is
  used here for both.

- **Quota**: state inputs and outputs above 256 KiB fail the test (the engine does not check
  them all).

What this cannot show (see docs/contracts.md, "Workflow and events"): IAM (the state
machine role's lambda:InvokeFunction), real durations and TimeoutSeconds, the Lambda
service's own retries, throttles and payload limit, and the execution-level timeout.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaBackend
from moto.core.config import default_user_config
from moto.core.exceptions import JsonRESTError
from moto.core.responses import EmptyResult
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: E501
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
    StateTaskLambda,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from moto.stepfunctions.responses import StepFunctionResponse

from finetuning.orchestration.workflow import States
from tests.support.platform_fakes import ACCOUNT, REGION, client
from tests.support.workflow_definition import (
    TASK_FUNCTIONS,
    definition_document,
    workflow_definition,
)

__all__ = [
    "FUNCTION_CONSTRUCTS",
    "ROUTER_OBSERVERS",
    "TASK_FUNCTIONS",
    "FunctionRouter",
    "Interpreter",
    "Invocation",
    "LambdaServiceFault",
    "Outcome",
    "current_function",
    "definition_document",
    "workflow_definition",
]

# The construct id of each function in its stack: the template's logical id of the
# function (and of its role) starts with it. The orchestration stack names task functions
# after their states; the last two are the serving stack's.
FUNCTION_CONSTRUCTS = {
    **{folder: state for state, folder in TASK_FUNCTIONS.items()},
    "job_events": "JobEvents",
    "execution_ended": "ExecutionEnded",
    "submit_manifest": "SubmitManifest",
    "cleanup_expired": "CleanupExpired",
    TASK_FUNCTIONS[States.EVALUATE_BEDROCK]: "EvaluateModel",
    TASK_FUNCTIONS[States.REGISTER_MODEL]: "RegisterModel",
}

# The function whose handler runs now (None outside a handler): an AWS-call recorder reads
# it to attribute each call to that function's role.
current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_function", default=None
)

# Observers of every router's invocations (the orchestration conftest's permission check
# adds one per simulation test).
ROUTER_OBSERVERS: list[Callable[[Invocation], None]] = []

# How long a callback task waits for its token after its function returned. Answers are
# delivered synchronously (by on_wait or by the function itself), so none can come later.
CALLBACK_GRACE_SECONDS = 0.0
# Real seconds an execution may take before the harness gives up on it (a hang guard, not a
# figure of the workflow).
HANG_GUARD_SECONDS = 120.0
POLL_SECONDS = 0.01
MAX_PAYLOAD_BYTES = 256 * 1024


class LambdaServiceFault(Exception):
    """Raise in a handler override to make the Lambda service itself fail the invocation
    (HTTP 500 ServiceException): the state sees ``Lambda.ServiceException``."""


class _ServiceException(JsonRESTError):
    code = 500

    def __init__(self, message: str) -> None:
        super().__init__("ServiceException", message)


@dataclass
class Invocation:
    function: str  # the function name the task or event source invoked
    construct: str  # its construct id in the stack (template logical id prefix)
    event: Any
    result: Any = None
    error: str | None = None


class FunctionRouter:
    """Runs the handler of each invoked function in this process. ``handlers`` maps a function
    name (the folder key of ``TASK_FUNCTIONS``/``fakes.FUNCTIONS``) to ``fn(event) -> result``;
    ``observers`` are called with each finished :class:`Invocation`."""

    def __init__(
        self,
        handlers: dict[str, Callable[[Any], Any]],
        observers: list[Callable[[Invocation], None]] | None = None,
    ) -> None:
        self.handlers = handlers
        self.observers = observers or []
        self.invocations: list[Invocation] = []

    def invoke(self, function: str, event: Any) -> Any:
        """The one entry point of every in-process Lambda invocation."""
        name = function.rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name not in self.handlers:
            raise KeyError(f"no handler for function {name!r}; known: {sorted(self.handlers)}")
        invocation = Invocation(name, FUNCTION_CONSTRUCTS.get(name, name), copy.deepcopy(event))
        self.invocations.append(invocation)
        token = current_function.set(name)
        try:
            invocation.result = self.handlers[name](event)
            return invocation.result
        except Exception as exc:
            invocation.error = _error_type(exc)
            raise
        finally:
            current_function.reset(token)
            for observer in [*self.observers, *ROUTER_OBSERVERS]:
                observer(invocation)

    def lambda_backend_invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        """Stands in for moto's ``LambdaBackend.invoke`` (same signature, minus self)."""
        event = json.loads(body) if body else {}
        try:
            result = self.invoke(function_name, event)
        except LambdaServiceFault as exc:
            raise _ServiceException(str(exc)) from exc
        except Exception as exc:
            # What the Python runtime returns for an unhandled exception, see
            # https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorMessage": str(exc), "errorType": _error_type(exc), "stackTrace": []}
            return json.dumps(payload).encode()
        return json.dumps(result).encode()


def _error_type(exc: Exception) -> str:
    return type(exc).__name__


@dataclass
class Outcome:
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: dict[str, Any]
    path: list[str]
    error: str | None = None
    cause: str | None = None
    retries: list[tuple[str, str]] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)  # retry backoffs (seconds)
    history: list[dict[str, Any]] = field(default_factory=list)

    def visits(self, state: str) -> int:
        return self.path.count(state)


def _clone_state_machine(self: Any, memo: dict[int, Any]) -> Any:
    """moto deep-copies a state machine at each StartExecution; its ``backend`` (and with it
    every other execution's threads) and its executions list stay shared."""
    clone = copy.copy(self)
    for key, value in self.__dict__.items():
        if key not in ("backend", "executions"):
            setattr(clone, key, copy.deepcopy(value, memo))
    return clone


def _send_task_failure(self: StepFunctionResponse) -> EmptyResult:
    """moto 5.2.1's handler, passing the ``cause`` it drops, see
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html"""
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


_engine_lambda_error = StateTaskLambda._from_error


def _lambda_error(self: StateTaskLambda, env: Any, ex: Exception) -> FailureEvent:
    """Lambda service faults named as AWS documents them ("Lambda errors are reported as
    Lambda.ErrorName"), see
    https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html"""
    if not isinstance(ex, ClientError):
        return _engine_lambda_error(self, env, ex)
    error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error),
        event_type=HistoryEventType.LambdaFunctionFailed,
        event_details=EventDetails(
            lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                error=error, cause=cause
            )
        ),
    )


class _Clock:
    """Time as the engine asks for it: recorded, never slept."""

    def __init__(self) -> None:
        self.waits: list[int] = []
        self.intervals: list[float] = []

    def sleep(self, seconds: float) -> None:  # the retrier's backoff
        self.intervals.append(seconds)

    def wait_interval(self, _function: Any, env: Any, wait_seconds: int) -> None:
        self.waits.append(wait_seconds)

    @staticmethod
    def wait_for_token(_task: Any, _timeout_seconds: int, callback_endpoint: Any) -> Any:
        return callback_endpoint.wait(timeout=CALLBACK_GRACE_SECONDS)


@contextlib.contextmanager
def running_engine(router: FunctionRouter, clock: _Clock) -> Iterator[None]:
    """Inside ``mock_aws``: Step Functions requests go to moto's engine, Lambda invocations
    to ``router``, and time to ``clock``."""
    retrier_time = SimpleNamespace(sleep=clock.sleep)
    callback = state_task_service_callback.StateTaskServiceCallback
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            mock.patch.dict(default_user_config, {"stepfunctions": {"execute_state_machine": True}})
        )
        stack.enter_context(
            mock.patch.object(
                LambdaBackend,
                "invoke",
                lambda _backend, *args: router.lambda_backend_invoke(*args),
            )
        )
        stack.enter_context(mock.patch.object(retrier_decl, "time", retrier_time))
        stack.enter_context(
            mock.patch.object(
                wait_function.WaitFunction,
                "_wait_interval",
                lambda self, env, wait_seconds: clock.wait_interval(self, env, wait_seconds),
            )
        )
        stack.enter_context(
            mock.patch.object(
                callback,
                "_wait_for_task_token_timeout",
                lambda self, timeout, endpoint: clock.wait_for_token(self, timeout, endpoint),
            )
        )
        stack.enter_context(
            mock.patch.object(
                sfn_models.StateMachine, "__deepcopy__", _clone_state_machine, create=True
            )
        )
        stack.enter_context(
            mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure)
        )
        stack.enter_context(mock.patch.object(StateTaskLambda, "_from_error", _lambda_error))
        yield


class Interpreter:
    """Runs one execution on moto's engine (the constructor of the former ``asl.Interpreter``).
    ``handlers`` maps a function name to ``fn(event) -> result`` (the real handler, usually);
    ``on_wait(token)`` is called after a callback task's function returned, and may deliver
    events that answer it; ``answers`` is kept for the old signature (the engine itself now
    takes SendTaskSuccess/SendTaskFailure)."""

    def __init__(
        self,
        definition: dict[str, Any],
        *,
        handlers: dict[str, Callable[[dict[str, Any]], Any]],
        answers: Any = None,
        on_wait: Callable[[str], None] | None = None,
        max_transitions: int = 200,
        observers: list[Callable[[Invocation], None]] | None = None,
    ) -> None:
        self._definition = definition
        self._on_wait = on_wait or (lambda token: None)
        self._max_transitions = max_transitions
        self.router = FunctionRouter(dict(handlers), observers)
        for name, handler in list(self.router.handlers.items()):
            self.router.handlers[name] = self._with_wait_hook(handler)

    def _with_wait_hook(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(event: Any) -> Any:
            result = handler(event)
            token = event.get("task_token") if isinstance(event, dict) else None
            if token:
                # The answer comes from outside the function (a job's event, a test), so
                # its AWS calls are not the function's.
                outside = current_function.set(None)
                try:
                    self._on_wait(token)
                finally:
                    current_function.reset(outside)
            return result

        return run

    def run(self, execution_input: dict[str, Any], execution_arn: str) -> Outcome:
        machine_name, execution_name = execution_arn.rsplit(":", 2)[-2:]
        clock = _Clock()
        with running_engine(self.router, clock):
            sfn = client("stepfunctions")
            machine_arn = sfn.create_state_machine(
                name=machine_name,
                definition=json.dumps(self._definition),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{machine_name}-state-machine",
            )["stateMachineArn"]
            arn = sfn.start_execution(
                stateMachineArn=machine_arn, name=execution_name, input=json.dumps(execution_input)
            )["executionArn"]
            description = self._finished(sfn, arn)
            history = _history(sfn, arn)
        return _outcome(description, history, clock)

    def _finished(self, sfn: Any, arn: str) -> dict[str, Any]:
        """Waits until the execution ends (looking at moto's execution object, which costs the
        engine's thread less than DescribeExecution calls), then describes it."""
        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        (execution,) = [e for e in backend._get_executions() if e.exec_arn == arn]
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        for poll in itertools.count():
            if execution.exec_status != "RUNNING":
                return sfn.describe_execution(executionArn=arn)
            if poll % 200 == 199:
                entered = [e for e in _history(sfn, arn) if e["type"].endswith("StateEntered")]
                if len(entered) > self._max_transitions or time.monotonic() > deadline:
                    sfn.stop_execution(executionArn=arn, error="Harness", cause="ran away")
                    path = [e["stateEnteredEventDetails"]["name"] for e in entered]
                    raise RuntimeError(f"execution did not end: {len(path)} states: {path[-20:]}")
            time.sleep(POLL_SECONDS)
        raise AssertionError("unreachable")


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _check_payload_sizes(history: list[dict[str, Any]]) -> None:
    """The engine does not enforce the service's payload quota, so the harness does: "Maximum
    input or output size for a task, state, or execution: 256 KiB", see
    https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"""
    for event in history:
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for name in ("input", "output"):
                size = len(str(details.get(name) or "").encode())
                if size > MAX_PAYLOAD_BYTES:
                    raise AssertionError(
                        f"{event['type']} {details.get('name', '')}: {name} is {size} bytes; "
                        f"Step Functions fails the execution (States.DataLimitExceeded) above "
                        f"{MAX_PAYLOAD_BYTES}"
                    )


def _outcome(description: dict[str, Any], history: list[dict[str, Any]], clock: _Clock) -> Outcome:
    _check_payload_sizes(history)
    path: list[str] = []
    retries: list[tuple[str, str]] = []
    failed: str | None = None
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            path.append(event["stateEnteredEventDetails"]["name"])
            failed = None
        elif kind in ("LambdaFunctionFailed", "TaskFailed", "TaskTimedOut"):
            details = next(v for k, v in event.items() if k.endswith("EventDetails"))
            failed = details.get("error", "States.Timeout")
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled") and failed:
            retries.append((path[-1], failed))  # scheduled again in the same state: a retry
            failed = None
    failure = next((e for e in history if e["type"] == "ExecutionFailed"), None)
    details = (failure or {}).get("executionFailedEventDetails", {})
    # A failed execution has no output; the state its Fail state received stands in.
    output = description.get("output")
    if output is None:
        fail = [e for e in history if e["type"] == "FailStateEntered"]
        output = fail[-1]["stateEnteredEventDetails"]["input"] if fail else None
    return Outcome(
        status=description["status"],
        output=json.loads(output) if output else {},
        path=path,
        error=details.get("error"),
        cause=details.get("cause"),
        retries=retries,
        waits=clock.waits,
        intervals=clock.intervals,
        history=history,
    )

"""A small interpreter of the fine-tuning state machine's Amazon States Language definition.

It runs the definition the stack synthesizes (built here from the same
``FineTuningWorkflow`` construct) and calls the real function handlers, so a simulated run
proves that the states, their payloads, ResultPaths, Retry and Catch rules and the
handlers fit together. It implements what that definition uses: Lambda tasks (plain and
``waitForTaskToken`` with a timeout; Parameters, or the InputPath as it is), Pass with
``States.MathAdd``, Choice (``StringEquals``, ``NumericLessThan``, ``BooleanEquals``,
``IsPresent``, ``IsBoolean``, ``And``), Wait, Succeed and Fail.
Time does not pass: Wait states and backoff intervals are recorded, not slept.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from finetuning.orchestration.workflow import States
from stacks.orchestration_settings import OrchestrationSettings
from stacks.orchestration_workflow import FineTuningWorkflow
from tests.orchestration.fakes import ACCOUNT, REGION

# The function behind each task state (as the stack wires them; fakes.FUNCTIONS maps the
# two start functions to their shared folder; EvaluateBedrockModel and RegisterModel are
# the serving stack's functions).
TASK_FUNCTIONS = {
    States.REGISTER: "register_job",
    States.VALIDATE: "validate_dataset",
    States.START_BEDROCK: "start_bedrock_job",
    States.START_SAGEMAKER: "start_sagemaker_job",
    States.WAIT: "wait_for_job",
    States.COLLECT: "collect_results",
    States.PROVISION: "provision_throughput",
    States.CHECK_THROUGHPUT: "check_throughput",
    States.PREPARE_EVALUATION: "prepare_evaluation",
    States.EVALUATE_BEDROCK: "evaluate_candidate",
    States.EVALUATE_OPEN: "evaluation_job",
    States.REGISTER_MODEL: "register_model",
    States.COMPLETE: "complete_job",
    States.HANDLE_FAILURE: "handle_failure",
}
_MATH_ADD = re.compile(r"^States\.MathAdd\((?P<path>\$[^,]*),\s*(?P<value>-?\d+)\)$")
_tokens = itertools.count()


def workflow_definition(settings: OrchestrationSettings) -> dict[str, Any]:
    """The ASL document of the workflow as CloudFormation receives it, with function ARNs
    named after their folders."""
    stack = Stack(App(), "Definition", env={"account": ACCOUNT, "region": REGION})
    functions = {
        state: lambda_.Function.from_function_arn(
            stack, state, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{folder}"
        )
        for state, folder in TASK_FUNCTIONS.items()
    }
    workflow = FineTuningWorkflow(stack, "Workflow", functions=functions, settings=settings)
    sfn.StateMachine(
        stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(workflow.definition)
    )
    template = Template.from_stack(stack).to_json()
    (machine,) = (
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    return definition_document(machine["Properties"]["DefinitionString"])


def definition_document(definition_string: Any) -> dict[str, Any]:
    """Parse a DefinitionString (plain, or an Fn::Join whose tokens sit inside strings)."""
    if isinstance(definition_string, str):
        return json.loads(definition_string)
    separator, parts = definition_string["Fn::Join"]
    text = separator.join(part if isinstance(part, str) else "TOKEN" for part in parts)
    return json.loads(text)


class TaskFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Outcome:
    status: str  # SUCCEEDED | FAILED
    output: dict[str, Any]
    path: list[str]
    error: str | None = None
    cause: str | None = None
    retries: list[tuple[str, str]] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)

    def visits(self, state: str) -> int:
        return self.path.count(state)


def _get(data: Any, path: str) -> Any:
    if path == "$":
        return data
    value = data
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def _present(data: Any, path: str) -> bool:
    try:
        _get(data, path)
    except KeyError:
        return False
    return True


def _set(data: dict[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    if path is None:
        return data
    if path == "$":
        return value
    result = copy.deepcopy(data)
    target = result
    parts = path.removeprefix("$.").split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return result


class Interpreter:
    """Runs one execution. ``handlers`` maps a function folder to ``fn(event) -> result``
    (the real handler, usually); ``on_wait(token)`` is called while a callback task waits,
    and may deliver events that answer it; ``answers`` is the TaskAnswers client."""

    def __init__(
        self,
        definition: dict[str, Any],
        *,
        handlers: dict[str, Callable[[dict[str, Any]], Any]],
        answers: Any,
        on_wait: Callable[[str], None] | None = None,
        max_transitions: int = 200,
    ) -> None:
        self._definition = definition
        self._handlers = handlers
        self._answers = answers
        self._on_wait = on_wait or (lambda token: None)
        self._max_transitions = max_transitions

    def run(self, execution_input: dict[str, Any], execution_arn: str) -> Outcome:
        state_name = self._definition["StartAt"]
        data = copy.deepcopy(execution_input)
        outcome = Outcome(status="RUNNING", output={}, path=[])
        for _ in range(self._max_transitions):
            state = self._definition["States"][state_name]
            outcome.path.append(state_name)
            kind = state["Type"]
            if kind == "Succeed":
                outcome.status, outcome.output = "SUCCEEDED", data
                return outcome
            if kind == "Fail":
                outcome.status, outcome.output = "FAILED", data
                outcome.error = _get(data, state["ErrorPath"]) if "ErrorPath" in state else None
                outcome.cause = _get(data, state["CausePath"]) if "CausePath" in state else None
                return outcome
            if kind == "Pass":
                data = _set(data, state.get("ResultPath", "$"), self._pass_result(state, data))
                state_name = state["Next"]
            elif kind == "Choice":
                state_name = self._choose(state, data)
            elif kind == "Wait":
                outcome.waits.append(state["Seconds"])
                state_name = state["Next"]
            elif kind == "Task":
                data, state_name = self._task(state_name, state, data, execution_arn, outcome)
            else:
                raise NotImplementedError(f"state type {kind}")
        raise RuntimeError(f"more than {self._max_transitions} transitions: {outcome.path}")

    # -- states ----------------------------------------------------------------------------

    def _pass_result(self, state: dict[str, Any], data: dict[str, Any]) -> Any:
        if "Result" in state:
            return state["Result"]
        return self._parameters(state["Parameters"], data, context={})

    def _choose(self, state: dict[str, Any], data: dict[str, Any]) -> str:
        for choice in state["Choices"]:
            if self._matches(choice, data):
                return choice["Next"]
        return state["Default"]

    def _matches(self, rule: dict[str, Any], data: dict[str, Any]) -> bool:
        if "And" in rule:
            return all(self._matches(inner, data) for inner in rule["And"])
        variable = rule["Variable"]
        if "IsPresent" in rule:
            return _present(data, variable) == rule["IsPresent"]
        if not _present(data, variable):
            return False
        value = _get(data, variable)
        if "IsBoolean" in rule:
            return isinstance(value, bool) == rule["IsBoolean"]
        if "BooleanEquals" in rule:
            return isinstance(value, bool) and value == rule["BooleanEquals"]
        if "StringEquals" in rule:
            return isinstance(value, str) and value == rule["StringEquals"]
        if "NumericLessThan" in rule:
            return isinstance(value, int | float) and value < rule["NumericLessThan"]
        raise NotImplementedError(f"choice rule {rule}")

    def _parameters(self, template: Any, data: Any, context: dict[str, Any]) -> Any:
        if isinstance(template, dict):
            rendered = {}
            for key, value in template.items():
                if key.endswith(".$"):
                    rendered[key[:-2]] = self._reference(value, data, context)
                else:
                    rendered[key] = self._parameters(value, data, context)
            return rendered
        return template

    def _reference(self, expression: str, data: Any, context: dict[str, Any]) -> Any:
        if expression.startswith("$$."):
            return context[expression]
        match = _MATH_ADD.match(expression)
        if match:
            return _get(data, match["path"]) + int(match["value"])
        return copy.deepcopy(_get(data, expression))

    def _task(
        self,
        name: str,
        state: dict[str, Any],
        data: dict[str, Any],
        execution_arn: str,
        outcome: Outcome,
    ) -> tuple[dict[str, Any], str]:
        resource = json.dumps(state["Resource"])
        callback = "waitForTaskToken" in resource
        # No Parameters: the function gets the state (or its InputPath part) as it is.
        parameters = state.get("Parameters", {})
        function_arn = parameters.get("FunctionName") if "FunctionName" in parameters else resource
        folder = str(function_arn).rsplit(":function:", 1)[1].strip('"')
        payload_template = parameters.get("Payload", parameters)
        attempts: dict[int, int] = {}
        while True:
            token = f"token-{next(_tokens)}"
            context = {"$$.Execution.Id": execution_arn, "$$.Task.Token": token}
            if "Parameters" in state:
                payload = self._parameters(payload_template, data, context)
            else:
                payload = copy.deepcopy(_get(data, state.get("InputPath", "$")))
            try:
                result = self._handlers[folder](payload)
                if callback:
                    result = self._await(token)
                return _set(data, state.get("ResultPath", "$"), result), state["Next"]
            except Exception as exc:
                error, cause = self._error_of(exc)
            rule_index = self._retry_rule(state, error)
            if rule_index is not None:
                rule = state["Retry"][rule_index]
                attempts[rule_index] = attempts.get(rule_index, 0) + 1
                if attempts[rule_index] <= rule.get("MaxAttempts", 3):
                    outcome.retries.append((name, error))
                    continue
            for catcher in state.get("Catch", []):
                if error in catcher["ErrorEquals"] or (
                    "States.ALL" in catcher["ErrorEquals"] and error != "States.Runtime"
                ):
                    value = {"Error": error, "Cause": cause}
                    return _set(data, catcher.get("ResultPath", "$"), value), catcher["Next"]
            raise TaskFailed(error, cause)

    def _await(self, token: str) -> Any:
        if token not in self._answers.answers:
            self._on_wait(token)
        answer = self._answers.answers.get(token)
        if answer is None:
            self._answers.expired.add(token)
            raise TaskFailed("States.Timeout", "the task timed out")
        if "output" in answer:
            return answer["output"]
        raise TaskFailed(answer["error"], answer["cause"])

    @staticmethod
    def _error_of(exc: Exception) -> tuple[str, str]:
        if isinstance(exc, TaskFailed):
            return exc.error, exc.cause
        name = type(exc).__name__
        return name, json.dumps({"errorMessage": str(exc), "errorType": name})

    @staticmethod
    def _retry_rule(state: dict[str, Any], error: str) -> int | None:
        for index, rule in enumerate(state.get("Retry", [])):
            if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]:
                return index
        return None

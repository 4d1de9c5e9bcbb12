"""The fine-tuning state machine's definition as CloudFormation receives it, built from the
same ``FineTuningWorkflow`` construct as the orchestration stack (which
``test_stack.test_simulated_definition_is_the_stacks`` checks), with each task's function ARN
named after the function that ``engine.FunctionRouter`` runs for it."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from finetuning.orchestration.workflow import States
from stacks.orchestration_workflow import FineTuningWorkflow
from stacks.settings.orchestration import OrchestrationSettings
from tests.support.platform_fakes import ACCOUNT, REGION

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

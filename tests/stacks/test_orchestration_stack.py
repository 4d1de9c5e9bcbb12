"""The orchestration stack, synthesized with the foundation stacks and the cdk-nag gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from finetuning.orchestration import tags
from finetuning.orchestration.workflow import States
from stacks.compliance import add_compliance_gate, apply_tags
from stacks.network_stack import NetworkStack
from stacks.orchestration_stack import OrchestrationStack
from stacks.platform_stacks import platform_environment
from stacks.security_stack import SecurityStack
from stacks.settings import load_settings
from stacks.settings.orchestration import OrchestrationSettings
from stacks.storage_stack import StorageStack
from tests.support.platform_fakes import function_environment
from tests.support.workflow_definition import definition_document, workflow_definition
from tests.support.workflow_engine import FUNCTION_CONSTRUCTS

# Starts the jsii runtime: kept on the worker of the workflow simulations (`--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("orchestration-cdk")

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATION = OrchestrationSettings(notification_emails=("ml-team@example.com",))
TASK_STATES = [
    States.REGISTER,
    States.VALIDATE,
    States.START_BEDROCK,
    States.START_SAGEMAKER,
    States.WAIT,
    States.COLLECT,
    States.PROVISION,
    States.CHECK_THROUGHPUT,
    States.DEPLOY,
    States.CHECK_DEPLOYMENT,
    States.PREPARE_EVALUATION,
    States.EVALUATE_BEDROCK,
    States.EVALUATE_OPEN,
    States.REGISTER_MODEL,
    States.COMPLETE,
    States.HANDLE_FAILURE,
]


def serving_functions(app: App, prefix: str, env: Any) -> dict[str, lambda_.IFunction]:
    """The serving stack's two functions the workflow invokes, by ARN (that stack has tests
    of its own)."""
    stack = Stack(app, "ServingFunctions", env=env)
    return {
        state: lambda_.Function.from_function_arn(
            stack, state, f"arn:aws:lambda:us-east-1:123456789012:function:{prefix}-{name}"
        )
        for state, name in (
            (States.EVALUATE_BEDROCK, "evaluate-candidate"),
            (States.REGISTER_MODEL, "register-model"),
        )
    }


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Template, Path]]:
    """The foundation stacks and this one (not the other platform stacks, which have their
    own tests), synthesized once with the nag gate on."""
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = App(context=context, outdir=str(outdir))
    settings = load_settings("dev")
    env = platform_environment(settings)
    prefix = settings.resource_prefix
    storage = StorageStack(app, f"{prefix}-storage", settings=settings, env=env)
    network = NetworkStack(app, f"{prefix}-network", settings=settings, key=storage.key, env=env)
    security = SecurityStack(
        app,
        f"{prefix}-security",
        settings=settings,
        key=storage.key,
        vpc=network.vpc,
        training_subnets=network.training_subnets,
        training_security_group=network.training_security_group,
        env=env,
    )
    stack = OrchestrationStack(
        app,
        f"{prefix}-orchestration",
        stack_name=f"{prefix}-orchestration",
        settings=settings,
        orchestration=ORCHESTRATION,
        platform_key=storage.key,
        network=network,
        security=security,
        serving_functions=serving_functions(app, settings.resource_prefix, env),
        env=env,
    )
    stack.add_stack_dependency(storage)
    for each in (storage, network, security, stack):
        apply_tags(each, settings)
    add_compliance_gate(app)
    app.synth()  # raises if any nag rule has an unacknowledged finding
    template_file = outdir / f"{prefix}-orchestration.template.json"
    yield Template.from_json(json.loads(template_file.read_text())), outdir


@pytest.fixture(scope="module")
def template(synthesized: tuple[Template, Path]) -> Template:
    return synthesized[0]


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(kind)


def state_machine_definition(template: Template) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return definition_document(machine["Properties"]["DefinitionString"])


def _invoked(task: dict[str, Any]) -> str:
    """The function a Lambda task invokes (Parameters.FunctionName, or the Resource of a
    payload-response-only task), replaced in the task by a placeholder."""
    parameters = task.get("Parameters", {})
    if "FunctionName" in parameters:
        function, parameters["FunctionName"] = parameters["FunctionName"], "FUNCTION"
    else:
        function, task["Resource"] = task["Resource"], "FUNCTION"
    return function


def test_simulated_definition_is_the_stacks(template: Template) -> None:
    """The simulation (tests.support.workflow_engine) runs the definition this stack deploys:
    the same states and fields, each task invoking the function the router runs for it."""
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    separator, parts = machine["Properties"]["DefinitionString"]["Fn::Join"]
    deployed = json.loads(
        separator.join(
            part
            if isinstance(part, str)
            else f"TOKEN:{part['Fn::GetAtt'][0]}"
            if "Fn::GetAtt" in part
            else "TOKEN"
            for part in parts
        )
    )
    simulated = workflow_definition(ORCHESTRATION)
    functions = resources(template, "AWS::Lambda::Function")
    tasks = [name for name, state in simulated["States"].items() if state["Type"] == "Task"]
    assert sorted(tasks) == sorted(TASK_STATES)
    for name in tasks:
        function = _invoked(simulated["States"][name]).rsplit(":function:", 1)[1]
        target = _invoked(deployed["States"][name])
        if target.startswith("TOKEN:"):
            logical_id = target.removeprefix("TOKEN:")
            assert logical_id in functions, name
            assert logical_id.startswith(FUNCTION_CONSTRUCTS[function]), (name, logical_id)
        else:  # the serving stack's functions, by ARN
            assert name in (States.EVALUATE_BEDROCK, States.REGISTER_MODEL), name
    assert deployed.pop("StartAt") == simulated.pop("StartAt")
    assert deployed.pop("States") == simulated.pop("States")
    # Only the stack's machine has the execution timeout (not simulated: docs/contracts.md).
    assert simulated == {} and sorted(deployed) == ["Comment", "TimeoutSeconds"]


def test_every_task_state_has_retry_and_catch(template: Template) -> None:
    definition = state_machine_definition(template)
    tasks = {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}
    assert sorted(tasks) == sorted(TASK_STATES)
    for name, state in tasks.items():
        retried = [error for rule in state["Retry"] for error in rule["ErrorEquals"]]
        assert "RetryableServiceError" in retried, name
        assert "Lambda.ServiceException" in retried and "Lambda.TooManyRequestsException" in retried
        for rule in state["Retry"]:
            assert rule["BackoffRate"] >= 2 and rule["JitterStrategy"] == "FULL", name
        caught = [error for catcher in state["Catch"] for error in catcher["ErrorEquals"]]
        assert "States.ALL" in caught, name
        target = States.FAILED if name == States.HANDLE_FAILURE else States.HANDLE_FAILURE
        assert state["Catch"][-1]["Next"] == target, name
    wait = tasks[States.WAIT]
    assert wait["TimeoutSeconds"] == ORCHESTRATION.poll_interval_minutes * 60
    assert wait["Catch"][0] == {
        "ErrorEquals": ["States.Timeout"],
        "ResultPath": None,
        "Next": States.COUNT_POLL,
    }
    assert wait["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    polls = definition["States"][States.POLLS_LEFT]["Choices"][0]
    assert polls["NumericLessThan"] == ORCHESTRATION.max_polls


def test_state_machine_logs_everything_traces_and_encrypts(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": Match.any_value()}}],
            },
            "EncryptionConfiguration": {
                "Type": "CUSTOMER_MANAGED_KMS_KEY",
                "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("OrchestrationKey"), "Arn"]},
            },
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": "/aws/vendedlogs/states/llm-finetuning-dev-finetuning",
            "RetentionInDays": 90,
            "KmsKeyId": Match.any_value(),
        },
    )


def test_functions_run_python_on_arm_with_powertools_tracing_and_dead_letters(
    template: Template,
) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == 17  # 16 workflow functions and the RFT grader
    roles = set()
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14" and props["Architectures"] == ["arm64"], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
        (layer,) = props["Layers"]
        assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:" in json.dumps(
            layer
        )
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["MemorySize"] >= 256 and props["Timeout"] >= 60
        assert "POWERTOOLS_SERVICE_NAME" in props["Environment"]["Variables"]
        roles.add(json.dumps(props["Role"]))
    assert len(roles) == 17  # one role per function
    log_groups = resources(template, "AWS::Logs::LogGroup")
    assert len(log_groups) == 18  # one per function, and the state machine's
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == 90
        assert log_group["Properties"]["KmsKeyId"]["Fn::GetAtt"][0].startswith("OrchestrationKey")


def _statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, policy in resources(template, "AWS::IAM::ManagedPolicy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement


def test_least_privilege_no_star_actions_no_inline_policies(template: Template) -> None:
    assert resources(template, "AWS::IAM::Policy") == {}
    for role in resources(template, "AWS::IAM::Role").values():
        assert "Policies" not in role["Properties"]
        assert "ManagedPolicyArns" not in role["Properties"]
    for name, statement in _statements(template):
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        assert all(action != "*" and not action.endswith(":*") for action in actions), name


def test_pass_role_is_scoped_to_the_two_service_roles(template: Template) -> None:
    passes = [s for _, s in _statements(template) if s["Action"] == "iam:PassRole"]
    assert len(passes) == 3  # StartBedrockJob, StartSageMakerJob, EvaluateOpenModel
    services = set()
    for statement in passes:
        assert "Fn::ImportValue" in json.dumps(statement["Resource"])
        services.add(statement["Condition"]["StringEquals"]["iam:PassedToService"])
    assert services == {"bedrock.amazonaws.com", "sagemaker.amazonaws.com"}


def test_deletion_requires_the_platform_tag_and_spares_kept_resources(
    template: Template,
) -> None:
    deletes = [
        s
        for _, s in _statements(template)
        if s["Action"] in ("bedrock:DeleteProvisionedModelThroughput", "sagemaker:DeleteEndpoint")
    ]
    assert len(deletes) == 4  # throughput x3 functions, endpoints x1
    for statement in deletes:
        assert statement["Condition"] == {
            "StringEquals": {"aws:ResourceTag/finetuning:platform": "llm-finetuning-dev"},
            "StringNotEquals": {"aws:ResourceTag/finetuning:keep": "true"},
        }
    (create,) = [
        s for _, s in _statements(template) if s["Action"] == "sagemaker:CreateTrainingJob"
    ]
    assert create["Condition"]["Bool"] == {
        "sagemaker:NetworkIsolation": "true",
        "sagemaker:InterContainerTrafficEncryption": "true",
    }
    assert create["Condition"]["ForAllValues:StringLike"]["sagemaker:InstanceTypes"] == [
        "ml.g5.*",
        "ml.g6.*",
        "ml.g6e.*",
        "ml.p4d.*",
        "ml.p5.*",
    ]
    assert set(create["Condition"]["ForAllValues:StringEquals"]) == {
        "sagemaker:VpcSubnets",
        "sagemaker:VpcSecurityGroupIds",
    }
    assert "sagemaker:OutputKmsKey" in create["Condition"]["StringEquals"]
    # Callback tokens cannot be scoped by resource (Service Authorization Reference).
    answers = [s for _, s in _statements(template) if s.get("Sid") == "AnswerWaits"]
    assert len(answers) == 2 and all(s["Resource"] == "*" for s in answers)


def test_evaluation_jobs_run_isolated_in_the_platform_image(template: Template) -> None:
    (create,) = [
        s for _, s in _statements(template) if s["Action"] == "sagemaker:CreateProcessingJob"
    ]
    assert create["Condition"]["Bool"] == {
        "sagemaker:NetworkIsolation": "true",
        "sagemaker:InterContainerTrafficEncryption": "true",
    }
    assert "sagemaker:OutputKmsKey" in create["Condition"]["StringEquals"]
    assert "sagemaker:VolumeKmsKey" in create["Condition"]["StringEqualsIfExists"]
    assert set(create["Condition"]["ForAllValues:StringEquals"]) == {
        "sagemaker:VpcSubnets",
        "sagemaker:VpcSecurityGroupIds",
    }
    stops = [s for _, s in _statements(template) if s["Action"] == "sagemaker:StopProcessingJob"]
    assert len(stops) == 2  # HandleFailure and ExecutionEnded, own jobs only
    assert all(
        "aws:ResourceTag/finetuning:platform" in s["Condition"]["StringEquals"] for s in stops
    )

    # The execution role may pull the platform's images, and only from their repository.
    (pull,) = [
        p
        for p in resources(template, "AWS::IAM::ManagedPolicy").values()
        if "evaluation images" in p["Properties"].get("Description", "")
    ]
    statements = pull["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == ["PullEvaluationImage", "PullTrainingImage"]
    for statement in statements:
        assert statement["Action"] == [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        assert "container-assets" in json.dumps(statement["Resource"])
    assert "Fn::ImportValue" in json.dumps(pull["Properties"]["Roles"])
    for variable in ("EVALUATION_IMAGE_URI", "TRAINING_IMAGE_URI"):
        # The platform's own images (CDK assets), not a public DLC: training jobs run
        # isolated on containers/training/Dockerfile, which has train.py's packages.
        images = {
            json.dumps(f["Properties"]["Environment"]["Variables"][variable])
            for f in resources(template, "AWS::Lambda::Function").values()
            if variable in f["Properties"]["Environment"]["Variables"]
        }
        assert len(images) == 1 and "container-assets" in images.pop(), variable


def test_state_machine_invokes_the_serving_functions(template: Template) -> None:
    (policy,) = [
        p
        for p in resources(template, "AWS::IAM::ManagedPolicy").values()
        if "Invoke the orchestration functions" in p["Properties"].get("Description", "")
    ]
    invoke = next(
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Sid"] == "InvokeTaskFunctions"
    )
    text = json.dumps(invoke["Resource"])
    assert "function:llm-finetuning-dev-evaluate-candidate" in text
    assert "function:llm-finetuning-dev-register-model" in text


def test_job_table_and_idempotency_table(template: Template) -> None:
    template.has_resource(
        "AWS::DynamoDB::GlobalTable",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
                    "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
                    "GlobalSecondaryIndexes": Match.array_with(
                        [Match.object_like({"IndexName": "by-status"})]
                    ),
                    "Replicas": [
                        Match.object_like(
                            {
                                "DeletionProtectionEnabled": True,
                                "PointInTimeRecoverySpecification": {
                                    "PointInTimeRecoveryEnabled": True
                                },
                                "SSESpecification": {"KMSMasterKeyId": Match.any_value()},
                            }
                        )
                    ],
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )


def test_topic_queue_key_rules_and_schedule(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": "ml-team@example.com",
            "RedrivePolicy": Match.any_value(),
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {"KmsMasterKeyId": Match.any_value(), "MessageRetentionPeriod": 14 * 24 * 3600},
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    rules = resources(template, "AWS::Events::Rule")
    patterns = {json.dumps(r["Properties"]["EventPattern"], sort_keys=True) for r in rules.values()}
    assert len(rules) == 4
    assert any('"Model Customization Job State Change"' in p for p in patterns)
    assert any('"TrainingJobStatus": ["Completed", "Failed", "Stopped"]' in p for p in patterns)
    assert any('"ABORTED", "TIMED_OUT", "FAILED"' in p for p in patterns)
    assert any('"prefix": "jobs/"' in p for p in patterns)
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 4
    template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "rate(1 hour)",
            "KmsKeyArn": Match.any_value(),
            "Target": Match.object_like({"DeadLetterConfig": Match.any_value()}),
        },
    )


def test_discovery_parameters(template: Template) -> None:
    names = {p["Properties"]["Name"] for p in resources(template, "AWS::SSM::Parameter").values()}
    assert names == {
        "/llm-finetuning/dev/orchestration/state-machine-arn",
        "/llm-finetuning/dev/orchestration/job-table-name",
        "/llm-finetuning/dev/orchestration/notification-topic-arn",
        "/llm-finetuning/dev/orchestration/kms-key-arn",
        "/llm-finetuning/dev/orchestration/rft-grader-function-arn",
    }


@pytest.mark.slow
def test_cfn_lint_has_no_errors_or_warnings(synthesized: tuple[Template, Path]) -> None:
    """Slow (cfn-lint loads its schemas for ~30 s); the foundation's template tests lint every
    stack of the app once this stack is wired in.
    Run: pytest -m slow tests/stacks/test_orchestration_stack.py"""
    from cfnlint.api import lint_all

    path = synthesized[1] / "llm-finetuning-dev-orchestration.template.json"
    findings = [m for m in lint_all(path.read_text()) if m.rule.id[0] in "EW"]
    assert [f"{m.rule.id} {m.message}" for m in findings] == []


def test_every_bundle_imports_its_handler_alone(synthesized: tuple[Template, Path]) -> None:
    """Each asset holds what its handler imports: run in a clean interpreter with only the
    asset (and the Lambda runtime's packages) on the path."""
    outdir = synthesized[1]
    assets = [d for d in outdir.glob("asset.*") if (d / "index.py").is_file()]
    assert len(assets) == 17  # 16 workflow functions and the RFT grader
    for asset in assets:
        assert not list(asset.rglob("__pycache__")) and not list(asset.rglob("*.so"))
        stub = (asset / "finetuning" / "__init__.py").read_text()
        assert "this function ships with" in stub
    script = """
import importlib.util, sys
failures = []
for asset in sys.argv[1:]:
    sys.path.insert(0, asset)
    try:
        spec = importlib.util.spec_from_file_location("index", asset + "/index.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.handler)
    except Exception as exc:
        failures.append(f"{asset}: {type(exc).__name__}: {exc}")
    finally:
        sys.path.remove(asset)
        for name in [n for n in sys.modules if n == "finetuning" or n.startswith("finetuning.")]:
            del sys.modules[name]
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""
    env = {**os.environ, **function_environment(), "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, assets)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # What functions import lazily, where they import it.
    def having(marker: str) -> list[Path]:
        return [a for a in assets if marker in (a / "index.py").read_text()]

    (validate,) = having("validate_job_data")
    assert (validate / "finetuning" / "data" / "validate.py").is_file()
    (collect,) = having("collect_results")
    assert (collect / "finetuning" / "data" / "estimate.py").is_file()
    (submit,) = having("submit_manifest_object")
    assert (submit / "yaml" / "__init__.py").is_file()
    starts = having("launch import start_job")
    with_metrics = [
        a for a in starts if (a / "training_scripts" / "metric_definitions.py").is_file()
    ]
    assert len(starts) == 2 and len(with_metrics) == 1
    template = json.loads((outdir / "llm-finetuning-dev-orchestration.template.json").read_text())
    (sagemaker_start,) = [
        r["Properties"]["Code"]["S3Key"]
        for name, r in template["Resources"].items()
        if name.startswith("StartSageMakerJobFunction")
    ]
    assert sagemaker_start == f"{with_metrics[0].name.removeprefix('asset.')}.zip"


def test_on_demand_deployments_are_created_tagged_read_and_deleted_only_when_owned(
    template: Template,
) -> None:
    statements = list(_statements(template))
    owned = {f"aws:RequestTag/{tags.PLATFORM}": "llm-finetuning-dev"}
    (create,) = [s for _, s in statements if s.get("Sid") == "CreateTaggedDeployment"]
    assert create["Action"] == ["bedrock:CreateCustomModelDeployment", "bedrock:TagResource"]
    assert create["Condition"] == {"StringEquals": owned}
    resources = json.dumps(create["Resource"])
    assert ":custom-model-deployment/*" in resources and ":custom-model/*" in resources
    reads = [s for _, s in statements if s["Action"] == "bedrock:GetCustomModelDeployment"]
    assert len(reads) == 2  # ProvisionThroughput/DeployCustomModel, CheckThroughput/-Deployment
    deletes = [s for _, s in statements if s["Action"] == "bedrock:DeleteCustomModelDeployment"]
    assert len(deletes) == 3  # HandleFailure, ExecutionEnded, CleanupExpired
    for statement in deletes:
        assert ":custom-model-deployment/*" in json.dumps(statement["Resource"])
        assert statement["Condition"] == {
            "StringEquals": {f"aws:ResourceTag/{tags.PLATFORM}": "llm-finetuning-dev"},
            "StringNotEquals": {f"aws:ResourceTag/{tags.KEEP}": tags.KEEP_VALUE},
        }
    (find,) = [s for _, s in statements if s.get("Sid") == "FindServingResources"]
    assert "bedrock:ListCustomModelDeployments" in find["Action"]

    definition = state_machine_definition(template)["States"]
    choices = definition[States.SERVING_REQUESTED]["Choices"]
    assert [(c["Variable"], c["StringEquals"], c["Next"]) for c in choices] == [
        ("$.validation.serving_mode", "provisioned_throughput", States.PROVISION),
        ("$.validation.serving_mode", "on_demand", States.DEPLOY),
    ]
    assert definition[States.SERVING_REQUESTED]["Default"] == States.PREPARE_EVALUATION
    assert definition[States.DEPLOYMENT_READY]["Default"] == States.WAIT_DEPLOYMENT


def _grader_function_id(template: Template) -> str:
    (function_id,) = [
        name
        for name, function in resources(template, "AWS::Lambda::Function").items()
        if name.startswith("RftGraderFunction")
    ]
    return function_id


def test_only_bedrock_customization_jobs_of_this_account_may_invoke_the_grader(
    template: Template,
) -> None:
    grader = _grader_function_id(template)
    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [grader, "Arn"]}
    ]
    (permission,) = permissions
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "bedrock.amazonaws.com"
    # Both conditions name this stack's own account; the jobs are this Region's.
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {
        "Fn::Join": [
            "",
            [
                "arn:aws:bedrock:us-east-1:",
                {"Ref": "AWS::AccountId"},
                ":model-customization-job/*",
            ],
        ]
    }


def test_the_bedrock_role_may_invoke_the_grader_and_nothing_else(template: Template) -> None:
    grader = _grader_function_id(template)
    policies = [
        p["Properties"]
        for name, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if name.startswith("RftGraderBedrockRoleInvokesGraders")
    ]
    (policy,) = policies
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": [grader, "Arn"]}
    assert len(policy["Roles"]) == 1  # the security stack's Bedrock customization role


def test_the_bedrock_start_function_knows_the_platform_grader(template: Template) -> None:
    grader = _grader_function_id(template)
    (start,) = [
        f["Properties"]
        for name, f in resources(template, "AWS::Lambda::Function").items()
        if name.startswith("StartBedrockJob")
    ]
    variables = start["Environment"]["Variables"]
    assert variables["RFT_GRADER_FUNCTION_ARN"] == {"Fn::GetAtt": [grader, "Arn"]}


def test_users_graders_are_named_lambda_arns() -> None:
    from pydantic import ValidationError

    arn = "arn:aws:lambda:us-east-1:123456789012:function:my-grader"
    assert OrchestrationSettings(rft_grader_arns=(arn,)).rft_grader_arns == (arn,)
    for bad in ("arn:aws:lambda:us-east-1:123456789012:function:*", "my-grader"):
        with pytest.raises(ValidationError, match="Lambda function ARNs"):
            OrchestrationSettings(rft_grader_arns=(bad,))


def test_the_bedrock_role_may_invoke_this_regions_distillation_teachers_by_name(
    template: Template,
) -> None:
    """dev is in us-east-1: Nova Pro, on demand and through its US profile (the statements
    themselves are pinned in tests/stacks/test_distillation_teachers.py)."""
    (policy,) = [
        p["Properties"]
        for name, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if name.startswith("DistillationTeachersBedrockRoleInvokesTeachers")
    ]
    statements = policy["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [
        "InvokeDistillationTeachers",
        "InvokeAmazonNovaProProfile",
        "InvokeAmazonNovaProThroughItsProfile",
    ]
    assert {s["Action"] for s in statements} == {"bedrock:InvokeModel"}
    text = json.dumps(statements)
    assert "*" not in text
    assert "inference-profile/us.amazon.nova-pro-v1:0" in text
    assert "nova-premier" not in text and "meta." not in text


# The logical ids of the stateful and named resources as the stack had them before it was
# split into constructs (synthesized from the commit before the split, dev settings): a
# changed id would make CloudFormation replace the resource, and a named one cannot be.
KEPT_LOGICAL_IDS = Path(__file__).with_name("orchestration_logical_ids.json")


def test_stateful_and_named_resources_keep_their_logical_ids(template: Template) -> None:
    expected: dict[str, list[str]] = json.loads(KEPT_LOGICAL_IDS.read_text())
    for kind, ids in expected.items():
        assert sorted(resources(template, kind)) == ids, kind


# The bedrock-mantle statements: who may start, read and cancel open-weight RFT jobs, with a
# short-term API key (stacks/constructs/job_permissions.py, grant_open_weight_rft).
def test_open_weight_rft_jobs_are_started_read_and_cancelled_by_exactly_their_functions(
    template: Template,
) -> None:
    by_policy: dict[str, dict[str, dict[str, Any]]] = {}
    for name, statement in _statements(template):
        by_policy.setdefault(name, {})[statement.get("Sid", "")] = statement
    with_key = {n for n, sids in by_policy.items() if "UseShortTermKeyOnMantle" in sids}
    assert {n.split("Policy")[0] for n in with_key} == {
        "StartBedrockJob",
        "WaitForJob",
        "CollectResults",
        "HandleFailure",
        "ExecutionEnded",
    }
    for name in with_key:
        sids = by_policy[name]
        key = sids["UseShortTermKeyOnMantle"]
        # No resource type for CallWithBearerToken: "*", in the stack's Region only.
        assert key["Action"] == "bedrock-mantle:CallWithBearerToken"
        assert key["Resource"] == "*"
        assert key["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}
        mantle = [s for sid, s in sids.items() if "bedrock-mantle:" in json.dumps(s["Action"])]
        for statement in mantle:
            if statement is not key:  # every other one on this Region's projects
                resource = json.dumps(statement["Resource"])
                assert ":bedrock-mantle:us-east-1:" in resource and "project/*" in resource
        starts = name.startswith("StartBedrockJob")
        cancels = name.startswith(("HandleFailure", "ExecutionEnded"))
        actions = sorted(
            a
            for s in mantle
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
        expected = ["bedrock-mantle:CallWithBearerToken", "bedrock-mantle:GetFineTuningJob"]
        if starts:
            expected += [
                "bedrock-mantle:CreateFile",
                "bedrock-mantle:CreateFineTuningJob",
                "bedrock-mantle:ListFiles",
                "bedrock-mantle:ListFineTuningJobs",
            ]
            start = sids["StartOpenWeightRftJobs"]
            assert start["Condition"] == {
                "StringEquals": {"bedrock-mantle:Model": ["openai.gpt-oss-20b", "qwen.qwen3-32b"]}
            }
            graders = json.dumps(sids["InvokeRftGradersForMantleJobs"]["Resource"])
            assert "RftGrader" in graders  # the platform's grader (and the settings' own)
            assert "training-data/" in json.dumps(sids["ReadOpenWeightRftData"]["Resource"])
            decrypt = sids["DecryptOpenWeightRftData"]
            assert decrypt["Action"] == "kms:Decrypt"
            assert decrypt["Condition"] == {
                "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
            }
        if cancels:
            expected.append("bedrock-mantle:CancelFineTuningJob")
        assert actions == sorted(expected), name


def test_open_weight_rft_functions_ship_the_api_client_and_the_key_generator(
    synthesized: tuple[Template, Path],
) -> None:
    """What finetuning.orchestration.open_weight imports lazily is in each asset that reaches
    the endpoint, and imports there alone (the token generator needs only botocore)."""
    outdir = synthesized[1]
    assets = [
        d
        for d in outdir.glob("asset.*")
        if (d / "index.py").is_file()
        and (d / "finetuning" / "backends" / "bedrock_openai_rft.py").is_file()
    ]
    assert len(assets) == 5  # StartBedrockJob, WaitForJob, CollectResults, the two failures
    script = """
import sys
sys.path.insert(0, sys.argv[1])
import aws_bedrock_token_generator, finetuning.backends.bedrock_openai_rft, finetuning.jobs
from finetuning.orchestration import open_weight
print(aws_bedrock_token_generator.__version__)
"""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("PYTHONPATH", None)
    for asset in assets:
        result = subprocess.run(
            [sys.executable, "-c", script, str(asset)],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=120,
        )
        assert result.returncode == 0, f"{asset}: {result.stdout}{result.stderr}"
        assert result.stdout.strip() == "1.1.0"

"""Every AWS call each Lambda handler of the orchestration and serving stacks makes, on
representative events under moto (Stubber where moto lacks the API), is allowed by THAT
function's role in the synthesized app, as IAM would evaluate it.

The app is synthesized once per session for the environment the fakes use
(``llm-finetuning-test``); the resources each function's environment names are bound to the
names and ARNs the simulation ran with (``Templates.bind_environment``), so the ARNs in the
recorded calls and in the policies are the same resources. See ``iam_recorder`` for what
each call is turned into (its own action plus what AWS authorizes on the caller's behalf).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from finetuning.orchestration import tags
from finetuning.orchestration.clients import Clients
from finetuning.orchestration.environment import Var
from finetuning.orchestration.records import JobTable, timestamp, utc_now
from tests.support.iam_policy import Templates
from tests.support.iam_recorder import AwsCallRecorder, aws_calls  # noqa: F401  (fixture)
from tests.support.platform_fakes import (
    ACCOUNT,
    DATA_BUCKET,
    EVALUATION_BUCKET,
    JOB_TABLE,
    MODEL_PACKAGE_GROUP,
    PREFIX,
    REGION,
    THROUGHPUT_OPERATIONS,
    LambdaContext,
    Platform,
    Routed,
    bedrock_manifest,
    client,
    eventbridge_event,
    factory_with,
    load_handler,
    nova_records,
    sagemaker_manifest,
    set_bedrock_job_status,
    set_training_job_status,
    stubbed,
    task_event,
)
from tests.support.serving import GATE, GOOD, WEAK, results_document
from tests.support.synth import synth  # noqa: F401  (session fixture: synthesized once)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MODEL_ARN = (
    f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0:300k/abcdefghijkl"
)
THROUGHPUT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefghijkl"
DEPLOYMENT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdef123456"
# Functions deployed from another function's folder (lambda/start_job twice).
FOLDERS = {
    "StartBedrockJob": "start_bedrock_job",
    "StartSageMakerJob": "start_sagemaker_job",
    "EvaluateOpenModel": "evaluation_job",
}


@pytest.fixture(scope="session")
def templates(synth) -> dict[str, Any]:  # noqa: F811
    """The app as the fakes' environment would deploy it (prefix llm-finetuning-test)."""
    return synth("dev", as_environment="test").templates


@pytest.fixture
def platform(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """The shared moto platform (tests/support/platform_fixtures.py), in the functions' Region."""
    monkeypatch.setenv("AWS_REGION", REGION)
    return platform


class Run:
    """Runs handlers as their functions, records their calls, checks them at the end."""

    def __init__(self, templates: dict, platform: Platform, calls: AwsCallRecorder) -> None:
        self.app = Templates(templates)
        self.platform = platform
        self.calls = calls
        self.functions: dict[str, tuple[str, str]] = {}

    def module(self, construct_id: str, **clients: Any) -> Any:
        folder = FOLDERS.get(construct_id) or _folder(construct_id)
        module = load_handler(folder)
        if clients:
            module.CLIENTS = Clients(REGION, factory_with(clients))
        return module

    def as_function(self, construct_id: str, handler: Callable[..., Any], event: Any) -> Any:
        stack, function_id = self.app.function(construct_id)
        self.functions[construct_id] = (stack, function_id)
        extra = {"EXPECTED_BACKEND": "bedrock" if "Bedrock" in construct_id else "sagemaker"}
        self.app.bind_environment(stack, function_id, {**self.platform.environment, **extra})
        with self.calls.acting_as(construct_id):
            return handler(event, LambdaContext())

    def invoke(self, construct_id: str, event: Any, **clients: Any) -> Any:
        return self.as_function(construct_id, self.module(construct_id, **clients).handler, event)

    def check(self, *expected: str) -> None:
        assert set(expected) <= {c.actor for c in self.calls.calls}, "a handler made no call"
        self.calls.assert_allowed(self.app, self.functions)


def _folder(construct_id: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in construct_id).lstrip("_")


@pytest.fixture
def run(templates, platform, aws_calls) -> Run:  # noqa: F811
    return Run(templates, platform, aws_calls)


def registered(run: Run, spec: dict[str, Any]) -> dict[str, Any]:
    event = task_event(spec)
    run.invoke("RegisterJob", event)
    return event


def started(run: Run, spec: dict[str, Any]) -> dict[str, Any]:
    event = registered(run, spec)
    backend = event["input"]["job"]["backend"]
    construct_id = "StartBedrockJob" if backend == "bedrock" else "StartSageMakerJob"
    event["input"]["launch"] = run.invoke(construct_id, event)
    return event


def throughput_client() -> tuple[Any, Stubber]:
    """Bedrock with provisioned throughput and custom model deployments stubbed (moto has
    neither in full)."""
    stubbed_client, stubber = stubbed("bedrock")
    operations = THROUGHPUT_OPERATIONS | {"delete_custom_model_deployment"}
    return Routed(client("bedrock"), stubbed_client, operations), stubber


def throughput(status: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "x-pt",
        "provisionedModelArn": THROUGHPUT_ARN,
        "modelArn": MODEL_ARN,
        "desiredModelArn": MODEL_ARN,
        "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-lite-v1:0",
        "status": status,
        "creationTime": now,
        "lastModifiedTime": now,
    }


# -- orchestration: the Bedrock path ---------------------------------------------------------


def test_bedrock_path_calls_are_allowed(run: Run) -> None:
    spec = bedrock_manifest(serving={"provisioned_throughput": {}})
    run.platform.put(spec["training_data_uri"], nova_records())
    event = registered(run, spec)
    run.invoke("ValidateDataset", event)
    event["input"]["launch"] = run.invoke("StartBedrockJob", event)
    job_id = event["input"]["job_id"]

    run.invoke("WaitForJob", {**event, "task_token": "token-1"})
    set_bedrock_job_status(job_id, "Completed")
    JobTable(run.platform.dynamodb, JOB_TABLE).update(job_id, task_token="token-2")
    detail = {"jobName": job_id, "jobStatus": "Completed", "jobArn": f"arn:x/{job_id}"}
    run.invoke(
        "JobEvents",
        eventbridge_event("aws.bedrock", "Model Customization Job State Change", detail),
    )
    run.invoke("CollectResults", event)

    event["input"]["results"] = {"artifacts": {"custom_model_arn": MODEL_ARN}}
    bedrock, stubber = throughput_client()
    stubber.add_response(
        "create_provisioned_model_throughput", {"provisionedModelArn": THROUGHPUT_ARN}
    )
    with stubber:
        event["input"]["serving"] = run.invoke("ProvisionThroughput", event, bedrock=bedrock)
    stubber.add_response("get_provisioned_model_throughput", throughput("InService"))
    stubber.add_response("tag_resource", {})
    with stubber:
        run.invoke("CheckThroughput", event, bedrock=bedrock)
    run.invoke("CompleteJob", event)
    run.check(
        "RegisterJob",
        "ValidateDataset",
        "StartBedrockJob",
        "WaitForJob",
        "JobEvents",
        "CollectResults",
        "ProvisionThroughput",
        "CheckThroughput",
        "CompleteJob",
    )


def distillation_manifest(teacher: str, **distillation: Any) -> dict[str, Any]:
    spec = bedrock_manifest(
        job_name="distil-support",
        base_model="amazon.nova-lite-v1:0:300k",
        customization_type="DISTILLATION",
        training_data_uri=f"s3://{DATA_BUCKET}/training-data/processed/support/prompts.jsonl",
        distillation={"teacher_model": teacher, "max_response_length": 1000, **distillation},
    )
    spec.pop("hyperparameters")
    return spec


@pytest.mark.parametrize("teacher", ["us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"])
def test_a_distillation_jobs_teacher_calls_are_allowed(run: Run, teacher: str) -> None:
    """The job's service role invokes the teacher: on demand, or through its US profile and
    the model in each Region of the profile (checked by ``service_role_requests``), and reads
    the invocation logs it distils from."""
    logs = f"s3://{DATA_BUCKET}/training-data/raw/invocation-logs/"
    event = started(run, distillation_manifest(teacher, invocation_logs_uri=logs))
    (start,) = [c for c in run.calls.by("StartBedrockJob") if c.operation.startswith("Create")]
    config = start.params["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
    assert config["teacherModelIdentifier"] == teacher
    assert event["input"]["launch"]
    run.check("RegisterJob", "StartBedrockJob")


def test_the_recorder_sees_a_teacher_the_role_may_not_invoke(run: Run) -> None:
    """The check can fail: a teacher outside the grant (Llama 3.3 70B distils in us-west-2,
    not in this us-east-1 app) is denied on its profile and on the model in each Region."""
    from tests.support.iam_recorder import AwsCall

    event = started(run, distillation_manifest("us.amazon.nova-pro-v1:0"))
    (start,) = [c for c in run.calls.by("StartBedrockJob") if c.operation.startswith("Create")]
    params = json.loads(json.dumps(start.params))
    teacher = params["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
    teacher["teacherModelIdentifier"] = "us.meta.llama3-3-70b-instruct-v1:0"
    forged = AwsCall(start.actor, start.service, start.operation, params)
    denied = run.calls._check_service_role(run.app, forged)
    assert {d.request.resource.rsplit("/", 1)[-1] for d in denied} == {
        "us.meta.llama3-3-70b-instruct-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
    }
    assert len(denied) == 4 and event["input"]["launch"]


def test_failure_handling_calls_are_allowed(run: Run) -> None:
    event = started(run, bedrock_manifest(serving={"provisioned_throughput": {}}))
    job_id = event["input"]["job_id"]
    JobTable(run.platform.dynamodb, JOB_TABLE).annotate(
        job_id, serving={"provisioned_model_arn": THROUGHPUT_ARN}
    )
    bedrock, stubber = throughput_client()
    stubber.add_response("delete_provisioned_model_throughput", {})
    event["input"]["error"] = {"Error": "JobTimeoutError", "Cause": "ran past 72 hours"}
    with stubber:
        run.invoke("HandleFailure", event, bedrock=bedrock)

    other = started(run, sagemaker_manifest())
    set_training_job_status(other["input"]["job_id"], "InProgress", "Training")
    sagemaker, sm_stubber = stubbed("sagemaker")
    sm_stubber.add_response("stop_training_job", {})
    routed = Routed(client("sagemaker"), sagemaker, {"stop_training_job"})
    detail = {
        "name": other["input"]["job_id"],
        "status": "ABORTED",
        "executionArn": other["execution_arn"],
        "stateMachineArn": run.platform.state_machine_arn,
    }
    with sm_stubber:
        run.invoke(
            "ExecutionEnded",
            eventbridge_event("aws.states", "Step Functions Execution Status Change", detail),
            sagemaker=routed,
        )
    run.check("HandleFailure", "ExecutionEnded")


def test_failure_handler_may_hand_a_busy_deployment_to_the_expiry_cleanup(run: Run) -> None:
    """DeleteCustomModelDeployment refused (still Creating): the failure handler tags it
    expired instead, which its role must allow."""
    event = started(run, bedrock_manifest(serving={"mode": "on_demand"}))
    job_id = event["input"]["job_id"]
    JobTable(run.platform.dynamodb, JOB_TABLE).annotate(
        job_id, serving={"mode": "on_demand", "deployment_arn": DEPLOYMENT_ARN}
    )
    bedrock, stubber = stubbed("bedrock")
    stubber.add_client_error(
        "delete_custom_model_deployment",
        service_error_code="ConflictException",
        expected_params={"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
    )
    stubber.add_response("tag_resource", {}, {"resourceARN": DEPLOYMENT_ARN, "tags": ANY})
    routed = Routed(client("bedrock"), bedrock, {"delete_custom_model_deployment", "tag_resource"})
    event["input"]["error"] = {"Error": "DeploymentFailedError", "Cause": "still Creating"}
    with stubber:
        result = run.invoke("HandleFailure", event, bedrock=routed)
    stubber.assert_no_pending_responses()
    left = f"left custom model deployment {DEPLOYMENT_ARN} to the expiry cleanup"
    assert any(entry.startswith(left) for entry in result["cleanup"]), result
    run.check("HandleFailure")


# -- orchestration: the SageMaker path and its evaluation -------------------------------------


def test_sagemaker_path_calls_are_allowed(run: Run) -> None:
    test_set = f"s3://{DATA_BUCKET}/training-data/processed/chat/test.jsonl"
    spec = sagemaker_manifest(
        evaluation={
            "test_set_uri": test_set,
            "task": "text",
            "quality_gate": {"min": {"token_f1": 0.1}},
        }
    )
    event = started(run, spec)
    job_id = event["input"]["job_id"]
    set_training_job_status(job_id, "Completed")
    event["input"]["results"] = run.invoke("CollectResults", event)
    event["input"]["evaluation"] = run.invoke("PrepareEvaluation", event)
    assert event["input"]["evaluation"]["route"] == "processing"
    run.invoke("EvaluateOpenModel", event)
    run.check("StartSageMakerJob", "CollectResults", "PrepareEvaluation", "EvaluateOpenModel")


def test_manifest_submission_calls_are_allowed(run: Run) -> None:
    spec = bedrock_manifest()
    bucket = spec["training_data_uri"].split("/")[2]
    run.platform.put(f"s3://{bucket}/jobs/support.yaml", yaml.safe_dump(spec))
    # The event names the version written (the bucket is versioned); the handler reads it.
    version = client("s3").head_object(Bucket=bucket, Key="jobs/support.yaml")["VersionId"]
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": "jobs/support.yaml",
            "size": 10,
            "etag": "abc",
            "sequencer": "1",
            "version-id": version,
        },
        "request-id": "r",
        "requester": ACCOUNT,
        "reason": "PutObject",
    }
    result = run.invoke("SubmitManifest", eventbridge_event("aws.s3", "Object Created", detail))
    assert result["started"] is True
    run.check("SubmitManifest")


def test_expiry_cleanup_calls_are_allowed(run: Run) -> None:
    now = utc_now()
    sagemaker = client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
        PrimaryContainer={"Image": "img"},
    )
    variant = {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{**variant, "InstanceType": "ml.g4dn.xlarge"}]
    )
    expired = {
        tags.PLATFORM: PREFIX,
        tags.EXPIRES_AT: timestamp(now.replace(year=now.year - 1)),
        "finetuning:expiry-warned-at": timestamp(now.replace(year=now.year - 1)),
    }
    sagemaker.create_endpoint(
        EndpointName=f"{PREFIX}-old",
        EndpointConfigName="c",
        Tags=tags.as_key_value_list(expired, "Key", "Value"),
    )
    bedrock, stubber = throughput_client()
    summary = {k: v for k, v in throughput("InService").items() if k != "provisionedModelName"}
    stubber.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [{**summary, "provisionedModelName": "job-1-pt"}]},
    )
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": tags.as_key_value_list({tags.PLATFORM: PREFIX, tags.EXPIRES_AT: timestamp(now)})},
    )
    # An expired, already warned on-demand deployment: deleted.
    deployment = {
        "customModelDeploymentArn": DEPLOYMENT_ARN,
        "customModelDeploymentName": f"{PREFIX}-job-1",
        "modelArn": MODEL_ARN,
        "createdAt": now,
        "status": "Active",
    }
    stubber.add_response(
        "list_custom_model_deployments", {"modelDeploymentSummaries": [deployment]}
    )
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": tags.as_key_value_list(expired)},
        {"resourceARN": DEPLOYMENT_ARN},
    )
    stubber.add_response("tag_resource", {}, {"resourceARN": THROUGHPUT_ARN, "tags": ANY})
    stubber.add_response(
        "delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": DEPLOYMENT_ARN}
    )
    with stubber:
        report = run.invoke("CleanupExpired", {}, bedrock=bedrock)
    stubber.assert_no_pending_responses()
    assert {entry["arn"] for entry in report["delete"]} >= {DEPLOYMENT_ARN} and report["warn"]
    run.check("CleanupExpired")


# -- serving ------------------------------------------------------------------------------


def serving_handler(run: Run, construct_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    stack, function_id = run.app.function(construct_id)
    environment = run.app.function_environment(stack, function_id)
    values = {
        Var.MODEL_PACKAGE_GROUP: MODEL_PACKAGE_GROUP,
        Var.EVALUATION_BUCKET: EVALUATION_BUCKET,
        Var.PLATFORM_KEY_ARN: run.platform.environment[Var.PLATFORM_KEY_ARN],
        Var.RESOURCE_PREFIX: PREFIX,
        Var.SAGEMAKER_ROLE_ARN: run.platform.environment[Var.SAGEMAKER_ROLE_ARN],
        Var.ARTIFACTS_BUCKET: run.platform.environment[Var.ARTIFACTS_BUCKET],
        Var.ENDPOINT_SUBNET_IDS: "subnet-0a,subnet-0b",
        Var.ENDPOINT_SECURITY_GROUP_IDS: "sg-0endpoint",
        Var.SERVING_SETTINGS: json.dumps(
            {
                "approval_status": "Approved",
                "endpoint": {
                    "instance_type": "ml.g4dn.xlarge",
                    "expire_after_hours": 24,
                    # The serving stack's inference image asset (containers/inference).
                    "huggingface_image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/"
                    "cdk-hnb659fds-container-assets:inference",
                },
                "bedrock": {"mode": "provisioned", "expire_after_hours": 24},
            }
        ),
    }
    for name in environment:
        if name in values:
            monkeypatch.setenv(name, values[name])
            run.platform.environment[name] = values[name]
    folder = {
        "EvaluateModel": "evaluate_candidate",
        "RegisterModel": "register_model",
        "DeployEndpoint": "deploy_endpoint",
    }[construct_id]
    return load_handler(folder)


def test_serving_calls_are_allowed(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = run.platform.s3
    # Evaluate: the tuned model through its throughput, the base model through a US
    # cross-Region inference profile.
    evaluate = serving_handler(run, "EvaluateModel", monkeypatch)
    records = [
        {"messages": [{"role": "user", "content": f"Doc {i}"}, {"role": "assistant", "content": a}]}
        for i, a in enumerate(["invoice", "letter"])
    ]
    test_set = "training-data/processed/deeds/test.jsonl"
    s3.put_object(Bucket=DATA_BUCKET, Key=test_set, Body="\n".join(map(json.dumps, records)))
    runtime = boto3.client("bedrock-runtime", region_name=REGION)
    real_client = boto3.client
    monkeypatch.setattr(
        evaluate.boto3,
        "client",
        lambda name, **kw: runtime if name == "bedrock-runtime" else real_client(name, **kw),
    )
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "invoice"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6},
        "metrics": {"latencyMs": 100},
    }
    with Stubber(runtime) as stub:
        for _ in range(4):
            stub.add_response("converse", answer)
        run.as_function(
            "EvaluateModel",
            evaluate.handler,
            {
                "job_name": "deeds-7",
                "model_id": THROUGHPUT_ARN,
                "base_model_id": "us.amazon.nova-lite-v1:0",
                "test_set_uri": f"s3://{DATA_BUCKET}/{test_set}",
                "concurrency": 1,
            },
        )

    # Register: a model whose report passed its gate.
    register = serving_handler(run, "RegisterModel", monkeypatch)
    s3.put_object(
        Bucket=EVALUATION_BUCKET,
        Key="evaluation/reports/good-1/results.json",
        Body=json.dumps(results_document(GOOD, WEAK, GATE)),
    )
    registered_model = run.as_function(
        "RegisterModel",
        register.handler,
        {
            "model_name": "deeds",
            "job_name": "good-1",
            "backend": "sagemaker",
            "evaluation_results_uri": (
                f"s3://{EVALUATION_BUCKET}/evaluation/reports/good-1/results.json"
            ),
            "model_data_url": f"s3://{DATA_BUCKET}/models/final/good-1/model.tar.gz",
        },
    )

    # Deploy: the approved version on an endpoint, then autoscaling once it is in service.
    deploy = serving_handler(run, "DeployEndpoint", monkeypatch)
    package = registered_model["model_package_arn"]
    approval = eventbridge_event(
        "aws.sagemaker",
        "SageMaker Model Package State Change",
        {
            "ModelPackageGroupName": MODEL_PACKAGE_GROUP,
            "ModelPackageArn": package,
            "ModelApprovalStatus": "Approved",
        },
    )
    created = run.as_function("DeployEndpoint", deploy.handler, approval)
    in_service = eventbridge_event(
        "aws.sagemaker",
        "SageMaker Endpoint State Change",
        {"EndpointName": created["target"], "EndpointStatus": "IN_SERVICE"},
    )
    run.as_function("DeployEndpoint", deploy.handler, in_service)
    run.check("EvaluateModel", "RegisterModel", "DeployEndpoint")


def test_bedrock_serving_on_approval_calls_are_allowed(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = serving_handler(run, "DeployEndpoint", monkeypatch)
    sagemaker = client("sagemaker")
    package = sagemaker.create_model_package(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={
            "model-name": "support",
            "backend": "bedrock",
            "bedrock-custom-model-arn": MODEL_ARN,
        },
    )["ModelPackageArn"]
    bedrock = boto3.client("bedrock", region_name=REGION)
    real_client = boto3.client
    monkeypatch.setattr(
        deploy.boto3,
        "client",
        lambda name, **kw: bedrock if name == "bedrock" else real_client(name, **kw),
    )
    approval = eventbridge_event(
        "aws.sagemaker",
        "SageMaker Model Package State Change",
        {
            "ModelPackageGroupName": MODEL_PACKAGE_GROUP,
            "ModelPackageArn": package,
            "ModelApprovalStatus": "Approved",
        },
    )
    with Stubber(bedrock) as stub:
        stub.add_response(
            "create_provisioned_model_throughput", {"provisionedModelArn": THROUGHPUT_ARN}
        )
        result = run.as_function("DeployEndpoint", deploy.handler, approval)
    assert result["action"] == "provisioned"
    run.check("DeployEndpoint")


def test_the_recorder_sees_a_denied_call(run: Run) -> None:
    """The check can fail: a call the role has no statement for is reported."""
    stack, function_id = run.app.function("CompleteJob")
    run.functions["CompleteJob"] = (stack, function_id)
    with run.calls.acting_as("CompleteJob"):
        client("s3").list_buckets()
    (denied,) = run.calls.check(run.app, run.functions)
    assert denied.request.action == "s3:ListAllMyBuckets"
    assert "no statement allows" in denied.reason

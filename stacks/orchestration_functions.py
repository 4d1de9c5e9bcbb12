"""One Lambda function the platform's way: every function of the platform (orchestration
and serving) is a :class:`PlatformFunction`.

Python 3.14 on ARM64 with the AWS-managed Powertools layer (or Powertools pinned in the
function folder's ``requirements.txt``, for functions that bundle compiled wheels); X-Ray
tracing; a dead-letter queue for asynchronous invocations; its own log group (platform
retention, the given key); and its own role whose only permissions are one customer managed
policy that the stack fills statement by statement. The role given to the Lambda construct
is immutable, so CDK cannot slip in an inline default policy: permissions CDK would grant itself
(X-Ray, the dead-letter queue) are written here explicitly instead, and grants made by
other constructs are adopted into the managed policy with :meth:`PlatformFunction.adopt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import suppress, suppress_wildcards
from stacks.constructs.logical_ids import keep_flat_logical_ids
from stacks.lambda_bundling import function_code
from stacks.log_groups import encrypted_log_group

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# AWS-managed Powertools for AWS Lambda (Python) v3 layer (017000801446 is the account
# that publishes it), ARN format from https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer
POWERTOOLS_LAYER = (
    "arn:{partition}:lambda:{region}:017000801446:layer:"
    "AWSLambdaPowertoolsPythonV3-python314-arm64:{version}"
)
POWERTOOLS_NAMESPACE = "FineTuningPlatform"
# Every function ships the orchestration package, the platform's discovery contract and the
# evaluation package (pure Python at import: the manifest validates its quality gate, the
# evaluation job and the failure handlers use its request model and channel names).
BASE_LIBRARY = ("platform.py", "settings.py", "aws_jobs", "orchestration", "evaluation")


def depend_only_on_policy(resource: Construct, policy: iam.ManagedPolicy) -> None:
    """Create ``resource`` after its role's managed policy, so it never runs without its
    permissions. CDK also adds a DependsOn on the role, which the role's GetAtt already
    implies (cfn-lint W3005); the override keeps only the policy."""
    cfn = resource.node.default_child
    # The logical id as a token, so that an override (stacks/constructs/logical_ids.py)
    # made after this call still counts.
    cfn.add_override("DependsOn", [policy.node.default_child.logical_id])


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    stack = Stack.of(scope)
    arn = POWERTOOLS_LAYER.format(partition=stack.partition, region=stack.region, version=version)
    return lambda_.LayerVersion.from_layer_version_arn(scope, "PowertoolsLayer", arn)


class PlatformFunction(Construct):
    """A Lambda function with its log group, role and managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        folder: str,
        description: str,
        key: kms.IKey,
        dead_letter_queue: sqs.IQueue,
        layer: lambda_.ILayerVersion | None,
        log_retention_days: int,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout: Duration,
        reserved_concurrency: int | None,
        extra_library: Sequence[str] = (),
        extra_files: Sequence[str] = (),
        pure_packages: Sequence[str] = (),
        vpc_reason: str | None = None,
        concurrency_reason: str | None = None,
        family: str = "orchestration",
        library_paths: Sequence[str] | None = None,
        function_name: str | None = None,
        key_only_for_dead_letters: bool = False,
        keep_logical_ids: Mapping[str, str] | None = None,
    ) -> None:
        """``vpc_reason`` / ``concurrency_reason``: this function's own reasons for the
        LambdaInsideVPC / LambdaConcurrency suppressions, where the workflow functions'
        reasons below do not describe it (the RFT grader).

        ``layer``: the Powertools layer, or None where the folder's ``requirements.txt``
        bundles Powertools itself. ``family``: the stack's family of functions, for
        descriptions. ``library_paths``: the ``finetuning/`` paths to ship instead of
        :data:`BASE_LIBRARY`. ``function_name``: a physical name (the log group is then
        ``/aws/lambda/<name>``). ``key_only_for_dead_letters``: the role may use ``key``
        only through SQS (the dead-letter queue), where the function's own key use is granted
        separately. ``keep_logical_ids``: child id (``Function``, ``LogGroup``, ``Role``) to
        the logical id the resource had before it moved into this construct, so that named
        resources are not replaced (``stacks/constructs/logical_ids.py``)."""
        super().__init__(scope, construct_id)
        self.log_group = encrypted_log_group(
            self,
            "LogGroup",
            key=key,
            retention_days=log_retention_days,
            log_group_name=f"/aws/lambda/{function_name}" if function_name else None,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {folder} {family} function",
        )
        key_statement = iam.PolicyStatement(
            sid="UseOrchestrationKey",
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=[key.key_arn],
        )
        if key_only_for_dead_letters:
            # Lambda's dead-letter grant is sqs:SendMessage alone; the queue is SSE-KMS, and
            # SQS uses the key with the sender's credentials, see
            # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
            key_statement = iam.PolicyStatement(
                sid="EncryptDeadLetters",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"sqs.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            description=f"Least privilege of the {folder} {family} function",
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteTraces",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="SendToDeadLetterQueue",
                    actions=["sqs:SendMessage"],
                    resources=[dead_letter_queue.queue_arn],
                ),
                key_statement,
            ],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="index.handler",
            code=function_code(
                folder,
                library_paths=(
                    *(BASE_LIBRARY if library_paths is None else library_paths),
                    *extra_library,
                ),
                pure_packages=pure_packages,
                extra_files=extra_files,
            ),
            role=self.role.without_policy_updates(),
            layers=[layer] if layer is not None else None,
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letter_queue,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                "POWERTOOLS_SERVICE_NAME": f"{family}-{folder.replace('_', '-')}",
                "POWERTOOLS_METRICS_NAMESPACE": POWERTOOLS_NAMESPACE,
                **environment,
            },
        )
        # Before the two calls below resolve the policy's and log group's logical ids.
        keep_flat_logical_ids(self)
        # Explicit ids (the serving functions' own) win over the flat ones.
        for child, logical_id in (keep_logical_ids or {}).items():
            self.node.find_child(child).node.default_child.override_logical_id(logical_id)
        depend_only_on_policy(self.function, self.policy)
        suppress_wildcards(
            self.policy,
            "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
            "permissions; the log-stream wildcard stays inside this function's own log group.",
            resources=["*", self.log_group.log_group_arn],
        )
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                self.function,
                f"{pack}-LambdaInsideVPC",
                vpc_reason
                or "The function calls only AWS APIs (DynamoDB, S3, Step Functions, Bedrock, "
                "SageMaker, SNS) over TLS with IAM authentication and holds no data of its own; "
                "the platform VPC has no NAT and lacks endpoints for several of those APIs.",
            )
            if reserved_concurrency is None:
                suppress(
                    self.function,
                    f"{pack}-LambdaConcurrency",
                    concurrency_reason
                    or "Runs a few times per fine-tuning job; reserving concurrency would fail "
                    "deployment in accounts below the unreserved minimum. Set "
                    "orchestration.reserved_concurrency to reserve it.",
                )

    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> iam.PolicyStatement:
        statement = iam.PolicyStatement(
            sid=sid, actions=list(actions), resources=list(resources), conditions=conditions
        )
        self.policy.add_statements(statement)
        return statement

    def adopt(self, grant: iam.Grant) -> None:
        """Move a grant made to :attr:`grantee` into this function's managed policy."""
        statements = list(grant.principal_statements)
        if not statements:
            raise ValueError("the grant carries no principal statement to adopt")
        self.policy.add_statements(*statements)

    @property
    def grantee(self) -> iam.IGrantable:
        """An immutable view of the role: grants to it are recorded, not applied, so that
        :meth:`adopt` can place them in the managed policy."""
        return self.role.without_policy_updates()

    @property
    def arn(self) -> str:
        return self.function.function_arn

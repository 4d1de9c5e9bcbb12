"""One Lambda function the platform's way: every function of the app (orchestration,
serving, the RFT grader and the operations gauges) is a :class:`PlatformFunction`.

Python 3.14 on ARM64, handler ``index.handler`` of ``lambda/<folder>/`` bundled by
:func:`~stacks.lambda_bundling.function_code`; X-Ray tracing; JSON logs in its own log
group (platform retention, encrypted with the given key); a dead-letter queue for
asynchronous invocations; and its own role whose only permissions are one customer managed
policy that the owner fills statement by statement (:meth:`PlatformFunction.allow` returns
an ``iam.Grant`` whose one statement carries the given id; :meth:`PlatformFunction.adopt`
takes a grant made to :attr:`PlatformFunction.grantee`). The role given to the Lambda
construct is immutable, so CDK cannot slip in an inline default policy: permissions CDK
would grant itself (X-Ray, the dead-letter queue) are written here explicitly instead.

The environment contract: the variables a function's code reads are named once, in
``finetuning/orchestration/environment.py`` (``Var``), and passed in
:attr:`PlatformFunctionProps.environment`; this construct adds only the Powertools variables
(:data:`POWERTOOLS_SERVICE_NAME`, :data:`POWERTOOLS_METRICS_NAMESPACE`) of functions that use
Powertools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
HANDLER = "index.handler"
# AWS-managed Powertools for AWS Lambda (Python) v3 layer (017000801446 is the account
# that publishes it), ARN format from https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer
POWERTOOLS_LAYER = (
    "arn:{partition}:lambda:{region}:017000801446:layer:"
    "AWSLambdaPowertoolsPythonV3-python314-arm64:{version}"
)
# The variables Powertools reads for the service name and the metrics namespace, see
# https://docs.powertools.aws.dev/lambda/python/latest/#environment-variables
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_NAMESPACE = "FineTuningPlatform"
# Every orchestration function ships the orchestration package, the platform's discovery
# contract and the evaluation package (pure Python at import: the manifest validates its
# quality gate, the evaluation job and the failure handlers use its request model and
# channel names).
BASE_LIBRARY = ("platform.py", "settings.py", "aws_jobs", "orchestration", "evaluation")
# The function's own children, by construct id (keys of ``keep_logical_ids``).
FUNCTION_CHILDREN = ("Function", "LogGroup", "Role", "Policy")

_DEFAULT_VPC_REASON = (
    "The function calls only AWS APIs (DynamoDB, S3, Step Functions, Bedrock, "
    "SageMaker, SNS) over TLS with IAM authentication and holds no data of its own; "
    "the platform VPC has no NAT and lacks endpoints for several of those APIs."
)
_DEFAULT_CONCURRENCY_REASON = (
    "Runs a few times per fine-tuning job; reserving concurrency would fail "
    "deployment in accounts below the unreserved minimum. Set "
    "orchestration.reserved_concurrency to reserve it."
)
_TRACES_REASON = (
    "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
    "permissions; the log-stream wildcard stays inside this function's own log group."
)


@dataclass(frozen=True)
class PlatformFunctionProps:
    """What one function is built from (defaults in brackets).

    - ``folder``: the code, ``lambda/<folder>/index.py`` with ``handler``.
    - ``description``: the function's description.
    - ``key``: encrypts the log group; the role may use it (see
      ``key_only_for_dead_letters``).
    - ``dead_letter_queue``: receives asynchronous invocations that failed.
    - ``log_retention_days``: the platform's log retention (a value CloudWatch Logs offers).
    - ``memory_mb`` / ``timeout``: the function's size and time limit.
    - ``environment`` [none]: the variables the code reads (``Var`` names).
    - ``reserved_concurrency`` [None: the unreserved pool].
    - ``family`` ["orchestration"]: the stack's family of functions, for the role's and
      policy's descriptions and the default service name.
    - ``powertools`` [True]: the code uses Powertools for AWS Lambda, so the construct sets
      its service name and metrics namespace; False for code on boto3 alone (no layer then).
    - ``layer`` [None]: the Powertools layer; None where the folder's ``requirements.txt``
      bundles Powertools itself, or the code does not use it.
    - ``service_name`` [``<family>-<folder with dashes>``] / ``metrics_namespace``
      [:data:`POWERTOOLS_NAMESPACE`]: the Powertools service name and metrics namespace.
    - ``library_paths`` [:data:`BASE_LIBRARY`]: the ``finetuning/`` paths the bundle ships
      (``()`` for none); ``extra_library``, ``extra_files``, ``pure_packages`` [none]: more
      library paths, repository files and pure-Python packages for the bundle.
    - ``function_name`` [generated]: a physical name.
    - ``name_log_group`` [True]: with ``function_name``, name the log group
      ``/aws/lambda/<function_name>``; False keeps a generated name (a log group created
      before under another name, which cannot be renamed in place).
    - ``key_only_for_dead_letters`` [False]: the role may use ``key`` only through SQS (the
      dead-letter queue), where the function's own key use is granted separately or there
      is none.
    - ``vpc_reason`` / ``concurrency_reason`` [the workflow functions' reasons]: this
      function's own reasons for the LambdaInsideVPC / LambdaConcurrency acknowledgements.
    - ``wildcard_reason`` [None]: why statements the owner adds with resource ``*`` need
      it; put before the X-Ray reason in the one acknowledgement of that wildcard.
    - ``keep_logical_ids`` [none]: child id (one of :data:`FUNCTION_CHILDREN`) to the
      logical id the resource had before it moved into this construct, so that named
      resources are not replaced (``stacks/constructs/logical_ids.py``).
    """

    folder: str
    description: str
    key: kms.IKey
    dead_letter_queue: sqs.IQueue
    log_retention_days: int
    memory_mb: int
    timeout: Duration
    environment: Mapping[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    family: str = "orchestration"
    powertools: bool = True
    layer: lambda_.ILayerVersion | None = None
    service_name: str | None = None
    metrics_namespace: str = POWERTOOLS_NAMESPACE
    library_paths: Sequence[str] = BASE_LIBRARY
    extra_library: Sequence[str] = ()
    extra_files: Sequence[str] = ()
    pure_packages: Sequence[str] = ()
    function_name: str | None = None
    name_log_group: bool = True
    key_only_for_dead_letters: bool = False
    vpc_reason: str | None = None
    concurrency_reason: str | None = None
    wildcard_reason: str | None = None
    keep_logical_ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layer is not None and not self.powertools:
            raise ValueError(
                f"PlatformFunctionProps of {self.folder!r}: a Powertools layer was given, but "
                "powertools=False says the code does not use Powertools"
            )
        unknown = sorted(set(self.keep_logical_ids) - set(FUNCTION_CHILDREN))
        if unknown:
            raise ValueError(
                f"PlatformFunctionProps.keep_logical_ids of {self.folder!r}: expected children "
                f"among {', '.join(FUNCTION_CHILDREN)}, found {', '.join(unknown)}"
            )

    def function_environment(self) -> dict[str, str]:
        """The function's variables: the Powertools ones (where it uses Powertools) and
        :attr:`environment`, which wins."""
        own: dict[str, str] = {}
        if self.powertools:
            own[POWERTOOLS_SERVICE_NAME] = (
                self.service_name or f"{self.family}-{self.folder.replace('_', '-')}"
            )
            own[POWERTOOLS_METRICS_NAMESPACE] = self.metrics_namespace
        return {**own, **self.environment}


def depend_only_on_policy(resource: Construct, policy: iam.ManagedPolicy) -> None:
    """Create ``resource`` after its role's managed policy, so it never runs without its
    permissions. CDK also adds a DependsOn on the role, which the role's GetAtt already
    implies (cfn-lint W3005); the override keeps only the policy."""
    cfn = resource.node.default_child
    # The logical id as a token, so that an override (stacks/constructs/logical_ids.py)
    # made after this call still counts.
    cfn.add_override("DependsOn", [policy.node.default_child.logical_id])


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    """The AWS-managed Powertools layer of ``version`` in the stack's partition and Region."""
    stack = Stack.of(scope)
    arn = POWERTOOLS_LAYER.format(partition=stack.partition, region=stack.region, version=version)
    return lambda_.LayerVersion.from_layer_version_arn(scope, "PowertoolsLayer", arn)


class PlatformFunction(Construct):
    """A Lambda function with its log group, role and managed policy
    (:attr:`function`, :attr:`log_group`, :attr:`role`, :attr:`policy`)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PlatformFunctionProps):
        super().__init__(scope, construct_id)
        self.props = props
        named_log_group = props.function_name and props.name_log_group
        self.log_group = encrypted_log_group(
            self,
            "LogGroup",
            key=props.key,
            retention_days=props.log_retention_days,
            log_group_name=f"/aws/lambda/{props.function_name}" if named_log_group else None,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {props.folder} {props.family} function",
        )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            description=f"Least privilege of the {props.folder} {props.family} function",
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    # A log group's Arn attribute ends in ":*", which covers its streams, see
                    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-logs-loggroup.html
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
                    resources=[props.dead_letter_queue.queue_arn],
                ),
                self._key_statement(),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=props.function_name,
            description=props.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=function_code(
                props.folder,
                library_paths=(*props.library_paths, *props.extra_library),
                pure_packages=props.pure_packages,
                extra_files=props.extra_files,
            ),
            role=self.role.without_policy_updates(),
            layers=[props.layer] if props.layer is not None else None,
            memory_size=props.memory_mb,
            timeout=props.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=props.dead_letter_queue,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            reserved_concurrent_executions=props.reserved_concurrency,
            environment=props.function_environment(),
        )
        # Before the two calls below resolve the policy's and log group's logical ids.
        keep_flat_logical_ids(self)
        # Explicit ids (the serving and gauge functions' own) win over the flat ones.
        for child, logical_id in props.keep_logical_ids.items():
            self.node.find_child(child).node.default_child.override_logical_id(logical_id)
        depend_only_on_policy(self.function, self.policy)
        reason = _TRACES_REASON
        if props.wildcard_reason:
            reason = f"{props.wildcard_reason} {reason}"
        suppress_wildcards(self.policy, reason, resources=["*", self.log_group.log_group_arn])
        self._acknowledge_function_findings()

    def _key_statement(self) -> iam.PolicyStatement:
        props = self.props
        if not props.key_only_for_dead_letters:
            return iam.PolicyStatement(
                sid="UseOrchestrationKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[props.key.key_arn],
            )
        # Lambda's dead-letter grant is sqs:SendMessage alone; the queue is SSE-KMS, and
        # SQS uses the key with the sender's credentials, see
        # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
        return iam.PolicyStatement(
            sid="EncryptDeadLetters",
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[props.key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"sqs.{Stack.of(self).region}.amazonaws.com"}
            },
        )

    def _acknowledge_function_findings(self) -> None:
        props = self.props
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):
            suppress(
                self.function,
                f"{pack}-LambdaInsideVPC",
                props.vpc_reason or _DEFAULT_VPC_REASON,
            )
            if props.reserved_concurrency is None:
                suppress(
                    self.function,
                    f"{pack}-LambdaConcurrency",
                    props.concurrency_reason or _DEFAULT_CONCURRENCY_REASON,
                )

    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> iam.Grant:
        """Grant ``actions`` on ``resources`` to this function as one statement named
        ``sid`` in its managed policy (the ids docs/orchestration.md and the IAM contract
        tests review), and return the grant."""
        grant = iam.Grant.add_to_principal(
            grantee=self.grantee,
            actions=list(actions),
            resource_arns=list(resources),
            conditions=conditions,
        )
        self.adopt(grant, sid=sid)
        return grant

    def adopt(self, grant: iam.Grant, *, sid: str | None = None) -> None:
        """Move a grant made to :attr:`grantee` into this function's managed policy;
        ``sid`` names its statement (a grant of one statement only)."""
        statements = list(grant.principal_statements)
        if not statements:
            raise ValueError("the grant carries no principal statement to adopt")
        if sid is not None:
            if len(statements) != 1:
                raise ValueError(
                    f"statement id {sid!r} names one statement; the grant carries {len(statements)}"
                )
            statements[0].sid = sid
        self.policy.add_statements(*statements)

    @property
    def grantee(self) -> iam.IGrantable:
        """An immutable view of the role: grants to it are recorded, not applied, so that
        :meth:`adopt` can place them in the managed policy."""
        return self.role.without_policy_updates()

    @property
    def arn(self) -> str:
        return self.function.function_arn

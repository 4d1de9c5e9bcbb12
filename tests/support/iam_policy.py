"""IAM as AWS evaluates it, over the synthesized templates: a small policy evaluator.

What it does, after the IAM policy evaluation logic
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

- resolves the CloudFormation intrinsics of every stack (``Ref``, ``Fn::GetAtt``,
  ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``, ``Fn::ImportValue`` across
  stacks) to concrete strings for one account and region, with physical names bound to the
  names a simulation used (:meth:`Templates.bind`);
- collects a role's identity policies (inline ``AWS::IAM::Policy``, customer managed
  policies attached by either side, inline ``Policies``) and a resource's policy (KMS key
  policies, S3 bucket policies);
- evaluates a request (action, resource ARN, condition context): an explicit Deny wins,
  then an Allow is needed; ``Action``/``NotAction`` with case-insensitive wildcards,
  ``Resource``/``NotResource`` with ``*``/``?`` wildcards, and the condition operators the
  platform uses (String*, Arn*, Bool, Null, Numeric*, ``...IfExists``,
  ``ForAllValues:``/``ForAnyValue:``).

Condition keys: a key present in the request context decides its condition (``None`` means
"known to be absent"); so does any key under a prefix listed in ``Request.decided``. A key
the context does not decide (for example ``aws:ResourceTag/...`` of a resource the
simulation did not create with tags) is assumed to match and listed in
``Decision.assumed``, so a reader sees what only a real account can show.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


class UnresolvedError(ValueError):
    """An intrinsic the resolver does not know; the message names the stack and expression."""


# -- templates and intrinsics ----------------------------------------------------------------


def _arn(service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
    return (
        f"arn:{PARTITION}:{service}:{REGION if region else ''}:"
        f"{ACCOUNT if account else ''}:{resource}"
    )


class Templates:
    """Every stack of one synthesized app, with intrinsics resolved on demand."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        self.templates = dict(templates)
        self._bindings: dict[tuple[str, str, str], str] = {}
        self._exports: dict[str, tuple[str, Any]] = {}
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self._exports[name] = (stack, output["Value"])

    # -- lookups ---------------------------------------------------------------------------

    def resources(self, cfn_type: str | None = None) -> Iterator[tuple[str, str, dict]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if cfn_type is None or resource.get("Type") == cfn_type:
                    yield stack, logical_id, resource

    def resource(self, stack: str, logical_id: str) -> dict:
        try:
            return self.templates[stack]["Resources"][logical_id]
        except KeyError:
            raise UnresolvedError(f"{stack}: no resource {logical_id}") from None

    def logical_id(self, cfn_type: str, construct_path: str) -> tuple[str, str]:
        """(stack, logical id) of the one resource of this type whose construct path (its
        ids joined, as CDK names logical ids: ``DeployEndpoint``, ``RegisterJobFunction``)
        is ``construct_path``."""
        pattern = re.compile(rf"^{re.escape(construct_path)}[0-9A-F]{{8}}$")
        found = [(s, lid) for s, lid, _ in self.resources(cfn_type) if pattern.match(lid)]
        if len(found) != 1:
            raise UnresolvedError(f"expected one {cfn_type} named {construct_path}, got {found}")
        return found[0]

    def function(self, construct_id: str) -> tuple[str, str]:
        """A platform function by its construct id: ``RegisterJob`` (orchestration, whose
        functions are ``<id>/Function``) or ``DeployEndpoint`` (serving, whose functions keep
        the logical ids they had before they moved into ``PlatformFunction``)."""
        for path in (f"{construct_id}Function", construct_id):
            try:
                return self.logical_id("AWS::Lambda::Function", path)
            except UnresolvedError:
                continue
        raise UnresolvedError(f"no Lambda function with construct id {construct_id}")

    def bind(self, stack: str, logical_id: str, attribute: str, value: str) -> None:
        """Give a resource's ``Ref`` (attribute "Ref") or ``GetAtt`` the value a simulation
        used, e.g. the job table's name or the topic ARN moto returned."""
        self._bindings[(stack, logical_id, attribute)] = value

    # -- resolution ------------------------------------------------------------------------

    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(stack, item) for key, item in value.items()}
        ((name, argument),) = value.items()
        if name == "Ref":
            return self._ref(stack, argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else argument.split(".", 1)
            )
            return self._get_att(stack, logical_id, attribute)
        if name == "Fn::Join":
            separator, parts = argument
            resolved = self.resolve(stack, parts)
            return separator.join(str(p) for p in resolved if p is not None)
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(stack, items)[int(self.resolve(stack, index))]
        if name == "Fn::Split":
            separator, text = argument
            return str(self.resolve(stack, text)).split(separator)
        if name == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return self._sub(stack, text, variables)
        if name == "Fn::ImportValue":
            export = self.resolve(stack, argument)
            if export not in self._exports:
                raise UnresolvedError(f"{stack}: no stack exports {export!r}")
            source, expression = self._exports[export]
            return self.resolve(source, expression)
        if name.startswith("Fn::"):
            raise UnresolvedError(f"{stack}: intrinsic {name} is not supported: {value}")
        return {name: self.resolve(stack, argument)}

    def _sub(self, stack: str, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match[1]
            if name in variables:
                return str(self.resolve(stack, variables[name]))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(stack, logical_id, attribute))
            return str(self._ref(stack, name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _ref(self, stack: str, logical_id: str) -> Any:
        if logical_id in PSEUDO:
            return PSEUDO[logical_id]
        if logical_id == "AWS::StackName":
            return stack
        bound = self._bindings.get((stack, logical_id, "Ref"))
        if bound is not None:
            return bound
        template = self.templates[stack]
        if logical_id in template.get("Parameters", {}):
            parameter = template["Parameters"][logical_id]
            return parameter.get("Default", f"parameter-{logical_id}")
        resource = self.resource(stack, logical_id)
        kind, props = resource["Type"], resource.get("Properties", {})
        name = self._physical_name(stack, logical_id, kind, props)
        return {
            "AWS::SNS::Topic": _arn("sns", name),
            "AWS::StepFunctions::StateMachine": _arn("states", f"stateMachine:{name}"),
            "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            "AWS::IAM::ManagedPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}",
        }.get(kind, name)

    def _physical_name(self, stack: str, logical_id: str, kind: str, props: dict) -> str:
        bound = self._bindings.get((stack, logical_id, "Ref"))
        if bound is not None:
            # Topics and state machines are referenced by ARN: their name ends it.
            return bound.rsplit(":", 1)[-1] if bound.startswith("arn:") else bound
        name_property = {
            "AWS::IAM::Role": "RoleName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::DynamoDB::GlobalTable": "TableName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
            "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
            "AWS::ECR::Repository": "RepositoryName",
        }.get(kind)
        if name_property and name_property in props:
            return str(self.resolve(stack, props[name_property]))
        prefix = {
            "AWS::KMS::Key": "key-",
            "AWS::EC2::Subnet": "subnet-",
            "AWS::EC2::SecurityGroup": "sg-",
            "AWS::EC2::VPC": "vpc-",
        }.get(kind, "")
        return f"{prefix}{logical_id.lower() if prefix else logical_id}"

    def _get_att(self, stack: str, logical_id: str, attribute: str) -> Any:
        bound = self._bindings.get((stack, logical_id, attribute))
        if bound is not None:
            return bound
        resource = self.resource(stack, logical_id)
        kind, props = resource["Type"], resource.get("Properties", {})
        name = self._physical_name(stack, logical_id, kind, props)
        if attribute == "Arn":
            return {
                "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
                "AWS::KMS::Key": _arn("kms", f"key/{name}"),
                "AWS::SQS::Queue": _arn("sqs", name),
                "AWS::SNS::Topic": _arn("sns", name),
                "AWS::DynamoDB::Table": _arn("dynamodb", f"table/{name}"),
                "AWS::DynamoDB::GlobalTable": _arn("dynamodb", f"table/{name}"),
                "AWS::Logs::LogGroup": _arn("logs", f"log-group:{name}:*"),
                "AWS::Lambda::Function": _arn("lambda", f"function:{name}"),
                "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
                "AWS::StepFunctions::StateMachine": _arn("states", f"stateMachine:{name}"),
                "AWS::ECR::Repository": _arn("ecr", f"repository/{name}"),
                "AWS::Events::Rule": _arn("events", f"rule/{name}"),
                "AWS::SageMaker::ModelPackageGroup": _arn(
                    "sagemaker", f"model-package-group/{name}"
                ),
            }.get(kind, _arn("unknown", f"{kind}/{name}"))
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if kind == "AWS::SQS::Queue" and attribute == "QueueUrl":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return name
        if attribute in ("Name", "TableName", "ModelPackageGroupName", "RoleId"):
            return name
        return f"{name}.{attribute}"

    # -- roles, functions, policies ---------------------------------------------------------

    def role_of_function(self, stack: str, function_logical_id: str) -> tuple[str, str]:
        """(stack, logical id) of the role a function runs as."""
        role = self.resource(stack, function_logical_id)["Properties"]["Role"]
        if isinstance(role, dict) and "Fn::GetAtt" in role:
            return stack, role["Fn::GetAtt"][0]
        arn = self.resolve(stack, role)
        for other, logical_id, _ in self.resources("AWS::IAM::Role"):
            if self._get_att(other, logical_id, "Arn") == arn:
                return other, logical_id
        raise UnresolvedError(f"{stack}/{function_logical_id}: role {arn} is in no template")

    def role_arn(self, stack: str, role_id: str) -> str:
        return self._get_att(stack, role_id, "Arn")

    def _names_role(self, stack: str, roles: list[Any], role_stack: str, role_id: str) -> bool:
        wanted = self._ref(role_stack, role_id)
        for role in roles:
            if isinstance(role, dict) and role.get("Ref") == role_id and stack == role_stack:
                return True
            if self.resolve(stack, role) == wanted:
                return True
        return False

    def role_statements(self, role_stack: str, role_id: str) -> list[dict[str, Any]]:
        """Every identity-policy statement of a role, resolved."""
        statements: list[dict[str, Any]] = []
        role = self.resource(role_stack, role_id)
        props = role.get("Properties", {})
        for policy in props.get("Policies", []):
            statements += _statements(self.resolve(role_stack, policy["PolicyDocument"]))
        attached = {
            str(self.resolve(role_stack, arn)) for arn in props.get("ManagedPolicyArns", [])
        }
        for stack, logical_id, resource in self.resources():
            kind = resource["Type"]
            if kind not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            rprops = resource.get("Properties", {})
            by_policy = self._names_role(stack, rprops.get("Roles", []), role_stack, role_id)
            by_role = kind == "AWS::IAM::ManagedPolicy" and self._ref(stack, logical_id) in attached
            if by_policy or by_role:
                statements += _statements(self.resolve(stack, rprops["PolicyDocument"]))
        return statements

    def bind_environment(self, stack: str, function_id: str, values: Mapping[str, str]) -> None:
        """Bind the resources a function's environment names to the values a simulation ran
        the function with (same variable names), so that the ARNs its calls carry and the
        ARNs its policies name are the same resources."""
        for name, expression in self.function_environment(stack, function_id).items():
            if name in values:
                self._unify(stack, expression, str(values[name]))

    def _unify(self, stack: str, expression: Any, value: str) -> None:
        if not isinstance(expression, dict) or len(expression) != 1:
            return
        ((name, argument),) = expression.items()
        if name == "Ref" and argument not in PSEUDO and argument != "AWS::StackName":
            if argument in self.templates[stack].get("Resources", {}):
                self.bind(stack, argument, "Ref", value)
        elif name == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else argument.split(".", 1)
            )
            self.bind(stack, logical_id, attribute, value)
        elif name == "Fn::ImportValue":
            export = self.resolve(stack, argument)
            if export in self._exports:
                self._unify(*self._exports[export], value)
        elif name == "Fn::Join":
            separator, parts = argument
            if separator and len(value.split(separator)) == len(parts):
                for part, piece in zip(parts, value.split(separator), strict=True):
                    self._unify(stack, part, piece)
            elif not separator:
                # "a,b" from [Import(a), ",", Import(b)]: literals anchor the references.
                references = [p for p in parts if _refers_to_resource(p)]
                pattern = "".join(
                    "(.+?)" if _refers_to_resource(p) else re.escape(str(self.resolve(stack, p)))
                    for p in parts
                )
                match = re.fullmatch(pattern, value)
                if match:
                    for part, piece in zip(references, match.groups(), strict=True):
                        self._unify(stack, part, piece)

    def key_policy(self, key_arn: str) -> list[dict[str, Any]] | None:
        for stack, logical_id, resource in self.resources("AWS::KMS::Key"):
            if self._get_att(stack, logical_id, "Arn") == key_arn:
                return _statements(self.resolve(stack, resource["Properties"]["KeyPolicy"]))
        return None

    def bucket_policy(self, bucket: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for stack, _, resource in self.resources("AWS::S3::BucketPolicy"):
            props = resource["Properties"]
            if self.resolve(stack, props["Bucket"]) == bucket:
                found += _statements(self.resolve(stack, props["PolicyDocument"]))
        return found

    def bucket_key(self, bucket: str) -> str | None:
        """The KMS key ARN a bucket's default encryption uses (None: not SSE-KMS)."""
        for stack, logical_id, resource in self.resources("AWS::S3::Bucket"):
            props = resource.get("Properties", {})
            if self._physical_name(stack, logical_id, "AWS::S3::Bucket", props) != bucket:
                continue
            rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            for rule in rules:
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") == "aws:kms":
                    return str(self.resolve(stack, default["KMSMasterKeyID"]))
        return None

    def encryption_key_of(self, cfn_type: str, property_name: str, arn: str) -> str | None:
        """The key of an SNS topic or SQS queue given its ARN (``KmsMasterKeyId``)."""
        for stack, logical_id, resource in self.resources(cfn_type):
            if self._get_att(stack, logical_id, "Arn") != arn:
                continue
            key = resource.get("Properties", {}).get(property_name)
            return None if key is None else str(self.resolve(stack, key))
        return None

    def function_environment(self, stack: str, function_logical_id: str) -> dict[str, Any]:
        """A function's environment variables as the template writes them (unresolved)."""
        props = self.resource(stack, function_logical_id)["Properties"]
        return dict(props.get("Environment", {}).get("Variables", {}))


def _refers_to_resource(expression: Any) -> bool:
    if not isinstance(expression, dict) or len(expression) != 1:
        return False
    ((name, argument),) = expression.items()
    if name == "Ref":
        return argument not in PSEUDO and argument != "AWS::StackName"
    return name in ("Fn::GetAtt", "Fn::ImportValue")


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# -- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One authorization IAM makes: an action on a resource, with its condition context."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    # Key prefixes the context decides completely: a key under one of them that the context
    # lacks is known to be absent (e.g. "aws:RequestTag/" for a request that sends tags).
    decided: tuple[str, ...] = ()

    def value(self, key: str) -> tuple[bool, Any]:
        """(decided, value); value None means the key is absent from the request."""
        lowered = {k.lower(): v for k, v in self.context.items()}
        if key.lower() in lowered:
            return True, lowered[key.lower()]
        if any(key.lower().startswith(p.lower()) for p in self.decided):
            return True, None
        return False, None

    def describe(self) -> str:
        return f"{self.action} on {self.resource}"


@dataclass
class Decision:
    allowed: bool
    reason: str
    statement: str | None = None
    assumed: list[str] = field(default_factory=list)


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(_glob(p, action, case=False) for p in patterns)


def resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(_glob(str(p), resource, case=True) for p in patterns)


def _compare(operator: str, expected: str, actual: Any) -> bool:
    actual_text = str(actual)
    if operator in ("StringEquals", "ArnEquals"):
        return actual_text == str(expected)
    if operator == "StringEqualsIgnoreCase":
        return actual_text.lower() == str(expected).lower()
    if operator in ("StringLike", "ArnLike"):
        return _glob(str(expected), actual_text, case=True)
    if operator == "Bool":
        return actual_text.lower() == str(expected).lower()
    if operator.startswith("Numeric"):
        a, e = float(actual_text), float(expected)
        return {
            "NumericEquals": a == e,
            "NumericLessThan": a < e,
            "NumericLessThanEquals": a <= e,
            "NumericGreaterThan": a > e,
            "NumericGreaterThanEquals": a >= e,
        }[operator]
    raise ValueError(f"condition operator {operator} is not supported by this evaluator")


NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool | None:
    """True/False when the request decides it; None when the key is undecided."""
    decided, actual = request.value(key)
    if not decided:
        return None
    qualifier = ""
    if ":" in operator and operator.split(":", 1)[0] in ("ForAllValues", "ForAnyValue"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    expected_values = [str(v) for v in _as_list(expected)]
    if operator == "Null":
        want_absent = str(expected_values[0]).lower() == "true"
        return (actual is None) == want_absent
    if actual is None:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or operator in NEGATED
    negated = operator in NEGATED
    base = NEGATED.get(operator, operator)
    values = [str(v) for v in _as_list(actual)]

    def one(value: str) -> bool:
        hit = any(_compare(base, e, value) for e in expected_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values)
    if len(values) != 1:
        # A multivalued key needs a set operator; a single-valued operator never matches.
        return False
    return one(values[0])


def _statement_applies(statement: Mapping[str, Any], request: Request) -> tuple[bool, list[str]]:
    """Whether the statement applies, and the conditions it was assumed to meet. An Allow
    with undecided conditions is assumed to apply, a Deny is assumed not to: the evaluator
    reports the request as the platform means to send it, and lists what it assumed."""
    if "Action" in statement and not action_matches(_as_list(statement["Action"]), request.action):
        return False, []
    if "NotAction" in statement and action_matches(
        _as_list(statement["NotAction"]), request.action
    ):
        return False, []
    if "Resource" in statement and not resource_matches(
        _as_list(statement["Resource"]), request.resource
    ):
        return False, []
    if "NotResource" in statement and resource_matches(
        _as_list(statement["NotResource"]), request.resource
    ):
        return False, []
    assumed = []
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            holds = _condition_holds(operator, key, expected, request)
            if holds is None:
                if statement.get("Effect") == "Deny":
                    return False, []
                assumed.append(f"{operator} {key} {expected}")
            elif not holds:
                return False, []
    return True, assumed


def evaluate(statements: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The identity-policy decision for one request: explicit Deny, else Allow, else deny."""
    allow: Decision | None = None
    for statement in statements:
        applies, assumed = _statement_applies(statement, request)
        if not applies:
            continue
        sid = statement.get("Sid")
        if statement.get("Effect") == "Deny":
            return Decision(False, f"explicitly denied by statement {sid}", sid, assumed)
        if allow is None:
            allow = Decision(True, f"allowed by statement {sid}", sid, assumed)
    return allow or Decision(False, f"no statement allows {request.describe()}")


def principal_matches(statement: Mapping[str, Any], principal_arn: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*"):
        return True
    if not isinstance(principal, dict):
        return False
    account_root = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
    for arn in _as_list(principal.get("AWS")):
        if str(arn) in (principal_arn, account_root, ACCOUNT):
            return True
    return False


def service_principal_statements(
    statements: Iterable[Mapping[str, Any]], service: str
) -> list[Mapping[str, Any]]:
    """The statements of a resource policy whose principal includes ``service``."""
    found = []
    for statement in statements:
        principal = statement.get("Principal")
        if isinstance(principal, dict) and service in _as_list(principal.get("Service")):
            found.append(statement)
    return found


def resource_policy_decision(
    statements: Iterable[Mapping[str, Any]], principal_arn: str, request: Request
) -> Decision:
    """A resource policy's decision for a principal of this account (Allow, Deny, or none)."""
    mine = [s for s in statements if principal_matches(s, principal_arn)]
    return evaluate(mine, request)

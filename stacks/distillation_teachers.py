"""What the Bedrock customization role needs to distil: invoking the teacher models.

A distillation job has the teacher answer the prompts with the job's service role. The role
gets ``bedrock:InvokeModel`` on the teachers of the distillation table
(``DISTILLATION_TEACHERS``) that Bedrock takes now and that run in this stack's Region,
each in the form the table allows for it:

- on demand: the foundation model in this Region;
- through its cross-Region (system) inference profile: "your service role must have
  permissions to invoke the inference profile in an AWS Region, in addition to the model in
  each Region in the inference profile"
  (https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html,
  policy example in
  https://docs.aws.amazon.com/bedrock/latest/userguide/custom-model-job-access-security.html).
  The profile of this account and Region, and the model in each destination Region of the
  profile only through that profile: the ``bedrock:InferenceProfileArn`` condition of
  https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html ("To
  restrict user access such that they can invoke a foundation model only through an
  inference profile ... This condition can be included in a statement that scopes to the
  foundation-model resources").

Every resource is named (no wildcard); a Region with no teacher gets no policy.
"""

from __future__ import annotations

from aws_cdk import Stack, Token
from aws_cdk import aws_iam as iam
from constructs import Construct

from finetuning.aws_jobs.bedrock_customization import (
    DISTILLATION_TEACHERS,
    INFERENCE_PROFILE,
    ON_DEMAND,
    DistillationTeacher,
)


def teachers_in(region: str | None) -> tuple[DistillationTeacher, ...]:
    """The teachers Bedrock takes now whose distillation jobs run in ``region`` (None: a
    Region unknown at synth time, so every Region's teachers)."""
    return tuple(
        teacher
        for teacher in DISTILLATION_TEACHERS
        if teacher.unavailable is None and (region is None or teacher.region == region)
    )


def _sid(teacher: DistillationTeacher) -> str:
    return "".join(part.capitalize() for part in teacher.name.replace(".", " ").split())


class DistillationTeacherAccess(Construct):
    """A managed policy on the Bedrock customization role: invoke the teacher models."""

    def __init__(self, scope: Construct, construct_id: str, *, bedrock_role: iam.IRole) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        region = None if Token.is_unresolved(stack.region) else stack.region
        self.teachers = teachers_in(region)
        self.policy: iam.ManagedPolicy | None = None
        statements = [*self._on_demand(stack), *self._through_profiles(stack)]
        if not statements:
            return
        self.policy = iam.ManagedPolicy(
            self,
            "BedrockRoleInvokesTeachers",
            description="Lets the Bedrock customization role invoke distillation teachers",
            roles=[bedrock_role],
            statements=statements,
        )

    def _on_demand(self, stack: Stack) -> list[iam.PolicyStatement]:
        models = [
            _model_arn(stack, stack.region, teacher.model_id)
            for teacher in self.teachers
            if ON_DEMAND in teacher.invoked_as
        ]
        if not models:
            return []
        return [
            iam.PolicyStatement(
                sid="InvokeDistillationTeachers", actions=["bedrock:InvokeModel"], resources=models
            )
        ]

    def _through_profiles(self, stack: Stack) -> list[iam.PolicyStatement]:
        statements = []
        for teacher in self.teachers:
            if INFERENCE_PROFILE not in teacher.invoked_as or not teacher.profile_id:
                continue
            profile = (
                f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:"
                f"inference-profile/{teacher.profile_id}"
            )
            statements += [
                iam.PolicyStatement(
                    sid=f"Invoke{_sid(teacher)}Profile",
                    actions=["bedrock:InvokeModel"],
                    resources=[profile],
                ),
                iam.PolicyStatement(
                    sid=f"Invoke{_sid(teacher)}ThroughItsProfile",
                    actions=["bedrock:InvokeModel"],
                    resources=[
                        _model_arn(stack, destination, teacher.model_id)
                        for destination in teacher.profile_regions
                    ],
                    conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile}},
                ),
            ]
        return statements


def _model_arn(stack: Stack, region: str, model_id: str) -> str:
    return f"arn:{stack.partition}:bedrock:{region}::foundation-model/{model_id}"

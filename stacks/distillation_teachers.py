"""What the Bedrock customization role needs to distil: invoking the teacher models.

A distillation job has the teacher answer the prompts with the job's service role: "To use a
cross-region inference profile for a teacher model in a Distillation job, your service role
must have permissions to invoke the inference profile in an AWS Region, in addition to the
model in each Region in the inference profile"
(https://docs.aws.amazon.com/bedrock/latest/userguide/prequisites-model-distillation.html).
The role gets ``bedrock:InvokeModel`` on this Region's foundation models that the
distillation table lists as teachers (``DISTILLATION_PAIRS``), named one by one. A teacher
reached through a cross-Region inference profile also needs the profile and the model in
each of its Regions; grant those where you use one (docs/bedrock.md).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from finetuning.aws_jobs.bedrock_customization import DISTILLATION_PAIRS

# The teachers' foundation-model ids (version 1:0 of each teacher of the table).
TEACHER_MODEL_IDS = tuple(f"{prefix}:0" for prefix in DISTILLATION_PAIRS)


class DistillationTeacherAccess(Construct):
    """A managed policy on the Bedrock customization role: invoke the teacher models."""

    def __init__(self, scope: Construct, construct_id: str, *, bedrock_role: iam.IRole) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.teacher_arns = [
            f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model_id}"
            for model_id in TEACHER_MODEL_IDS
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "BedrockRoleInvokesTeachers",
            description="Lets the Bedrock customization role invoke distillation teachers",
            roles=[bedrock_role],
            statements=[
                iam.PolicyStatement(
                    sid="InvokeDistillationTeachers",
                    actions=["bedrock:InvokeModel"],
                    resources=self.teacher_arns,
                )
            ],
        )

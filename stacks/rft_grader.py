"""The platform's grader for reinforcement fine-tuning, and who may invoke it.

Bedrock runs an RFT job's reward function as a Lambda function it invokes with the job's
service role: "Add these permissions to your existing model customization service role ...
lambda:InvokeFunction" on the reward function,
https://docs.aws.amazon.com/bedrock/latest/userguide/rft-access-security.html. So the
Bedrock customization role gets ``lambda:InvokeFunction`` on exactly the grader (and on the
ARNs of users' own graders named in the settings), and the grader's resource policy lets the
Bedrock service in this account, for this Region's model customization jobs, invoke it and no
one else (``AWS:SourceAccount`` / ``AWS:SourceArn``, the confused-deputy conditions of Lambda
resource policies: https://docs.aws.amazon.com/lambda/latest/dg/permissions-function-services.html).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.constructs.platform_function import PlatformFunction

BEDROCK_SERVICE = "bedrock.amazonaws.com"
# RFT reward functions may run up to 15 minutes ("Lambda timeout ... maximum 15 minutes"):
# https://docs.aws.amazon.com/bedrock/latest/userguide/reward-functions.html. The platform's
# scoring is pure Python and takes milliseconds per sample; a minute covers large batches.
GRADER_TIMEOUT = Duration.minutes(1)
GRADER_MEMORY_MB = 512
# Compliance suppressions of the grader function, in its own terms (stacks/compliance.py).
GRADER_VPC_REASON = (
    "The RFT grader computes rewards from the samples Bedrock sends it and calls no other "
    "service; it holds no data of its own, so there is nothing for a VPC to reach or protect."
)
GRADER_CONCURRENCY_REASON = (
    "Bedrock invokes the RFT grader in parallel batches during a reinforcement fine-tuning job "
    "only; reserving concurrency would fail deployment in accounts below the unreserved "
    "minimum. Set orchestration.reserved_concurrency to reserve it."
)


class RftGrader(Construct):
    """The grader function (``lambda/grader``) and its invoke permissions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: PlatformFunction,
        bedrock_role: iam.IRole,
        external_grader_arns: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.function = function
        jobs_arn = (
            f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:"
            "model-customization-job/*"
        )
        function.function.add_permission(
            "InvokedByBedrockCustomizationJobs",
            principal=iam.ServicePrincipal(BEDROCK_SERVICE),
            action="lambda:InvokeFunction",
            source_account=stack.account,
            source_arn=jobs_arn,
        )
        self.invoke_policy = iam.ManagedPolicy(
            self,
            "BedrockRoleInvokesGraders",
            description="Lets the Bedrock customization role invoke RFT graders",
            roles=[bedrock_role],
            statements=[
                iam.PolicyStatement(
                    sid="InvokeRftGraders",
                    actions=["lambda:InvokeFunction"],
                    resources=[function.arn, *external_grader_arns],
                )
            ],
        )

    @property
    def arn(self) -> str:
        return self.function.arn

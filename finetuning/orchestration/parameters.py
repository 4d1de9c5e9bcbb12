"""SSM parameters the orchestration stack publishes, beside the foundation's.

Same prefix as ``finetuning.platform.PlatformParameter`` (``/<project>/<environment>/``),
so the CLI finds the state machine and the job table with no ARNs to copy.
"""

from __future__ import annotations

from enum import StrEnum

from finetuning.platform import parameter_prefix


class OrchestrationParameter(StrEnum):
    STATE_MACHINE_ARN = "orchestration/state-machine-arn"
    JOB_TABLE_NAME = "orchestration/job-table-name"
    NOTIFICATION_TOPIC_ARN = "orchestration/notification-topic-arn"
    KMS_KEY_ARN = "orchestration/kms-key-arn"
    # The platform's RFT grader (stacks/rft_grader.py), for library and CLI jobs to name.
    RFT_GRADER_FUNCTION_ARN = "orchestration/rft-grader-function-arn"


def orchestration_parameter_name(
    project: str, environment: str, parameter: OrchestrationParameter
) -> str:
    return f"{parameter_prefix(project, environment)}/{parameter.value}"

"""The backend-neutral job status: what the library reports and the job table stores."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Backend-neutral job status.

    Bedrock ``InProgress`` maps to ``preprocessing`` while its data validation or processing
    runs and to ``running`` once training starts; SageMaker secondary statuses map the same way;
    ``Stopped`` on either maps to ``cancelled``, but a SageMaker job stopped at its
    MaxRuntime or MaxWaitTime limit ``failed`` (see ``bedrock_customization`` and
    ``sagemaker_training``).
    """

    QUEUED = "queued"
    PREPROCESSING = "preprocessing"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.PREPROCESSING, JobStatus.RUNNING, JobStatus.STOPPING)

"""Names derived from the job spec, so that the same spec always maps to the same job.

The job id (``<job-name>-<10 hex digits of the spec's SHA-256>``) is at once the Step
Functions execution name, the Bedrock or SageMaker job name, the client request token and
the job table key. Submitting the same spec twice therefore finds the first execution and
the first job instead of making new ones; changing any field (or ``revision``) makes a new
id. The id satisfies every service's name rules at once:

- SageMaker ``TrainingJobName``: ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
- Bedrock ``jobName`` (1-63 chars, ``[a-zA-Z0-9](-*[a-zA-Z0-9\\+\\-\\.])*``), ``customModelName``
  and ``provisionedModelName`` (``([0-9a-zA-Z][_-]?){1,63}``) and ``clientRequestToken``
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
- Step Functions execution ``name`` (1-80 chars, no whitespace, brackets, wildcards or
  ``"#%\\^|~`$&,;:/``) https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

NAME_LIMIT = 63
DIGEST_LENGTH = 10
JOB_ID_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lowercase letters and digits joined by single hyphens: ``My Job_v2`` -> ``my-job-v2``."""
    return _NOT_ALLOWED.sub("-", text.lower()).strip("-")


def spec_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_id(job_name: str, spec: Mapping[str, Any]) -> str:
    """``<slug of job_name>-<10 hex digits of the spec digest>``, at most 63 characters."""
    digest = spec_digest(spec)[:DIGEST_LENGTH]
    base = slug(job_name)[: NAME_LIMIT - DIGEST_LENGTH - 1].rstrip("-") or "job"
    return f"{base}-{digest}"


def derived_name(job: str, suffix: str) -> str:
    """A second resource name from the job id (``<id>-<suffix>``), trimmed to 63 characters
    by shortening the readable part, never the digest that makes it unique."""
    if len(job) + 1 + len(suffix) <= NAME_LIMIT:
        return f"{job}-{suffix}"
    head, _, digest = job.rpartition("-")
    room = NAME_LIMIT - len(digest) - len(suffix) - 2
    return f"{head[:room].rstrip('-')}-{digest}-{suffix}"

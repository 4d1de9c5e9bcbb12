"""Reinforcement fine-tuning of the open-weight models (gpt-oss-20b, Qwen3 32B) in the
workflow: Bedrock trains them only through its OpenAI-compatible API on the bedrock-mantle
endpoint (finetuning.backends.bedrock_openai_rft), which takes an Amazon Bedrock API key.

The functions hold no stored secret: each call makes a short-term API key from the
function role's own credentials with AWS's token generator (``aws-bedrock-token-generator``,
pinned in requirements.txt and copied into the functions that call this module). Sources,
read 2026-12-05:
https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html
  - "Short-term - Lasts up to 12 hours (or the duration of your session, whichever is
    shorter). Inherits permissions from the IAM principal used to generate it. Recommended
    for production use"; Python: ``pip install aws-bedrock-token-generator``,
    ``provide_token()``.
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_bedrock.html
  - "A short-term API key is a pre-signed URL that uses AWS Signature Version 4 ... share the
    same permissions and expiration as the credentials of the identity that generates the
    API key".
https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-how.html
  - a short-term key "can be used only in the AWS Region from which you generated it".
The permissions the role needs (stacks/constructs/job_permissions.py, grant_open_weight_rft)
are bedrock-mantle actions; see docs/bedrock.md, "Open-weight models in the workflow".

Idempotency is the library's: the uploaded file is named ``<job id>-<digest of data and
request>.jsonl``, and a repeated start finds that file and the job started from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetuning.aws_jobs.bedrock_customization import (
    OPEN_WEIGHT_RFT_MODELS,
    REINFORCEMENT_FINE_TUNING,
    open_weight_rft_model,
)
from finetuning.orchestration.errors import ConfigurationError
from finetuning.orchestration.manifest import S3_URI, JobManifest
from finetuning.orchestration.state import JobState

if TYPE_CHECKING:  # the backend ships only in the functions that call it (stacks/)
    from finetuning.backends.bedrock_openai_rft import OpenWeightRftBackend
    from finetuning.jobs import FinetuningJobConfig, FinetuningJobResult

# The path of a job on the OpenAI-compatible endpoint: a job URL is
# <endpoint>/fine_tuning/jobs/<id> (finetuning.backends.bedrock_openai_rft.job_url).
_JOBS_PATH = "/fine_tuning/jobs/"

__all__ = [
    "api_key",
    "backend",
    "describe",
    "is_open_weight_job",
    "is_open_weight_manifest",
    "start",
    "stop",
]


def is_open_weight_job(job_arn: str) -> bool:
    """Whether a job table's backend_job_arn is an open-weight RFT job's URL."""
    return job_arn.startswith(("https://", "http://")) and _JOBS_PATH in job_arn


def is_open_weight_manifest(manifest: JobManifest) -> bool:
    return manifest.customization_type == REINFORCEMENT_FINE_TUNING and bool(
        open_weight_rft_model(manifest.base_model)
    )


def api_key(region: str) -> str:
    """A short-term Amazon Bedrock API key for ``region``, made from this process's AWS
    credentials (the function's role); valid while those credentials are, at most 12 h."""
    from aws_bedrock_token_generator import provide_token

    return provide_token(region=region)


def backend(
    region: str,
    s3: Any,
    *,
    key: Callable[[str], str] = api_key,
    base_url: str | None = None,
    opener: Callable[..., Any] | None = None,
) -> OpenWeightRftBackend:
    """The library's backend with a fresh short-term key; the data is read with ``s3``."""
    from finetuning.backends.bedrock_openai_rft import OpenWeightRftBackend

    def read(uri: str) -> bytes:
        match = S3_URI.match(uri)
        if match is None:
            raise ConfigurationError(f"training data {uri!r}: expected an s3:// URI")
        return s3.get_object(Bucket=match["bucket"], Key=match["key"])["Body"].read()

    extra = {"opener": opener} if opener is not None else {}
    return OpenWeightRftBackend(region, read, api_key=key(region), base_url=base_url, **extra)


def job_config(manifest: JobManifest, job_id: str) -> FinetuningJobConfig:
    """The library's job config of a manifest: the job id names the uploaded file."""
    from finetuning.jobs import FinetuningJobConfig

    rft = manifest.rft
    return FinetuningJobConfig(
        job_name=job_id,
        base_model=manifest.base_model,
        customization_type=REINFORCEMENT_FINE_TUNING,
        training_data_uri=manifest.training_data_uri,
        grader_lambda_arn=rft.grader_lambda_arn if rft else None,
        rft_hyperparameters=dict(rft.hyperparameters) if rft else {},
    )


def start(rft: OpenWeightRftBackend, manifest: JobManifest, job_id: str) -> str:
    """Start the job once (a repeat returns the first); its URL identifies it."""
    model = open_weight_rft_model(manifest.base_model) or manifest.base_model
    regions = OPEN_WEIGHT_RFT_MODELS.get(model, ())
    if rft.region not in regions:
        raise ConfigurationError(
            f"job {job_id}: Bedrock reinforcement fine-tunes {model} only in "
            f"{', '.join(regions)}; this platform runs in {rft.region}. Deploy the platform "
            f"in {regions[0] if regions else 'that Region'}, or start the job there with "
            "`finetune job create --region ...`"
        )
    config = job_config(manifest, job_id)
    rft.check(config)
    return rft.create(config, {}).job_arn


def _state(result: FinetuningJobResult) -> JobState:
    artifacts = {"fine_tuned_model": result.model_id} if result.model_id else {}
    usage = {}
    if result.creation_time and result.end_time:
        usage["duration_seconds"] = int((result.end_time - result.creation_time).total_seconds())
    return JobState(
        job_name=result.job_name,
        status=result.status,
        backend_status=result.backend_status or result.status.value,
        failure_reason=result.failure_reason,
        job_arn=result.job_arn,
        artifacts=artifacts,
        usage=usage,
    )


def describe(rft: OpenWeightRftBackend, job_url: str) -> JobState:
    return _state(rft.get(job_url))


def stop(rft: OpenWeightRftBackend, job_url: str) -> bool:
    """Cancel a running job; False when it had already ended or is gone."""
    from finetuning.backends.bedrock_openai_rft import MantleApiError
    from finetuning.errors import FinetuningError, JobNotFoundError

    try:
        before = rft.get(job_url)
    except JobNotFoundError:
        return False
    if before.status.is_terminal:
        return False
    try:
        rft.stop(job_url)
    except MantleApiError as exc:
        raise FinetuningError(f"cancelling {job_url}: {exc}") from exc
    return True

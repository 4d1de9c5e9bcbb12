"""Reinforcement fine-tuning of Bedrock's open-weight models (gpt-oss-20b, Qwen3 32B) through
Bedrock's OpenAI-compatible fine-tuning API.

Bedrock trains these models only through that API, on the ``bedrock-mantle`` endpoint, not
through CreateModelCustomizationJob (read 2026-12-05):
https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-apis.html
  - upload the JSONL with the Files API, purpose "fine-tune";
  - create a fine-tuning job with method "reinforcement" and a Lambda grader;
  - list and retrieve jobs.
https://docs.aws.amazon.com/bedrock/latest/userguide/fine-tuning-openai-job-create.html
  - POST /v1/fine_tuning/jobs, headers "Content-Type: application/json" and
    "Authorization: Bearer $OPENAI_API_KEY", body {"training_file", "model", "method":
    {"type": "reinforcement", "reinforcement": {"grader": {"type": "lambda", "lambda":
    {"function": <Lambda ARN>}}, "hyperparameters": {"n_epochs", "batch_size",
    "learning_rate_multiplier"}}}};
  - "Suffix field is not supported" (so no suffix is sent); the page shows no
    validation_file, metadata or idempotency key for these jobs, so none is sent;
  - for everything else it refers to the OpenAI fine-tuning reference, which gives the
    paths used here for the other calls and the job object's fields:
    https://developers.openai.com/api/reference/resources/fine_tuning/subresources/jobs/methods/create
    (GET /fine_tuning/jobs/{id}, GET /fine_tuning/jobs?after=&limit= -> {"data", "has_more"},
    POST /fine_tuning/jobs/{id}/cancel; job fields id, model, status, training_file,
    fine_tuned_model, created_at, finished_at, error {code, message}; POST /files multipart
    with "purpose" and "file", GET /files?purpose= -> {"data": [{"id", "filename", ...}]}).
https://docs.aws.amazon.com/bedrock/latest/userguide/rft-open-weight-access-security.html
  - authentication: an Amazon Bedrock API key in OPENAI_API_KEY (required for the OpenAI SDK
    and available for HTTP requests); the endpoint for the Region, for example
    https://bedrock-mantle.us-west-2.api.aws/v1; the key's identity needs
    AmazonBedrockMantleFullAccess and lambda:InvokeFunction on the reward function.
https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html
  - API keys are passed as authorization headers; a short-term key works only in the Region it
    was generated in.

Plain HTTPS with the standard library: the key goes only into the Authorization header and
is never logged or put into an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from finetuning.aws_jobs.bedrock_customization import (
    LAMBDA_ARN,
    OPEN_WEIGHT_RFT_API_URL,
    OPEN_WEIGHT_RFT_HYPERPARAMETERS,
    OPEN_WEIGHT_RFT_MODELS,
    REINFORCEMENT_FINE_TUNING,
    CustomizationRuleError,
    check_open_weight_rft_hyperparameters,
    open_weight_rft_model,
)
from finetuning.errors import (
    EnvironmentSetupError,
    FinetuningError,
    InvalidJobConfigError,
    JobNotFoundError,
)
from finetuning.jobs import (
    BEDROCK_JOB_NAME,
    NAME_MAX_LENGTH,
    Backend,
    FinetuningJobConfig,
    FinetuningJobResult,
    JobPage,
    JobStatus,
)

logger = logging.getLogger(__name__)

# The endpoint per Region (rft-open-weight-access-security.html, OPENAI_BASE_URL example, and
# the curl example of fine-tuning-openai-job-create.html).
MANTLE_URL = "https://bedrock-mantle.{region}.api.aws/v1"
_MANTLE_HOST = re.compile(r"^https://bedrock-mantle\.[a-z]{2}(-gov)?-[a-z]+-\d\.api\.aws/v1$")
# The environment variable the docs name for the Bedrock API key.
API_KEY_ENV = "OPENAI_API_KEY"
API_KEYS_URL = "https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html"
ACCESS_URL = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/rft-open-weight-access-security.html"
)
FILE_PURPOSE = "fine-tune"
JOBS_PATH = "/fine_tuning/jobs"
# The hyperparameters of the docs' example (fine-tuning-openai-job-create.html); the page gives
# no ranges, so only their types are checked.
HYPERPARAMETER_TYPES: dict[str, type] = OPEN_WEIGHT_RFT_HYPERPARAMETERS
# The job object's status values (OpenAI fine-tuning reference, which the Bedrock page defers to).
JOB_STATUSES: dict[str, JobStatus] = {
    "validating_files": JobStatus.PREPROCESSING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
# How far back an idempotent create looks for the job it may already have started.
LOOKUP_PAGES = 10
PAGE_SIZE = 100
REQUEST_TIMEOUT_SECONDS = 60.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect with the Authorization header, i.e. send the key to
    wherever the answer points; a redirect is an error instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class MantleApiError(FinetuningError):
    """The endpoint answered with an HTTP error; ``status`` is its code."""

    def __init__(self, operation: str, status: int, message: str) -> None:
        hint = ""
        if status == 403:
            hint = (
                "; the API key's identity needs AmazonBedrockMantleFullAccess and "
                f"lambda:InvokeFunction on the grader (see {ACCESS_URL})"
            )
        super().__init__(f"{operation} failed: HTTP {status}: {message}{hint}")
        self.operation = operation
        self.status = status


class ApiKeyRejectedError(EnvironmentSetupError):
    """HTTP 401: the endpoint did not accept the API key (expired, or another Region's)."""


class MantleUnreachableError(EnvironmentSetupError):
    """No HTTP answer from the endpoint (network, proxy, DNS)."""


def mantle_url(region: str) -> str:
    return MANTLE_URL.format(region=region)


def is_open_weight_job(identifier: str) -> bool:
    """Whether ``identifier`` names a job of this API: its URL,
    ``<endpoint>/fine_tuning/jobs/<id>``."""
    return identifier.startswith(("https://", "http://")) and f"{JOBS_PATH}/" in identifier


def job_url(base_url: str, job_id: str) -> str:
    return f"{base_url}{JOBS_PATH}/{job_id}"


class MantleClient:
    """The few calls of the OpenAI-compatible API this library makes."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        opener: Callable[..., Any] = _OPENER.open,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._open = opener

    def __repr__(self) -> str:  # never the key
        return f"MantleClient({self.base_url!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if payload is not None:
            body = json.dumps(payload).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        logger.debug("%s %s", method, url)
        try:
            with self._open(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = self._redact(_error_message(exc.read()))
            if exc.code == 401:
                raise ApiKeyRejectedError(
                    f"{operation}: the endpoint {self.base_url} rejected the API key (HTTP 401: "
                    f"{message}); set {API_KEY_ENV} to a valid Amazon Bedrock API key for this "
                    f"Region (a short-term key works only in the Region it was made in; see "
                    f"{API_KEYS_URL})"
                ) from None
            raise MantleApiError(operation, exc.code, message) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MantleUnreachableError(
                f"cannot reach {self.base_url} ({operation}: {self._redact(str(reason))}); check "
                "the network, a proxy (HTTPS_PROXY) or the Region (--region)"
            ) from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            raise MantleApiError(operation, 200, f"the answer is not JSON: {raw[:200]!r}") from None
        if not isinstance(answer, dict):
            raise MantleApiError(operation, 200, f"expected a JSON object, got {answer!r}")
        return answer

    # Files API (fine-tuning-openai-apis.html, "Upload training files").
    def list_files(self) -> list[dict[str, Any]]:
        answer = self._call("ListFiles", "GET", "/files", query={"purpose": FILE_PURPOSE})
        return list(answer.get("data") or [])

    def upload_file(self, filename: str, data: bytes) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        body = _multipart(
            boundary, {"purpose": FILE_PURPOSE}, ("file", filename, data, "application/jsonl")
        )
        return self._call(
            "UploadFile",
            "POST",
            "/files",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    # Fine-tuning jobs (fine-tuning-openai-job-create.html).
    def create_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("CreateFineTuningJob", "POST", JOBS_PATH, payload=request)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("RetrieveFineTuningJob", "GET", f"{JOBS_PATH}/{_quote(job_id)}")

    def list_jobs(self, after: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
        query = {"limit": limit, "after": after}
        return self._call("ListFineTuningJobs", "GET", JOBS_PATH, query=query)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call("CancelFineTuningJob", "POST", f"{JOBS_PATH}/{_quote(job_id)}/cancel")


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _error_message(raw: bytes) -> str:
    """The error body's message (OpenAI's {"error": {"message"}} shape, or the text)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:500] or "no details"
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return text[:500]


def _multipart(
    boundary: str, fields: Mapping[str, str], file: tuple[str, str, bytes, str]
) -> bytes:
    """A multipart/form-data body: the text fields, then the file."""
    parts: list[bytes] = []
    for name, value in fields.items():
        header = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{header}{value}\r\n".encode())
    name, filename, data, content_type = file
    header = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    )
    parts.append(header.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def check_open_weight_hyperparameters(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The documented hyperparameter names, with their types (the page gives no ranges):
    the shared check of the job manifest, with the library's field name and error."""
    try:
        return check_open_weight_rft_hyperparameters(values or {}, "rft_hyperparameters")
    except CustomizationRuleError as exc:
        raise InvalidJobConfigError(exc.field, exc.message) from None


def job_request(config: FinetuningJobConfig, training_file_id: str) -> dict[str, Any]:
    """The body of POST /v1/fine_tuning/jobs (fine-tuning-openai-job-create.html)."""
    reinforcement: dict[str, Any] = {
        "grader": {"type": "lambda", "lambda": {"function": config.grader_lambda_arn}}
    }
    hyperparameters = check_open_weight_hyperparameters(config.rft_hyperparameters)
    if hyperparameters:
        reinforcement["hyperparameters"] = hyperparameters
    return {
        "model": open_weight_rft_model(config.base_model or ""),
        "training_file": training_file_id,
        "method": {"type": "reinforcement", "reinforcement": reinforcement},
    }


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


class OpenWeightRftBackend:
    """Bedrock RFT jobs of the open-weight models, through the OpenAI-compatible API.

    ``read_data`` returns the bytes of an s3:// URI or a local path. The API key comes from
    ``api_key`` or, when that is None, from ``OPENAI_API_KEY``; it is read at the first call
    that needs it, so validation works without one.
    """

    name = Backend.BEDROCK

    def __init__(
        self,
        region: str,
        read_data: Callable[[str], bytes],
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        opener: Callable[..., Any] = _OPENER.open,
    ) -> None:
        self.region = region
        self.base_url = (base_url or mantle_url(region)).rstrip("/")
        self._read_data = read_data
        self._api_key = api_key
        self._opener = opener

    # -- clients ----------------------------------------------------------------------------

    def _key(self) -> str:
        key = self._api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise EnvironmentSetupError(
                f"no Amazon Bedrock API key: set {API_KEY_ENV} to one (generate a short-term "
                f"key for {self.region} in the Bedrock console or with "
                f"aws-bedrock-token-generator; "
                f"see {API_KEYS_URL}); open-weight RFT jobs run through Bedrock's "
                f"OpenAI-compatible API, which takes that key"
            )
        return key

    def client(self, base_url: str | None = None) -> MantleClient:
        return MantleClient(base_url or self.base_url, self._key(), opener=self._opener)

    def _client_for(self, identifier: str) -> tuple[MantleClient, str]:
        """The client for a job URL and the job id in it. Only Bedrock's endpoints (or the
        one this backend was configured with) get the key."""
        base, _, job_id = identifier.partition(f"{JOBS_PATH}/")
        base = base.rstrip("/")
        job_id = job_id.strip("/")
        if not job_id or "/" in job_id or not (base == self.base_url or _MANTLE_HOST.match(base)):
            raise InvalidJobConfigError(
                "job_identifier",
                "the URL of a job on Bedrock's OpenAI-compatible endpoint, "
                "https://bedrock-mantle.<region>.api.aws/v1/fine_tuning/jobs/<job id>",
                identifier,
            )
        return self.client(base), job_id

    # -- validation -------------------------------------------------------------------------

    def check(
        self, config: FinetuningJobConfig, sources: dict[str, str] | None = None
    ) -> dict[str, str]:
        model = open_weight_rft_model(config.base_model or "")
        if model is None:
            raise InvalidJobConfigError(
                "base_model",
                f"an open-weight model Bedrock reinforcement fine-tunes "
                f"({', '.join(OPEN_WEIGHT_RFT_MODELS)})",
                config.base_model,
            )
        if config.customization_type != REINFORCEMENT_FINE_TUNING:
            raise InvalidJobConfigError(
                "customization_type",
                f"{REINFORCEMENT_FINE_TUNING}: Bedrock customizes {model} only by "
                f"reinforcement fine-tuning, through its OpenAI-compatible API (see "
                f"{OPEN_WEIGHT_RFT_API_URL})",
                config.customization_type,
            )
        regions = OPEN_WEIGHT_RFT_MODELS[model]
        if self.region not in regions:
            raise InvalidJobConfigError(
                "region",
                f"{' or '.join(regions)}, where Bedrock reinforcement fine-tunes {model} "
                f"(pass --region {regions[0]}; see {OPEN_WEIGHT_RFT_API_URL})",
                self.region,
            )
        if not config.training_data_uri:
            raise InvalidJobConfigError(
                "training_data_uri", "the RFT prompts (an s3:// URI or a local JSONL file)", None
            )
        if not config.grader_lambda_arn or not LAMBDA_ARN.match(config.grader_lambda_arn):
            raise InvalidJobConfigError(
                "grader_lambda_arn",
                "the ARN of the grader Lambda function (arn:aws:lambda:REGION:ACCOUNT:"
                "function:NAME), e.g. the platform's grader",
                config.grader_lambda_arn,
            )
        name = config.job_name or ""
        if len(name) > NAME_MAX_LENGTH or not BEDROCK_JOB_NAME.match(name):
            raise InvalidJobConfigError(
                "job_name",
                "1-63 letters, digits, '+', '.' and '-', starting with a letter or digit",
                config.job_name,
            )
        # What CreateModelCustomizationJob takes but this API does not (the page documents
        # none of them; "Suffix field is not supported").
        not_taken = {
            "validation_data_uri": config.validation_data_uri,
            "model_name": config.model_name,
            "hyperparameters": dict(config.hyperparameters or {}),
            "role_arn": config.role_arn,
            "output_uri": config.output_uri,
            "kms_key_id": config.kms_key_id,
            "subnet_ids": config.subnet_ids,
            "tags": dict(config.tags or {}),
            "teacher_model": config.teacher_model,
            "invocation_logs_uri": config.invocation_logs_uri,
        }
        for field_name, value in not_taken.items():
            if value:
                raise InvalidJobConfigError(
                    field_name,
                    f"nothing for {model}: its RFT job (Bedrock's OpenAI-compatible API, "
                    f"{OPEN_WEIGHT_RFT_API_URL}) takes training data, a grader and "
                    f"rft_hyperparameters ({', '.join(HYPERPARAMETER_TYPES)}) only",
                    value,
                )
        check_open_weight_hyperparameters(config.rft_hyperparameters)
        return {}

    # -- jobs -------------------------------------------------------------------------------

    def create(
        self, config: FinetuningJobConfig, hyperparameters: dict[str, str]
    ) -> FinetuningJobResult:
        """Upload the data (once) and start the job (once): the file's name carries the job
        name and a digest of the data and the request, so a repeated call finds the file it
        uploaded and the job started from it instead of making new ones."""
        client = self.client()  # no key: stop before reading or sending anything
        uri = config.training_data_uri or ""
        data = self._read_data(uri)
        self._validate_data(data, config)
        spec = job_request(config, training_file_id="")
        digest = hashlib.sha256(data + json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        filename = f"{config.job_name}-{digest}.jsonl"
        file_id = next(
            (f["id"] for f in client.list_files() if f.get("filename") == filename and f.get("id")),
            None,
        )
        if file_id is None:
            file_id = client.upload_file(filename, data)["id"]
            logger.info("uploaded %s as %s (%s)", uri, file_id, filename)
        existing = self._started_from(client, file_id, spec["model"])
        if existing is not None:
            logger.info("job %s already started from %s", existing["id"], file_id)
            return self._result(existing, client.base_url)
        job = client.create_job(job_request(config, file_id))
        return self._result(job, client.base_url)

    def _validate_data(self, data: bytes, config: FinetuningJobConfig) -> None:
        from finetuning.data.validate import validate_lines

        report = validate_lines(
            data.splitlines(keepends=True),
            config.base_model or "",
            path=config.training_data_uri or "<data>",
            customization=REINFORCEMENT_FINE_TUNING,
        )
        if report.errors:
            first = next(p for p in report.problems if p.severity == "error")
            where = f"line {first.line}: " if first.line else ""
            raise InvalidJobConfigError(
                "training_data_uri",
                "records Bedrock accepts for open-weight RFT (see `finetune data validate "
                "--customization-type REINFORCEMENT_FINE_TUNING`)",
                config.training_data_uri,
                hint=f"{report.errors} error(s); {where}{first.message}",
            )

    def _started_from(
        self, client: MantleClient, file_id: str, model: str | None
    ) -> dict[str, Any] | None:
        """The newest job started from ``file_id`` that has not failed or been cancelled."""
        after = None
        for _ in range(LOOKUP_PAGES):
            page = client.list_jobs(after=after)
            jobs = list(page.get("data") or [])
            for job in jobs:
                if (
                    job.get("training_file") == file_id
                    and job.get("model") == model
                    and job.get("status") not in ("failed", "cancelled")
                ):
                    return job
            if not page.get("has_more") or not jobs:
                return None
            after = jobs[-1].get("id")
        return None

    def get(self, identifier: str) -> FinetuningJobResult:
        client, job_id = self._client_for(identifier)
        try:
            return self._result(client.get_job(job_id), client.base_url)
        except MantleApiError as exc:
            if exc.status == 404:
                raise JobNotFoundError(identifier, "bedrock (OpenAI-compatible API)") from None
            raise

    def stop(self, identifier: str) -> FinetuningJobResult:
        current = self.get(identifier)
        if current.status.is_terminal:
            return current
        client, job_id = self._client_for(identifier)
        return self._result(client.cancel_job(job_id), client.base_url)

    def list(
        self,
        status_filter: JobStatus | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> JobPage:
        client = self.client()
        page = client.list_jobs(after=next_token, limit=limit or PAGE_SIZE)
        jobs = [self._result(job, client.base_url) for job in page.get("data") or []]
        if status_filter is not None:
            jobs = [job for job in jobs if job.status is status_filter]
        data = page.get("data") or []
        more = page.get("has_more") and data
        return JobPage(jobs=jobs, next_token=data[-1].get("id") if more else None)

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def _result(job: Mapping[str, Any], base_url: str) -> FinetuningJobResult:
        raw = str(job.get("status") or "")
        status = JOB_STATUSES.get(raw)
        if status is None:
            raise FinetuningError(
                f"job {job.get('id')}: status {raw!r} is none of the documented ones "
                f"({', '.join(JOB_STATUSES)}); check it in the Bedrock console"
            )
        error = job.get("error") or {}
        failure = None
        if status is JobStatus.FAILED:
            failure = (
                error.get("message") if isinstance(error, Mapping) else str(error)
            ) or "failed (no message)"
        reinforcement = (
            ((job.get("method") or {}).get("reinforcement") or {})
            if isinstance(job.get("method"), Mapping)
            else {}
        )
        hyperparameters = {
            str(k): str(v) for k, v in (reinforcement.get("hyperparameters") or {}).items()
        }
        return FinetuningJobResult(
            job_arn=job_url(base_url, str(job["id"])),
            job_name=str(job["id"]),
            status=status,
            backend=Backend.BEDROCK,
            model_id=job.get("fine_tuned_model"),
            base_model=job.get("model"),
            creation_time=_timestamp(job.get("created_at")),
            end_time=_timestamp(job.get("finished_at")),
            failure_reason=failure,
            training_data_uri=job.get("training_file"),
            hyperparameters=hyperparameters,
            backend_status=raw,
        )

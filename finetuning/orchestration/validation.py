"""Validate a job's data before any job starts, and keep the report where people find it.

The reports land in the evaluation bucket at
``evaluation/reports/<job id>/data-validation-<train|validation>.json``; a dataset with
errors fails the run with the report's summary and that URI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from finetuning.aws_jobs.backends import Backend
from finetuning.data.models import region_refusal
from finetuning.orchestration.aws import retryable_errors
from finetuning.orchestration.environment import Environment
from finetuning.orchestration.errors import DatasetInvalidError, ManifestError
from finetuning.orchestration.manifest import S3_URI, JobManifest
from finetuning.orchestration.records import JobStage, JobStatus, JobTable
from finetuning.orchestration.workflow_serving import SERVING_MODE_KEY, serving_mode
from finetuning.platform import (
    EVALUATION_REPORTS_PREFIX,
    FINAL_MODELS_PREFIX,
    TRAINING_DATA_PROCESSED_PREFIX,
    TRAINING_DATA_RAW_PREFIX,
)

MODELS_PREFIX = FINAL_MODELS_PREFIX.split("/", 1)[0] + "/"
Validator = Callable[..., Any]


def check_locations(manifest: JobManifest, env: Environment) -> None:
    """Each URI must be where the job's service role may read or write (security stack)."""
    data_prefixes = (TRAINING_DATA_RAW_PREFIX, TRAINING_DATA_PROCESSED_PREFIX)
    expectations: list[tuple[str, str | None, str, tuple[str, ...]]] = [
        ("training_data_uri", manifest.training_data_uri, env.data_bucket, data_prefixes),
        ("validation_data_uri", manifest.validation_data_uri, env.data_bucket, data_prefixes),
        ("output_uri", manifest.output_uri, env.artifacts_bucket, (MODELS_PREFIX,)),
    ]
    if manifest.distillation is not None:
        expectations.append(
            (
                "distillation.invocation_logs_uri",
                manifest.distillation.invocation_logs_uri,
                env.data_bucket,
                data_prefixes,
            )
        )
    if manifest.backend == Backend.SAGEMAKER:
        expectations += [
            ("base_model", manifest.base_model, env.artifacts_bucket, (MODELS_PREFIX,)),
            ("source_dir_uri", manifest.source_dir_uri, env.artifacts_bucket, (MODELS_PREFIX,)),
        ]
    for field, uri, bucket, prefixes in expectations:
        if uri is None:
            continue
        match = S3_URI.match(uri)
        if match is None or match["bucket"] != bucket or not match["key"].startswith(prefixes):
            allowed = " or ".join(f"s3://{bucket}/{prefix}" for prefix in prefixes)
            raise ManifestError(
                f"{field}: expected a location under {allowed}, where the job's service role "
                f"has access (got {uri!r})"
            )


def report_key(job_id: str, role: str) -> str:
    return f"{EVALUATION_REPORTS_PREFIX}{job_id}/data-validation-{role}.json"


def validate_job_data(
    manifest: JobManifest,
    job_id: str,
    *,
    env: Environment,
    s3: Any,
    table: JobTable,
    validator: Validator | None = None,
) -> dict[str, Any]:
    """Validate the training (and validation) file; raise DatasetInvalidError on errors."""
    if validator is None:
        from finetuning.data import validate_path as validator
    table.update(job_id, stage=JobStage.VALIDATING.value, status=JobStatus.PREPROCESSING.value)
    check_locations(manifest, env)
    if manifest.backend == Backend.BEDROCK:
        # A Bedrock job runs in the platform's Region, which must be one the model is
        # customized in.
        refusal = region_refusal(manifest.base_model, env.region)
        if refusal:
            raise ManifestError(f"base_model: expected {refusal}, found {manifest.base_model!r}")
    # Refuse a serving mode this Region cannot provide before any job starts.
    mode = serving_mode(manifest, env.region)
    datasets = {}
    if manifest.training_data_uri:
        datasets["train"] = manifest.training_data_uri
    if manifest.validation_data_uri:
        datasets["validation"] = manifest.validation_data_uri
    # RFT and distillation records have their own rules (prompts with reference answers,
    # prompts only); supervised types keep the validator's default.
    options: dict[str, Any] = {}
    if manifest.customization_type in ("REINFORCEMENT_FINE_TUNING", "DISTILLATION"):
        options["customization"] = manifest.customization_type
    summary: dict[str, Any] = {
        "reports": {},
        "records": 0,
        "tokens": 0,
        "errors": 0,
        "warnings": 0,
    }
    failures = []
    for role, uri in datasets.items():
        with retryable_errors(f"validating {uri}"):
            report = validator(uri, manifest.base_model, role=role, s3_client=s3, **options)
        key = report_key(job_id, role)
        with retryable_errors(f"writing the validation report of {uri}"):
            s3.put_object(
                Bucket=env.evaluation_bucket,
                Key=key,
                Body=report.to_json().encode(),
                ContentType="application/json",
            )
        report_uri = f"s3://{env.evaluation_bucket}/{key}"
        summary["reports"][role] = report_uri
        summary["records"] += report.records
        summary["tokens"] += report.tokens
        summary["errors"] += report.errors
        summary["warnings"] += report.warnings
        if report.errors:
            failures.append(f"{report.summary()} (report: {report_uri})")
    table.update(job_id, validation=summary)
    if failures:
        raise DatasetInvalidError("; ".join(failures))
    # The state machine's ServingRequested choice routes on it.
    return {**json.loads(json.dumps(summary)), SERVING_MODE_KEY: mode.value}

"""Starting executions: from a manifest file in S3, from the CLI, from a pipeline.

The execution name is the job id, and Step Functions refuses a second execution of a
name it has seen (StartExecution: the same name and input as an open execution returns
that execution; otherwise ExecutionAlreadyExists, for 90 days), see
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
Duplicate S3 events, retried calls and a second submission of the same spec therefore all
end at the first execution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from finetuning.orchestration import notifications
from finetuning.orchestration.aws import error_code, retryable_errors
from finetuning.orchestration.errors import ManifestError
from finetuning.orchestration.manifest import MANIFEST_SUFFIXES, JobManifest, load_manifest
from finetuning.orchestration.workflow import execution_input
from finetuning.platform import JOB_MANIFESTS_PREFIX

# A job manifest is a few hundred bytes; anything this large is not one.
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Submission:
    job_id: str
    execution_arn: str
    started: bool
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "execution_arn": self.execution_arn,
            "started": self.started,
            "status": self.status,
        }


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:...:stateMachine:<machine>`` -> ``arn:...:execution:<machine>:<name>``."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def start_execution(
    sfn: Any,
    state_machine_arn: str,
    manifest: JobManifest,
    *,
    source: str,
    manifest_uri: str | None = None,
) -> Submission:
    payload = execution_input(manifest, source=source, manifest_uri=manifest_uri)
    name = manifest.job_id
    with retryable_errors(f"starting the execution of job {name}"):
        try:
            response = sfn.start_execution(
                stateMachineArn=state_machine_arn,
                name=name,
                input=json.dumps(payload, sort_keys=True),
            )
        except sfn.exceptions.ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            arn = execution_arn(state_machine_arn, name)
            status = sfn.describe_execution(executionArn=arn)["status"]
            return Submission(job_id=name, execution_arn=arn, started=False, status=status)
    return Submission(job_id=name, execution_arn=response["executionArn"], started=True)


def is_manifest_key(key: str) -> bool:
    return key.startswith(JOB_MANIFESTS_PREFIX) and key.lower().endswith(MANIFEST_SUFFIXES)


def read_manifest(s3: Any, bucket: str, key: str, version_id: str | None = None) -> JobManifest:
    """Read and validate ``s3://bucket/key`` (the version the event named, if it did)."""
    uri = f"s3://{bucket}/{key}"
    if not is_manifest_key(key):
        raise ManifestError(
            f"{uri}: expected a job manifest under {JOB_MANIFESTS_PREFIX} ending in "
            f"{', '.join(MANIFEST_SUFFIXES)}"
        )
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    with retryable_errors(f"reading {uri}"):
        response = s3.get_object(**request)
    if response.get("ContentLength", 0) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{uri}: {response['ContentLength']} bytes is too large for a manifest")
    return load_manifest(response["Body"].read(MAX_MANIFEST_BYTES + 1), source=uri)


def submit_manifest_object(
    *,
    s3: Any,
    sfn: Any,
    sns: Any,
    state_machine_arn: str,
    topic_arn: str,
    resource_prefix: str,
    bucket: str,
    key: str,
    version_id: str | None = None,
) -> dict[str, Any]:
    """Start the job a manifest file describes; a manifest that cannot run is reported to
    the owners by SNS (it is a user's mistake, not a fault to retry)."""
    uri = f"s3://{bucket}/{key}"
    try:
        manifest = read_manifest(s3, bucket, key, version_id)
    except ManifestError as exc:
        message = notifications.manifest_rejected(resource_prefix, uri, str(exc))
        notifications.publish(sns, topic_arn, message)
        return {"rejected": True, "manifest_uri": uri, "reason": str(exc)}
    submission = start_execution(sfn, state_machine_arn, manifest, source="s3", manifest_uri=uri)
    return {"rejected": False, "manifest_uri": uri, **submission.to_dict()}

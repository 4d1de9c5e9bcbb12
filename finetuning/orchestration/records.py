"""The job table: one item per platform job, whatever its backend.

Key ``job_id`` (the idempotent id from :mod:`names`). Two indexes serve listings newest
first: ``by-status`` (``status``, ``created_at``) and ``by-created`` (``record_type``,
``created_at``); jobs are few enough per environment that one ``record_type`` partition
stays far below DynamoDB's per-partition limits. docs/orchestration.md lists the attributes.

Terminal statuses are final: every write that could race with a late event or a retried
task is conditional, and :meth:`JobTable.finish` reports whether *this* call ended the job,
so that notifications and cleanup run once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from finetuning.aws_jobs.job_status import JobStatus

RECORD_TYPE = "job"
STATUS_INDEX = "by-status"
CREATED_INDEX = "by-created"
MAX_PAGE = 100


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobStage(StrEnum):
    """A job's stage (the job table's ``stage`` attribute): where the workflow is, finer than
    the status, for people watching a run."""

    REGISTERED = "registered"
    VALIDATING = "validating"
    STARTING = "starting"
    TRAINING = "training"
    COLLECTING = "collecting"
    EVALUATING = "evaluating"
    PROVISIONING = "provisioning"
    DONE = "done"


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a Z, to the second: sorts as text, reads in the console."""
    return (moment or utc_now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class JobRecord:
    job_id: str
    job_name: str
    backend: str
    base_model: str
    spec: dict[str, Any]
    status: str = JobStatus.QUEUED.value
    stage: str = JobStage.REGISTERED.value
    source: str = "unknown"
    execution_arn: str | None = None
    manifest_uri: str | None = None
    created_at: str = field(default_factory=timestamp)
    updated_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    backend_job_arn: str | None = None
    failure: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    task_token: str | None = None

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None}
        item["record_type"] = RECORD_TYPE
        item.setdefault("updated_at", item["created_at"])
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in item.items() if k in known})

    def summary(self) -> dict[str, Any]:
        """What ``finetune job list --via-platform`` shows (no spec, no task token)."""
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "backend": self.backend,
            "status": self.status,
            "stage": self.stage,
            "base_model": self.base_model,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "backend_job_arn": self.backend_job_arn,
            "failure": self.failure,
            "metrics": self.metrics,
            "cost": self.cost,
        }


class JobTable:
    """Reads and writes job records through a boto3 DynamoDB client."""

    def __init__(self, client: Any, table_name: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._client = client
        self._table = table_name
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # -- reads ---------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return JobRecord.from_item(self._load(item)) if item else None

    def require(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise LookupError(f"job {job_id!r} is not in the job table {self._table}")
        return record

    def list(
        self, *, status: str | None = None, limit: int = 50, next_token: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; ``next_token`` continues where the previous page stopped."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: expected 1-{MAX_PAGE}, got {limit}")
        if status is not None:
            index, key, value = STATUS_INDEX, "status", JobStatus(status).value
        else:
            index, key, value = CREATED_INDEX, "record_type", RECORD_TYPE
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": {":v": {"S": value}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if next_token:
            request["ExclusiveStartKey"] = _decode_token(next_token)
        response = self._client.query(**request)
        records = [JobRecord.from_item(self._load(item)) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return records, _encode_token(last) if last else None

    # -- writes --------------------------------------------------------------------------

    def register(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Create the record unless the job id is known; returns (record, created)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._dump(record.to_item()),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return self.require(record.job_id), False
        return record, True

    def update(self, job_id: str, **attributes: Any) -> bool:
        """Set attributes on a job that has not ended; False if it has (or is unknown)."""
        return self._update(job_id, attributes, only_if_active=True)

    def finish(self, job_id: str, status: JobStatus, **attributes: Any) -> bool:
        """Move a job to a terminal status once; True only for the call that did it."""
        if not status.is_terminal:
            raise ValueError(f"status {status.value!r} is not terminal")
        attributes = {
            "status": status.value,
            "ended_at": timestamp(),
            "task_token": None,
            **attributes,
        }
        return self._update(job_id, attributes, only_if_active=True)

    def annotate(self, job_id: str, **attributes: Any) -> None:
        """Set attributes whatever the status (serving and cleanup after the job ended)."""
        self._update(job_id, attributes, only_if_active=False)

    def _update(self, job_id: str, attributes: Mapping[str, Any], *, only_if_active: bool) -> bool:
        attributes = {"updated_at": timestamp(), **attributes}
        sets, removes = [], []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            if value is None:
                removes.append(f"#a{index}")
            else:
                sets.append(f"#a{index} = :v{index}")
                values[f":v{index}"] = self._serializer.serialize(_to_dynamo(value))
        expression = " ".join(
            part
            for part in (
                f"SET {', '.join(sets)}" if sets else "",
                f"REMOVE {', '.join(removes)}" if removes else "",
            )
            if part
        )
        condition = "attribute_exists(job_id)"
        if only_if_active:
            names["#status"] = "status"
            terminal = sorted(s.value for s in TERMINAL)
            for index, value in enumerate(terminal):
                values[f":t{index}"] = {"S": value}
            condition += (
                f" AND NOT #status IN ({', '.join(f':t{i}' for i in range(len(terminal)))})"
            )
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"job_id": {"S": job_id}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._client.update_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # -- (de)serialisation ---------------------------------------------------------------

    def _dump(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(_to_dynamo(v)) for k, v in item.items()}

    def _load(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _from_dynamo(self._deserializer.deserialize(v)) for k, v in item.items()}


def _to_dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; floats go through their shortest repr."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_from_dynamo(v) for v in value]
    return value


def _encode_token(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, json.JSONDecodeError):
        raise ValueError(f"next_token {token!r} is not a token this table returned") from None
    if not isinstance(key, dict):
        raise ValueError(f"next_token {token!r} is not a token this table returned")
    return key

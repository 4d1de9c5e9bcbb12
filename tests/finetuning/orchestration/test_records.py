"""The job table against moto DynamoDB: idempotent registration, final statuses, listings."""

from __future__ import annotations

import pytest

from finetuning.orchestration.records import JobRecord, JobStatus, JobTable
from tests.support.platform_fakes import JOB_TABLE, Platform


def record(job_id: str, created_at: str, **fields: object) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        job_name=job_id,
        backend="bedrock",
        base_model="amazon.nova-lite-v1:0:300k",
        spec={"job_name": job_id, "hyperparameters": {"learningRate": 1e-05}},
        created_at=created_at,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def table(platform: Platform) -> JobTable:
    return JobTable(platform.dynamodb, JOB_TABLE)


def test_register_is_idempotent_and_round_trips_numbers(table: JobTable) -> None:
    _, created = table.register(record("a-1", "2026-01-01T00:00:00Z"))
    again, created_again = table.register(record("a-1", "2026-01-02T00:00:00Z"))
    assert created and not created_again
    assert again.created_at == "2026-01-01T00:00:00Z"  # the first registration wins
    stored = table.require("a-1")
    assert stored.spec["hyperparameters"]["learningRate"] == pytest.approx(1e-05)
    assert isinstance(stored.spec["hyperparameters"]["learningRate"], float)
    assert stored.status == JobStatus.QUEUED


def test_finish_happens_once_and_blocks_later_updates(table: JobTable) -> None:
    table.register(record("b-1", "2026-01-01T00:00:00Z"))
    assert table.update("b-1", stage="training", task_token="token-1", metrics={"loss": 0.5})
    assert table.finish("b-1", JobStatus.FAILED, failure={"error": "JobFailedError"})
    assert not table.finish("b-1", JobStatus.COMPLETED)  # a late success cannot overwrite
    assert not table.update("b-1", stage="collecting")
    table.annotate("b-1", serving={"deleted_at": "2026-01-03T00:00:00Z"})  # always allowed
    stored = table.require("b-1")
    assert stored.status == JobStatus.FAILED
    assert stored.task_token is None  # the token is cleared when the job ends
    assert stored.stage == "training"
    assert stored.metrics == {"loss": 0.5}
    assert stored.serving == {"deleted_at": "2026-01-03T00:00:00Z"}
    assert not table.update("unknown", stage="x")
    with pytest.raises(ValueError, match="not terminal"):
        table.finish("b-1", JobStatus.RUNNING)


def test_list_newest_first_with_pages_and_status_filter(table: JobTable) -> None:
    for day in range(1, 6):
        table.register(record(f"job-{day}", f"2026-01-0{day}T00:00:00Z"))
    table.finish("job-2", JobStatus.COMPLETED)
    table.finish("job-4", JobStatus.COMPLETED)
    page, token = table.list(limit=2)
    assert [r.job_id for r in page] == ["job-5", "job-4"] and token
    rest, last = table.list(limit=10, next_token=token)
    assert [r.job_id for r in rest] == ["job-3", "job-2", "job-1"] and last is None
    done, _ = table.list(status="completed")
    assert [r.job_id for r in done] == ["job-4", "job-2"]
    assert {r.job_id for r in table.list(status="queued")[0]} == {"job-1", "job-3", "job-5"}
    with pytest.raises(ValueError, match="limit"):
        table.list(limit=0)
    with pytest.raises(ValueError, match="not a token this table returned"):
        table.list(next_token="%%%")
    summary = page[0].summary()
    assert "spec" not in summary and "task_token" not in summary

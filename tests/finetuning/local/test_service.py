"""The local job service's queue, state, cancel and recovery, driven by a stand-in train.py.

The stand-in (``conftest.STAND_IN``) has train.py's flags and output lines and finishes in a
fraction of a second, so these tests exercise the service, not training; ``test_local_train``
runs the real train.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetuning.errors import InvalidJobConfigError, JobNotFoundError, ModelNotFoundError
from finetuning.jobs import JobStatus
from finetuning.local.service import LocalJobService
from finetuning.local.store import JobStore
from tests.support.library import write_jsonl

RECORD = {"prompt": "2+2=", "completion": "4"}


def make_service(home: Path, script: Path, **kwargs) -> LocalJobService:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("cancel_grace_seconds", 2.0)
    return LocalJobService(home, train_script=script, **kwargs)


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def submit(service: LocalJobService, data: Path, base: Path, name: str = "job", **kwargs):
    return service.submit(job_name=name, base_model=str(base), train_file=str(data), **kwargs)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", [RECORD] * 4)


def test_a_job_runs_to_completion_with_progress_metrics_and_a_registered_model(
    tmp_path, stand_in_script, base_model_dir, data
):
    with make_service(tmp_path / "home", stand_in_script) as service:
        queued = submit(service, data, base_model_dir, model_name="my-model")
        assert queued.status is JobStatus.QUEUED
        assert queued.job_arn.startswith("local-")
        done = wait_until(lambda: (j := service.get(queued.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.COMPLETED, done.failure_reason
    assert done.progress_percentage == 100.0
    assert (done.current_step, done.total_steps) == (4, 4)
    assert done.training_metrics["train_loss"] == pytest.approx(0.5)
    assert done.model_id == "my-model"
    model = service.registry.get("my-model")
    assert model.path == Path(done.output_uri).resolve()
    assert (model.path / "finished").is_file()
    assert model.base_model == str(base_model_dir)
    log = service.log_path(done.job_arn).read_text()
    assert "progress: step=4/4" in log and "--method lora" in log


def test_state_is_shared_with_other_processes_and_survives_a_new_service_object(
    tmp_path, stand_in_script, base_model_dir, data
):
    home = tmp_path / "home"
    first = make_service(home, stand_in_script)
    job = submit(first, data, base_model_dir)
    # A second object (as another process would open it) sees the queued job.
    second = make_service(home, stand_in_script)
    assert second.get(job.job_arn).status is JobStatus.QUEUED
    # And a child process reading the same database does too.
    code = (
        "import sys; from finetuning.local.service import LocalJobService;"
        f"print(LocalJobService({str(home)!r}).get({job.job_arn!r}).status.value)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "queued", out.stderr


def test_jobs_run_in_submission_order_one_at_a_time_by_default(
    tmp_path, stand_in_script, base_model_dir, data
):
    service = make_service(tmp_path / "home", stand_in_script)
    jobs = [submit(service, data, base_model_dir, name=f"job-{i}") for i in range(3)]
    with service:
        finished = wait_until(
            lambda: (
                all(
                    (r := [service.get(j.job_arn) for j in jobs])[i].status.is_terminal
                    for i in range(3)
                )
                and r
            )
        )
    assert [job.status for job in finished] == [JobStatus.COMPLETED] * 3
    starts = [float((Path(j.output_uri) / "started").read_text()) for j in finished]
    ends = [float((Path(j.output_uri) / "finished").read_text()) for j in finished]
    assert starts == sorted(starts), "jobs started out of submission order"
    # Limit 1: each job starts after the previous one finished.
    assert all(ends[i] <= starts[i + 1] for i in range(2))


def test_the_concurrency_limit_holds(tmp_path, stand_in_script, base_model_dir, monkeypatch):
    hang = write_jsonl(tmp_path / "hang.jsonl", [{**RECORD, "stand_in": "hang"}])
    service = make_service(tmp_path / "home", stand_in_script, max_concurrent_jobs=2)
    jobs = [submit(service, hang, base_model_dir, name=f"hang-{i}") for i in range(3)]
    with service:
        wait_until(
            lambda: sum(service.get(j.job_arn).status is JobStatus.RUNNING for j in jobs) == 2
        )
        time.sleep(0.5)  # time enough for a third to start, were the limit broken
        statuses = [service.get(j.job_arn).status for j in jobs]
        assert statuses.count(JobStatus.RUNNING) == 2
        assert statuses[2] is JobStatus.QUEUED
        for job in jobs:
            service.cancel(job.job_arn)
        wait_until(lambda: all(service.get(j.job_arn).status.is_terminal for j in jobs))
    assert {service.get(j.job_arn).status for j in jobs} == {JobStatus.CANCELLED}, [
        service.get(j.job_arn).failure_reason for j in jobs
    ]


def test_cancel_a_queued_job_at_once(tmp_path, stand_in_script, base_model_dir, data):
    service = make_service(tmp_path / "home", stand_in_script)
    job = submit(service, data, base_model_dir)
    assert service.cancel(job.job_arn) is True
    cancelled = service.get(job.job_arn)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.end_time is not None
    with service:
        time.sleep(0.3)
    assert service.get(job.job_arn).status is JobStatus.CANCELLED
    assert not Path(job.output_uri, "started").exists()


def test_cancel_a_running_job_gracefully_with_sigterm(tmp_path, stand_in_script, base_model_dir):
    hang = write_jsonl(tmp_path / "hang.jsonl", [{**RECORD, "stand_in": "hang"}])
    with make_service(tmp_path / "home", stand_in_script) as service:
        job = submit(service, hang, base_model_dir)
        wait_until(lambda: (service.get(job.job_arn).current_step or 0) >= 2)
        # As `finetune local cancel` does from another process: through the database.
        JobStore(service.home / "state.db").request_cancel(job.job_arn)
        done = wait_until(lambda: (j := service.get(job.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.CANCELLED
    assert "SIGTERM received" in service.log_path(job.job_arn).read_text()
    assert not service.registry.exists(job.job_arn)


def test_cancel_forces_sigkill_after_the_grace_period(tmp_path, stand_in_script, base_model_dir):
    stubborn = write_jsonl(tmp_path / "stubborn.jsonl", [{**RECORD, "stand_in": "stubborn"}])
    with make_service(tmp_path / "home", stand_in_script, cancel_grace_seconds=0.5) as service:
        job = submit(service, stubborn, base_model_dir)
        wait_until(lambda: (service.get(job.job_arn).current_step or 0) >= 1)
        pid = service.store.get_job(job.job_arn).pid
        started = time.monotonic()
        service.cancel(job.job_arn)
        done = wait_until(lambda: (j := service.get(job.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.CANCELLED
    assert time.monotonic() - started >= 0.5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_base_model_is_refused_at_submission(tmp_path, stand_in_script, data):
    service = make_service(tmp_path / "home", stand_in_script)
    with pytest.raises(ModelNotFoundError) as error:
        submit(service, data, tmp_path / "no-such-model")
    assert error.value.field == "base_model"
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        service.submit(job_name="j", base_model="nobody/no-such-model", train_file=str(data))
    assert service.list().jobs == []


def test_a_base_model_deleted_after_submission_fails_the_job(
    tmp_path, stand_in_script, base_model_dir, data
):
    service = make_service(tmp_path / "home", stand_in_script)
    job = submit(service, data, base_model_dir)
    (base_model_dir / "config.json").unlink()
    with service:
        done = wait_until(lambda: (j := service.get(job.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.FAILED
    assert done.failure_reason.startswith("preprocessing: base_model")
    assert "no config.json" in done.failure_reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"prompt": "a", "completion": "b"}\nnot json at all\n',
            "train.jsonl: line 2: not valid JSON",
        ),
        (b'["a list", "not an object"]\n', "train.jsonl: line 1: expected a JSON object"),
        (b"\n\n", "train.jsonl: no records"),
    ],
)
def test_a_bad_dataset_fails_in_preprocessing_naming_file_and_line(
    tmp_path, stand_in_script, base_model_dir, content, reason
):
    bad = tmp_path / "train.jsonl"
    bad.write_bytes(content)
    with make_service(tmp_path / "home", stand_in_script) as service:
        job = submit(service, bad, base_model_dir)
        done = wait_until(lambda: (j := service.get(job.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.FAILED
    assert done.failure_reason.startswith("preprocessing:")
    assert reason in done.failure_reason


def test_a_crash_during_training_fails_the_job_with_the_scripts_error_line(
    tmp_path, stand_in_script, base_model_dir
):
    crash = write_jsonl(tmp_path / "crash.jsonl", [{**RECORD, "stand_in": "crash"}])
    with make_service(tmp_path / "home", stand_in_script) as service:
        job = submit(service, crash, base_model_dir)
        done = wait_until(lambda: (j := service.get(job.job_arn)).status.is_terminal and j)
    assert done.status is JobStatus.FAILED
    assert done.failure_reason == (
        "training: train.py exited with code 1: RuntimeError: simulated crash in the training loop"
    )
    assert done.current_step == 1


def test_a_job_running_when_its_service_died_is_marked_failed_on_restart(
    tmp_path, stand_in_script, base_model_dir
):
    """Kill a serving process with SIGKILL mid-job; the next service marks the job failed
    and stops the orphaned training process."""
    home = tmp_path / "home"
    hang = write_jsonl(tmp_path / "hang.jsonl", [{**RECORD, "stand_in": "hang"}])
    job = submit(make_service(home, stand_in_script), hang, base_model_dir)
    code = (
        "from pathlib import Path; from finetuning.local.service import LocalJobService;"
        f"LocalJobService({str(home)!r}, train_script=Path({str(stand_in_script)!r}),"
        " poll_interval=0.05).serve_forever()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        store = JobStore(home / "state.db")
        wait_until(lambda: (store.get_job(job.job_arn).current_step or 0) >= 2)
        training_pid = store.get_job(job.job_arn).pid
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert store.get_job(job.job_arn).status is JobStatus.RUNNING  # nobody said otherwise
    os.kill(training_pid, 0)  # the orphan is still training

    restarted = make_service(home, stand_in_script)
    with restarted:
        pass
    failed = restarted.get(job.job_arn)
    assert failed.status is JobStatus.FAILED
    assert f"(pid {server.pid} on {socket.gethostname()}) stopped while this job was running" in (
        failed.failure_reason
    )
    wait_until(lambda: not _alive(training_pid), timeout=5)
    assert restarted.store.services() == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_stopping_a_service_fails_its_running_jobs_with_a_reason(
    tmp_path, stand_in_script, base_model_dir
):
    hang = write_jsonl(tmp_path / "hang.jsonl", [{**RECORD, "stand_in": "hang"}])
    service = make_service(tmp_path / "home", stand_in_script).start()
    job = submit(service, hang, base_model_dir)
    wait_until(lambda: service.get(job.job_arn).status is JobStatus.RUNNING)
    service.stop()
    stopped = service.get(job.job_arn)
    assert stopped.status is JobStatus.FAILED
    assert stopped.failure_reason == "the local job service stopped before the job finished"


def test_list_filters_by_status_and_pages_newest_first(
    tmp_path, stand_in_script, base_model_dir, data
):
    service = make_service(tmp_path / "home", stand_in_script)
    jobs = [submit(service, data, base_model_dir, name=f"job-{i}") for i in range(5)]
    service.cancel(jobs[1].job_arn)
    first = service.list(limit=2)
    assert [j.job_name for j in first.jobs] == ["job-4", "job-3"]
    second = service.list(limit=2, next_token=first.next_token)
    assert [j.job_name for j in second.jobs] == ["job-2", "job-1"]
    third = service.list(limit=2, next_token=second.next_token)
    assert [j.job_name for j in third.jobs] == ["job-0"] and third.next_token is None
    assert [j.job_name for j in service.list("cancelled").jobs] == ["job-1"]
    assert len(service.list(JobStatus.QUEUED).jobs) == 4


def test_unknown_jobs_and_reused_model_names_are_errors(
    tmp_path, stand_in_script, base_model_dir, data
):
    service = make_service(tmp_path / "home", stand_in_script)
    with pytest.raises(JobNotFoundError):
        service.get("local-000000000000")
    with pytest.raises(JobNotFoundError):
        service.cancel("local-000000000000")
    service.registry.register("taken", base_model_dir)
    with pytest.raises(InvalidJobConfigError, match="model_name"):
        submit(service, data, base_model_dir, model_name="taken")
    with pytest.raises(InvalidJobConfigError, match="max_concurrent_jobs"):
        LocalJobService(tmp_path / "other", max_concurrent_jobs=0)


def test_a_registered_model_is_a_base_model(tmp_path, stand_in_script, base_model_dir, data):
    service = make_service(tmp_path / "home", stand_in_script)
    service.registry.register("tuned", base_model_dir, base_model="org/base")
    assert service.registry.resolve_base_model("tuned") == str(base_model_dir.resolve())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    service.registry.register("adapter-only", adapter)
    with pytest.raises(ModelNotFoundError, match="merge_adapter"):
        service.registry.resolve_base_model("adapter-only")
    (adapter / "merged").mkdir()
    (adapter / "merged" / "config.json").write_text("{}")
    assert service.registry.resolve_base_model("adapter-only") == str(adapter.resolve() / "merged")


def test_the_local_backend_checks_model_and_data_before_writing_the_split(
    tmp_path, stand_in_script, fake_aws_credentials
):
    from finetuning.service import ModelFinetuningService

    data = write_jsonl(tmp_path / "train.jsonl", [RECORD] * 5)
    service = ModelFinetuningService(
        region="us-east-1",
        platform=None,
        local_service=make_service(tmp_path / "home", stand_in_script),
    )
    config = {"backend": "local", "training_data_uri": str(data), "job_name": "j"}
    with pytest.raises(ModelNotFoundError):
        service.create_finetuning_job({**config, "base_model": str(tmp_path / "missing")})
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["train.jsonl"]  # nothing split
    with pytest.raises(InvalidJobConfigError) as error:
        service.create_finetuning_job(
            {**config, "base_model": "org/model", "training_data_uri": str(tmp_path / "none")}
        )
    assert error.value.field == "training_data_uri"

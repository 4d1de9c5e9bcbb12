"""The local backend with the real ``training_scripts/train.py`` on a tiny random Llama.

One service (three jobs at a time) runs four jobs submitted in order: a good LoRA run, one on a
dataset train.py rejects, one whose weights are corrupt (train.py crashes loading them) and a
long one cancelled once it trains; ``test_real_train_py_jobs`` then checks each. Each train.py
start costs seconds of imports, so the jobs share one run, in one test function (an xdist
group would not keep a module fixture on one worker here: pytest-xdist 3.8 under pytest 9
ignores ``xdist_group``).

Two tests are ``slow`` (``python -m pytest tests/finetuning/local/test_train_jobs.py -m slow``): a
service killed mid-training, then restarted; and ``finetune job create --backend local`` run
end to end by the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetuning.errors import ModelNotFoundError
from finetuning.jobs import JobStatus
from finetuning.local.service import LocalJobService
from finetuning.service import ModelFinetuningService
from tests.support.library import write_jsonl

REPOSITORY = Path(__file__).resolve().parents[3]
RECORDS = [{"prompt": f"What is {i} plus 1?", "completion": f" {i + 1}"} for i in range(12)]
FAST = {"max_steps": 3, "logging_steps": 1, "save_steps": 1000, "per_device_train_batch_size": 4}


def wait_until(condition, timeout: float = 300.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from finetuning.testing import make_tiny_llama

    texts = [f"{r['prompt']}{r['completion']}" for r in RECORDS]
    return make_tiny_llama(tmp_path_factory.mktemp("model") / "tiny-llama", texts=texts)


def run_jobs(work: Path, tiny_model: Path) -> tuple[LocalJobService, dict[str, str]]:
    """Submit the four jobs to one service and run them to the end."""
    good = write_jsonl(work / "train.jsonl", RECORDS)
    unknown_format = write_jsonl(work / "unknown.jsonl", [{"question": "?", "reply": "!"}] * 4)
    corrupt = work / "corrupt-model"
    shutil.copytree(tiny_model, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"this is not a safetensors file")

    local = LocalJobService(
        work / "home", max_concurrent_jobs=3, poll_interval=0.1, cancel_grace_seconds=60
    )
    service = ModelFinetuningService(region="us-east-1", platform=None, local_service=local)

    def submit(name: str, data: Path, model: Path, **hyperparameters) -> str:
        result = service.create_finetuning_job(
            {
                "backend": "local",
                "job_name": name,
                "model_name": name,
                "base_model": str(model),
                "training_data_uri": str(data),
                "validation_split": 0.25 if name == "good" else None,
                "hyperparameters": {**FAST, **hyperparameters},
            }
        )
        return result.job_arn

    ids = {
        "good": submit("good", good, tiny_model, epochCount=1, learningRate=2e-4),
        "bad-data": submit("bad-data", unknown_format, tiny_model),
        "crash": submit("crash", good, corrupt),
        "cancel": submit("cancel", good, tiny_model, max_steps=100000),
    }
    local.start()
    try:
        wait_until(lambda: (local.get(ids["cancel"]).current_step or 0) >= 1)
        local.cancel(ids["cancel"])
        wait_until(lambda: all(local.get(i).status.is_terminal for i in ids.values()))
    finally:
        local.stop()
    return local, ids


def check_a_lora_run_completes_with_progress_metrics_and_a_registered_model(
    local: LocalJobService, ids: dict[str, str]
) -> None:
    job = local.get(ids["good"])
    assert job.status is JobStatus.COMPLETED, job.failure_reason
    assert (job.current_step, job.total_steps, job.progress_percentage) == (3, 3, 100.0)
    assert job.training_metrics["train_loss"] > 0
    assert "eval_loss" in job.validation_metrics  # the automatic split gave validation data
    assert job.hyperparameters["learning_rate"] == "0.0002"
    output = Path(job.output_uri)
    assert (output / "adapter_config.json").is_file() and (output / "metrics.json").is_file()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["global_step"] == 3
    model = local.registry.get("good")
    assert model.path == output.resolve() and model.is_adapter and model.method == "lora"
    assert (output / "training_metrics.csv").read_text().startswith("step,epoch,loss")


def check_a_dataset_train_py_rejects_fails_with_its_error_line(
    local: LocalJobService, ids: dict[str, str]
) -> None:
    job = local.get(ids["bad-data"])
    assert job.status is JobStatus.FAILED
    assert job.failure_reason.startswith("training: train.py exited with code 2: ")
    assert "unknown.jsonl" in job.failure_reason


def check_a_crash_in_train_py_fails_the_job(local: LocalJobService, ids: dict[str, str]) -> None:
    job = local.get(ids["crash"])
    assert job.status is JobStatus.FAILED
    assert job.failure_reason.startswith("training: train.py exited with code 1: ")
    assert not local.registry.exists("crash")


def check_cancel_stops_training_gracefully_with_a_checkpoint(
    local: LocalJobService, ids: dict[str, str]
) -> None:
    job = local.get(ids["cancel"])
    assert job.status is JobStatus.CANCELLED
    log = local.log_path(ids["cancel"]).read_text()
    assert "interrupted: SIGTERM at step" in log
    assert any((Path(job.output_uri) / "checkpoints").glob("checkpoint-*"))
    assert not local.registry.exists("cancel")


def check_jobs_ran_in_submission_order_never_more_than_three_at_once(
    local: LocalJobService, ids: dict[str, str]
) -> None:
    rows = [local.store.get_job(ids[name]) for name in ("good", "bad-data", "crash", "cancel")]
    starts = [row.started_at for row in rows]
    assert starts == sorted(starts)
    for row in rows:
        running = [o for o in rows if o.started_at <= row.started_at < o.ended_at]
        assert len(running) <= 3, [r.name for r in running]
    # The fourth job waited for a free slot.
    assert rows[3].started_at >= min(row.ended_at for row in rows[:3])


def check_a_missing_base_model_is_refused(local: LocalJobService, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "more.jsonl", RECORDS)
    with pytest.raises(ModelNotFoundError):
        local.submit(job_name="x", base_model=str(tmp_path / "missing"), train_file=str(data))


def test_real_train_py_jobs(tmp_path, tiny_model):
    local, ids = run_jobs(tmp_path, tiny_model)
    check_a_lora_run_completes_with_progress_metrics_and_a_registered_model(local, ids)
    check_a_dataset_train_py_rejects_fails_with_its_error_line(local, ids)
    check_a_crash_in_train_py_fails_the_job(local, ids)
    check_cancel_stops_training_gracefully_with_a_checkpoint(local, ids)
    check_jobs_ran_in_submission_order_never_more_than_three_at_once(local, ids)
    check_a_missing_base_model_is_refused(local, tmp_path)


@pytest.mark.slow
def test_job_create_backend_local_runs_the_job_in_the_cli(tiny_model, tmp_path, capsys):
    """``finetune job create --backend local`` with no service running runs it in-process."""
    from finetuning.cli import main

    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    details = tmp_path / "job.json"
    args = [
        "job", "create", "--backend", "local", "--training-data-uri", str(data),
        "--base-model", str(tiny_model), "--job-name", "cli-run", "--model-name", "cli-run",
        "--hyperparameter", "max_steps=2", "--hyperparameter", "logging_steps=1",
        "--no-validation-split", "--polling-interval", "1", "--output-file", str(details),
        "--local-home", str(tmp_path / "home"),
    ]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "running" in captured.err and "step 2/2" in captured.err
    saved = json.loads(details.read_text())
    assert saved["status"] == "completed" and saved["model_id"] == "cli-run"


@pytest.mark.slow
def test_a_service_killed_mid_training_leaves_a_failed_job_after_restart(tiny_model, tmp_path):
    home = tmp_path / "home"
    data = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    local = LocalJobService(home)
    job = local.submit(
        job_name="orphan",
        base_model=str(tiny_model),
        train_file=str(data),
        hyperparameters={"max_steps": "100000", "logging_steps": "1"},
    )
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    server = subprocess.Popen(
        [sys.executable, "-m", "finetuning.cli", "local", "serve", "--local-home", str(home)],
        env=env,
    )
    try:
        wait_until(lambda: (local.get(job.job_arn).current_step or 0) >= 1)
        pid = local.store.get_job(job.job_arn).pid
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    restarted = LocalJobService(home, cancel_grace_seconds=60).start()
    restarted.stop()
    failed = restarted.get(job.job_arn)
    assert failed.status is JobStatus.FAILED
    assert "stopped while this job was running" in failed.failure_reason
    wait_until(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ),
        timeout=60,
    )

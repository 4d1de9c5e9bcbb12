"""Concurrency, rate limiting, retries on throttling and resuming from the journal."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError

from finetuning.evaluation.runner import (
    EvaluationAborted,
    JournalMismatch,
    RateLimiter,
    ResultJournal,
    RetryPolicy,
    RunOptions,
    fingerprint,
    is_fatal,
    is_retryable,
    run_target,
)
from finetuning.evaluation.samples import EvaluationSample, TextPart, Turn
from finetuning.evaluation.targets import Generation, InferenceParameters

PARAMS = InferenceParameters(max_tokens=16)


def client_error(code: str, message: str = "x") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Converse")


def samples(n: int) -> list[EvaluationSample]:
    return [
        EvaluationSample(f"t:{i}", (Turn("user", (TextPart(f"q{i}"),)),), reference=f"a{i}")
        for i in range(n)
    ]


class ScriptedTarget:
    """Answers 'a<i>'; raises the scripted errors for a sample's first calls."""

    target_type = "fake"

    def __init__(self, errors: dict[str, list[Exception]] | None = None, model_id: str = "m"):
        self.model_id = model_id
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def validate(self, params, *, has_images):
        pass

    def generate(self, sample, params):
        with self._lock:
            self.calls.append(sample.sample_id)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            pending = self.errors.get(sample.sample_id)
            if pending:
                raise pending.pop(0)
            return Generation(f"a{sample.sample_id.split(':')[1]}", 0.01, 10, 2, "end_turn")
        finally:
            with self._lock:
                self.in_flight -= 1


def no_progress(**kwargs) -> RunOptions:
    return RunOptions(progress=False, seed=7, **kwargs)


def test_throttling_is_retried_with_backoff_then_succeeds():
    target = ScriptedTarget(
        {"t:1": [client_error("ThrottlingException"), client_error("ServiceUnavailableException")]}
    )
    delays: list[float] = []
    results = run_target(
        target,
        samples(3),
        PARAMS,
        None,
        no_progress(retry=RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=30.0)),
        sleep=delays.append,
    )
    assert [r["status"] for r in results] == ["success"] * 3
    assert results[1]["attempts"] == 3
    assert results[1]["response_text"] == "a1"
    # full jitter: attempt 0 waits in [0, 1], attempt 1 in [0, 2]
    assert len(delays) == 2
    assert 0 <= delays[0] <= 1 and 0 <= delays[1] <= 2


def test_retries_give_up_after_max_attempts():
    target = ScriptedTarget({"t:0": [client_error("ThrottlingException")] * 5})
    (result,) = run_target(
        target,
        samples(1),
        PARAMS,
        None,
        no_progress(retry=RetryPolicy(max_attempts=3)),
        sleep=lambda s: None,
    )
    assert result["status"] == "error"
    assert result["error_code"] == "ThrottlingException"
    assert result["attempts"] == 3
    assert target.calls == ["t:0"] * 3


def test_sample_errors_are_recorded_without_retry():
    target = ScriptedTarget({"t:0": [client_error("ValidationException", "image too large")]})
    (result, ok) = run_target(target, samples(2), PARAMS, None, no_progress(), sleep=lambda s: 0)
    assert result == {
        "sample_id": "t:0",
        "status": "error",
        "error_code": "ValidationException",
        "error": "An error occurred (ValidationException) when calling the Converse operation: "
        "image too large",
        "attempts": 1,
    }
    assert ok["status"] == "success"


def test_fatal_errors_stop_the_run():
    target = ScriptedTarget({"t:0": [client_error("AccessDeniedException", "no access")]})
    with pytest.raises(EvaluationAborted, match="m: AccessDeniedException"):
        run_target(target, samples(5), PARAMS, None, no_progress(concurrency=1))
    assert target.calls == ["t:0"]


def test_error_classification():
    assert is_retryable(client_error("ModelNotReadyException"))
    assert is_retryable(client_error("InternalFailure"))
    assert not is_retryable(client_error("ValidationException"))
    assert is_fatal(client_error("ResourceNotFoundException"))
    assert is_fatal(client_error("ValidationError", "Endpoint my-ep of account 1 not found."))
    assert not is_fatal(client_error("ValidationError", "Input too long"))
    assert not is_fatal(client_error("ModelError"))


def test_concurrency_is_bounded_and_order_kept():
    target = ScriptedTarget()
    results = run_target(target, samples(20), PARAMS, None, no_progress(concurrency=3))
    assert [r["sample_id"] for r in results] == [f"t:{i}" for i in range(20)]
    assert 1 <= target.max_in_flight <= 3


def test_rate_limiter_spaces_calls_evenly():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    # three starts at 100.0, 100.25, 100.5 while the clock stands still
    assert slept == pytest.approx([0.25, 0.5])
    with pytest.raises(ValueError, match="expected a value > 0"):
        RateLimiter(0)


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    journal = ResultJournal(tmp_path / "results.json.partial.jsonl")
    data = samples(6)
    # the first run dies on sample 3 (credentials expired) after 0-2 were answered
    first = ScriptedTarget({"t:3": [client_error("ExpiredTokenException")]})
    with pytest.raises(EvaluationAborted):
        run_target(first, data, PARAMS, journal, no_progress(concurrency=1))
    assert first.calls == ["t:0", "t:1", "t:2", "t:3"]
    lines = journal.path.read_text().splitlines()
    assert json.loads(lines[0])["journal"]["model_id"] == "m"
    assert [json.loads(line)["sample_id"] for line in lines[1:]] == ["t:0", "t:1", "t:2"]

    second = ScriptedTarget()
    results = run_target(second, data, PARAMS, journal, no_progress(concurrency=2))
    assert sorted(second.calls) == ["t:3", "t:4", "t:5"]
    assert [r["response_text"] for r in results] == [f"a{i}" for i in range(6)]

    # a third run finds everything done and calls nothing
    third = ScriptedTarget()
    run_target(third, data, PARAMS, journal, no_progress())
    assert third.calls == []


def test_failed_samples_are_called_again_on_resume(tmp_path):
    journal = ResultJournal(tmp_path / "j.jsonl")
    data = samples(2)
    run_target(
        ScriptedTarget({"t:1": [client_error("ModelErrorException")]}),
        data,
        PARAMS,
        journal,
        no_progress(),
    )
    again = ScriptedTarget()
    results = run_target(again, data, PARAMS, journal, no_progress())
    assert again.calls == ["t:1"]
    assert results[1]["status"] == "success"


def test_torn_last_line_is_dropped(tmp_path):
    journal = ResultJournal(tmp_path / "j.jsonl")
    data = samples(3)
    run_target(ScriptedTarget(), data[:2], PARAMS, journal, no_progress())
    # Same inputs as the resumed run: rewrite the header for the 3-sample run, then tear.
    header = {"journal": {"version": 1, **fingerprint(ScriptedTarget(), PARAMS, data)}}
    body = journal.path.read_text().splitlines()[1:]
    journal.path.write_text(
        json.dumps(header) + "\n" + body[0] + "\n" + body[1][: len(body[1]) // 2]
    )
    target = ScriptedTarget()
    results = run_target(target, data, PARAMS, journal, no_progress(concurrency=1))
    assert target.calls == ["t:1", "t:2"]
    assert [r["status"] for r in results] == ["success"] * 3
    for line in journal.path.read_text().splitlines():
        json.loads(line)  # every line is whole again


def test_journal_of_other_settings_is_refused(tmp_path):
    journal = ResultJournal(tmp_path / "j.jsonl")
    run_target(ScriptedTarget(), samples(2), PARAMS, journal, no_progress())
    with pytest.raises(JournalMismatch, match="written by a run with other settings"):
        run_target(
            ScriptedTarget(), samples(2), InferenceParameters(max_tokens=99), journal, no_progress()
        )
    with pytest.raises(JournalMismatch, match="Pass --restart"):
        run_target(ScriptedTarget(model_id="other"), samples(2), PARAMS, journal, no_progress())
    # --restart discards it
    target = ScriptedTarget(model_id="other")
    run_target(target, samples(2), PARAMS, journal, no_progress(restart=True))
    assert sorted(target.calls) == ["t:0", "t:1"]


def test_corrupt_journal_line_in_the_middle_is_an_error(tmp_path):
    journal = ResultJournal(tmp_path / "j.jsonl")
    data = samples(2)
    run_target(ScriptedTarget(), data, PARAMS, journal, no_progress(concurrency=1))
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join([lines[0], "{oops", lines[2]]) + "\n")
    with pytest.raises(JournalMismatch, match="line 2: not valid JSON"):
        run_target(ScriptedTarget(), data, PARAMS, journal, no_progress())


class BatchTarget(ScriptedTarget):
    """Answers batches; a batch holding a 'bad' sample fails, as a whole, with its error."""

    def __init__(self, bad: set[str] = frozenset(), loads: list[str] | None = None):
        super().__init__()
        self.bad = bad
        self.batches: list[list[str]] = []
        self.loads = loads if loads is not None else []

    def load(self):
        self.loads.append("load")

    def generate(self, sample, params):
        if sample.sample_id in self.bad:
            raise ValueError(f"{sample.sample_id}: cannot tokenize")
        return super().generate(sample, params)

    def generate_batch(self, batch, params):
        self.batches.append([s.sample_id for s in batch])
        if any(s.sample_id in self.bad for s in batch):
            raise ValueError("a prompt in the batch cannot be tokenized")
        return [super(BatchTarget, self).generate(s, params) for s in batch]


def test_batch_targets_get_batches_and_a_failed_batch_is_answered_per_sample():
    from finetuning.evaluation.runner import RunStats

    data = samples(7)
    target = BatchTarget(bad={"t:4"})
    stats = RunStats()
    results = run_target(
        target, data, PARAMS, None, no_progress(concurrency=1, batch_size=3), stats=stats
    )
    assert target.loads == ["load"]  # once, before the clock starts
    # the last batch holds one sample: a plain call
    assert target.batches == [["t:0", "t:1", "t:2"], ["t:3", "t:4", "t:5"]]
    # the failed batch was answered one sample at a time: only the bad sample is an error
    assert [r["status"] for r in results] == ["success"] * 4 + ["error"] + ["success"] * 2
    assert "t:4: cannot tokenize" in results[4]["error"]
    answered = [r["response_text"] for r in results if r["status"] == "success"]
    assert answered == ["a0", "a1", "a2", "a3", "a5", "a6"]
    assert stats.generated == 6 and stats.batch_size == 3 and stats.samples_per_second > 0


def test_batch_size_one_and_targets_without_batches_are_called_per_sample():
    target = BatchTarget()
    run_target(target, samples(3), PARAMS, None, no_progress(batch_size=1))
    assert target.batches == [] and sorted(target.calls) == ["t:0", "t:1", "t:2"]
    plain = ScriptedTarget()
    run_target(plain, samples(3), PARAMS, None, no_progress(batch_size=16))
    assert sorted(plain.calls) == ["t:0", "t:1", "t:2"]
    with pytest.raises(ValueError, match="batch size: expected an integer >= 1, got 0"):
        run_target(plain, samples(1), PARAMS, None, no_progress(batch_size=0))


def test_a_model_that_cannot_load_stops_the_run_once():
    class Broken(BatchTarget):
        def load(self):
            raise OSError("model.safetensors: truncated file")

    target = Broken()
    with pytest.raises(EvaluationAborted, match=r"m: cannot load the model: .*truncated file"):
        run_target(target, samples(3), PARAMS, None, no_progress())
    assert target.calls == [] and target.batches == []

"""Run samples through a target: concurrency, rate limiting, retries and a resumable journal.

Each answer is appended to a JSON Lines journal (``<output>.partial.jsonl``) the moment it
arrives and flushed to disk, so an interrupted run loses at most the calls in flight. A rerun
with the same settings reads the journal and only calls the model for what is missing (and
for samples whose call failed). The journal's first line records the run's settings; resuming
with different ones is refused rather than mixing answers of two configurations.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from finetuning.evaluation.generation import DEFAULT_BATCH_SIZE
from finetuning.evaluation.samples import EvaluationSample
from finetuning.evaluation.targets import Generation, InferenceParameters, Target

JOURNAL_VERSION = 1

# Error codes worth another try: throttling, capacity and transient service faults.
# Bedrock Runtime Converse errors:
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors
# SageMaker Runtime InvokeEndpoint errors:
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html#API_runtime_InvokeEndpoint_Errors
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerException",
        "InternalFailure",
        "InternalDependencyException",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)
# Errors that no other sample will escape either: stop the run instead of failing every call.
FATAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "ResourceNotFoundException",
    }
)


class EvaluationAborted(RuntimeError):
    """A call failed in a way every other call would too (credentials, permissions, no model)."""


class JournalMismatch(ValueError):
    """The journal on disk belongs to a run with different settings."""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError | ReadTimeoutError) or error_code(exc) in RETRYABLE_CODES


def is_fatal(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in FATAL_CODES:
        return True
    # SageMaker answers a missing endpoint with a ValidationError naming it.
    return code == "ValidationError" and "not found" in str(exc).lower()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base * 2**attempt))."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class RateLimiter:
    """At most ``rate`` call starts per second across all threads (evenly spaced)."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"requests per second: expected a value > 0, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


def fingerprint(
    target: Target, params: InferenceParameters, samples: Sequence[EvaluationSample]
) -> dict[str, Any]:
    """What makes two runs' answers comparable: the model, the sampling and the inputs."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.sample_id.encode())
        digest.update(b"\0")
    return {
        "model_id": target.model_id,
        "target_type": target.target_type,
        "parameters": params.as_dict(),
        "samples_sha256": digest.hexdigest(),
    }


class ResultJournal:
    """Append-only JSON Lines record of one model's answers, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self, expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Results already recorded for a run with ``expected`` settings, by sample id."""
        if not self.path.exists():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # the write in progress when the run was interrupted
                raise JournalMismatch(
                    f"{self.path}: line {number}: not valid JSON; delete the file or pass "
                    "--restart to start over"
                ) from None
            if number == 1:
                header = record.get("journal")
                if header != {"version": JOURNAL_VERSION, **expected}:
                    raise JournalMismatch(
                        f"{self.path}: written by a run with other settings "
                        f"({json.dumps(header, sort_keys=True)}); expected "
                        f"{json.dumps(expected, sort_keys=True)}. Pass --restart to discard it "
                        "or choose another --output-file"
                    )
                continue
            records[record["sample_id"]] = record
        return records

    def start(self, expected: dict[str, Any], *, restart: bool) -> None:
        if restart or not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps({"journal": {"version": JOURNAL_VERSION, **expected}}))
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            return
        # Drop a torn last line so that appends start on a fresh line.
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class RunOptions:
    """How a run calls its target. ``batch_size`` applies to targets that answer several
    samples in one call (local models: ``generate_batch``); others are called per sample."""

    concurrency: int = 4
    requests_per_second: float | None = None
    retry: RetryPolicy = RetryPolicy()
    restart: bool = False
    progress: bool = True
    seed: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass
class RunStats:
    """What one :func:`run_target` call did: samples answered by the model in this run (not
    taken from the journal), the wall-clock seconds that took (model loading excluded) and
    the batch size used (1 for targets answered per sample)."""

    generated: int = 0
    seconds: float = 0.0
    batch_size: int = 1

    @property
    def samples_per_second(self) -> float | None:
        return self.generated / self.seconds if self.generated and self.seconds > 0 else None


def _result_record(
    sample: EvaluationSample, generation: Generation | None, error: BaseException | None, tries: int
) -> dict[str, Any]:
    record: dict[str, Any] = {"sample_id": sample.sample_id}
    if sample.image_path is not None:
        record["image_path"] = sample.image_path
    if generation is not None:
        input_tokens = generation.input_tokens
        output_tokens = generation.output_tokens
        record |= {
            "status": "success",
            "response_text": generation.text,
            "inference_time_seconds": round(generation.latency_seconds, 4),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": (input_tokens or 0) + (output_tokens or 0)
            if input_tokens is not None or output_tokens is not None
            else None,
            "stop_reason": generation.stop_reason,
        }
    else:
        record |= {
            "status": "error",
            "error_code": error_code(error) if error else "Unknown",
            "error": str(error),
        }
    record["attempts"] = tries
    return record


def _call_with_retries(
    target: Target,
    sample: EvaluationSample,
    params: InferenceParameters,
    limiter: RateLimiter,
    policy: RetryPolicy,
    rng: random.Random,
    sleep: Callable[[float], None],
    stop: threading.Event,
) -> dict[str, Any]:
    last: BaseException | None = None
    for attempt in range(policy.max_attempts):
        if stop.is_set():
            raise EvaluationAborted("stopped")
        limiter.acquire()
        try:
            generation = target.generate(sample, params)
        except Exception as exc:
            if is_fatal(exc):
                raise EvaluationAborted(f"{target.model_id}: {error_code(exc)}: {exc}") from exc
            last = exc
            if not is_retryable(exc) or attempt + 1 == policy.max_attempts:
                return _result_record(sample, None, exc, attempt + 1)
            sleep(policy.delay(attempt, rng))
            continue
        return _result_record(sample, generation, None, attempt + 1)
    return _result_record(sample, None, last, policy.max_attempts)


def _call_batch_with_retries(
    target: Any,
    batch: list[EvaluationSample],
    params: InferenceParameters,
    limiter: RateLimiter,
    policy: RetryPolicy,
    rng: random.Random,
    sleep: Callable[[float], None],
    stop: threading.Event,
) -> list[dict[str, Any]]:
    """Records for ``batch`` from one ``generate_batch`` call per attempt. A batch that fails
    for good is answered again one sample at a time, so an error is recorded against the
    sample that causes it and the others still get their answers."""
    if len(batch) == 1:
        single = (target, batch[0], params, limiter, policy, rng, sleep, stop)
        return [_call_with_retries(*single)]
    for attempt in range(policy.max_attempts):
        if stop.is_set():
            raise EvaluationAborted("stopped")
        limiter.acquire()
        try:
            generations = target.generate_batch(batch, params)
        except Exception as exc:
            if is_fatal(exc):
                raise EvaluationAborted(f"{target.model_id}: {error_code(exc)}: {exc}") from exc
            if not is_retryable(exc) or attempt + 1 == policy.max_attempts:
                break
            sleep(policy.delay(attempt, rng))
            continue
        return [
            _result_record(sample, generation, None, attempt + 1)
            for sample, generation in zip(batch, generations, strict=True)
        ]
    return [
        _call_with_retries(target, sample, params, limiter, policy, rng, sleep, stop)
        for sample in batch
    ]


def _plan(target: Any, pending: list[EvaluationSample], batch_size: int) -> list[list[Any]]:
    """The calls to make: batches for a target with ``generate_batch`` (planned by the target
    when it can, e.g. prompts of like length together), else one sample per call."""
    if batch_size <= 1 or not hasattr(target, "generate_batch"):
        return [[sample] for sample in pending]
    if hasattr(target, "plan_batches"):
        return target.plan_batches(pending, batch_size)
    return [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]


def run_target(
    target: Target,
    samples: Sequence[EvaluationSample],
    params: InferenceParameters,
    journal: ResultJournal | None,
    options: RunOptions | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    description: str | None = None,
    stats: RunStats | None = None,
) -> list[dict[str, Any]]:
    """Answers for every sample, in sample order, reusing what the journal already holds.

    ``stats``, when given, receives how many samples the model answered and how long that
    took. Raises :class:`EvaluationAborted` on an error that every call would hit (a model
    that cannot load included); what finished before it stays in the journal.
    """
    options = options or RunOptions()
    if options.concurrency < 1:
        raise ValueError(f"concurrency: expected an integer >= 1, got {options.concurrency}")
    if options.batch_size < 1:
        raise ValueError(f"batch size: expected an integer >= 1, got {options.batch_size}")
    expected = fingerprint(target, params, samples)
    done: dict[str, dict[str, Any]] = {}
    if journal is not None:
        done = {} if options.restart else journal.load(expected)
        journal.start(expected, restart=options.restart)
    pending = [s for s in samples if done.get(s.sample_id, {}).get("status") != "success"]
    stats = stats if stats is not None else RunStats()
    if pending and hasattr(target, "load"):
        # Outside the timing, and once: a model that cannot load fails every sample alike.
        try:
            target.load()
        except Exception as exc:
            raise EvaluationAborted(f"{target.model_id}: cannot load the model: {exc}") from exc
    calls = _plan(target, pending, options.batch_size)
    stats.batch_size = max((len(c) for c in calls), default=1)
    limiter = RateLimiter(options.requests_per_second, sleep=sleep)
    rng = random.Random(options.seed)
    stop = threading.Event()
    bar = _progress(len(samples), len(samples) - len(pending), options.progress, description)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
            queue: Iterable[list[EvaluationSample]] = iter(calls)
            running: set[Future[list[dict[str, Any]]]] = set()

            def submit_next() -> None:
                batch = next(queue, None)  # type: ignore[call-overload]
                if batch is not None:
                    running.add(
                        pool.submit(
                            _call_batch_with_retries,
                            target,
                            batch,
                            params,
                            limiter,
                            options.retry,
                            rng,
                            sleep,
                            stop,
                        )
                    )

            # Keep at most `concurrency` calls in flight so a stop leaves little unfinished.
            for _ in range(options.concurrency):
                submit_next()
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        records = future.result()
                    except EvaluationAborted:
                        stop.set()
                        raise
                    for record in records:
                        done[record["sample_id"]] = record
                        if journal is not None:
                            journal.append(record)
                        stats.generated += int(record["status"] == "success")
                    if bar is not None:
                        bar.update(len(records))
                    submit_next()
    finally:
        stats.seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
    return [done[s.sample_id] for s in samples]


def _progress(total: int, initial: int, enabled: bool, description: str | None) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=description or "evaluating", unit="sample")

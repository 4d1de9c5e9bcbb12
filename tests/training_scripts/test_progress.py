"""Per-step progress: lines in logs are compact, timed, and say throughput and time left."""

from __future__ import annotations

import io
from types import SimpleNamespace

from training_scripts import progress
from training_scripts.progress import StepProgress, format_duration
from training_scripts.reporting import ReportingCallback


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_steps(seconds_per_step: float, steps: int) -> list[str]:
    clock, stream, tokens = Clock(), io.StringIO(), [0]
    callback = StepProgress(lambda: tokens[0], interactive=False, stream=stream, clock=clock)
    state = SimpleNamespace(global_step=0, max_steps=steps, is_world_process_zero=True)
    args = SimpleNamespace(world_size=2)
    callback.on_train_begin(args, state, None)
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        tokens[0] += 500
        state.global_step = step
        if step == 3:
            callback.on_log(args, state, None, logs={"loss": 1.23456})
        callback.on_step_end(args, state, None)
    return stream.getvalue().splitlines()


def test_slow_steps_get_a_line_each_with_tokens_per_second_and_eta() -> None:
    assert progress.LINE_INTERVAL_SECONDS == 5.0
    lines = run_steps(seconds_per_step=10, steps=4)
    assert lines == [
        "step: 1/4 25% tokens/s=100 elapsed=10s eta=30s",  # 500 tokens x 2 processes / 10 s
        "step: 2/4 50% tokens/s=100 elapsed=20s eta=20s",
        "step: 3/4 75% loss=1.235 tokens/s=100 elapsed=30s eta=10s",
        "step: 4/4 100% loss=1.235 tokens/s=100 elapsed=40s eta=0s",
    ]


def test_fast_steps_are_throttled_but_the_first_and_last_always_show() -> None:
    lines = run_steps(seconds_per_step=0.5, steps=40)
    steps = [int(line.split()[1].split("/")[0]) for line in lines]
    assert steps == [1, 11, 21, 31, 40]


def test_durations_read_as_hours_minutes_seconds() -> None:
    assert [format_duration(s) for s in (0, 59.4, 61, 3600 * 2 + 65)] == [
        "0s",
        "59s",
        "1m01s",
        "2h01m",
    ]


def test_parsed_log_lines_go_through_the_progress_writer(tmp_path) -> None:
    written: list[str] = []
    reporting = ReportingCallback(tmp_path, written.append)
    state = SimpleNamespace(global_step=5, max_steps=10, is_world_process_zero=True, epoch=0.5)
    reporting.on_log(None, state, None, logs={"loss": 2.0, "learning_rate": 1e-4})
    assert written == [
        "progress: step=5/10",
        "metrics: step=5 epoch=0.5 train_loss=2 learning_rate=0.0001",
    ]

"""Which checkpoints count as complete, which are thrown away, and who owns the directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training_scripts import checkpoints
from training_scripts.checkpoints import CheckpointDirError


def make_checkpoint(root: Path, step: int, *, max_steps: int = 100, **broken: bool) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if not broken.get("no_weights"):
        (path / "adapter_model.safetensors").write_bytes(b"weights")
    if not broken.get("no_optimizer"):
        (path / "optimizer.pt").write_bytes(b"state")
    if broken.get("truncated_state"):
        (path / "trainer_state.json").write_text('{"global_step": ')
    elif not broken.get("no_state"):
        state = {"global_step": step, "max_steps": max_steps}
        (path / "trainer_state.json").write_text(json.dumps(state))
    if broken.get("sentinel"):
        (path / checkpoints.INCOMPLETE_SENTINEL).write_text("in progress")
    return path


@pytest.mark.parametrize(
    "defect", ["no_weights", "no_optimizer", "no_state", "truncated_state", "sentinel"]
)
def test_incomplete_checkpoints_are_never_resumed_and_are_removed(
    tmp_path: Path, defect: str
) -> None:
    good = make_checkpoint(tmp_path, 10)
    bad = make_checkpoint(tmp_path, 20, **{defect: True})
    assert checkpoints.is_complete(good) and not checkpoints.is_complete(bad)
    latest = checkpoints.latest_complete(tmp_path)
    assert latest == checkpoints.Checkpoint(path=good, step=10)
    assert checkpoints.remove_incomplete(tmp_path) == [bad]
    assert not bad.exists() and good.exists()


def test_the_newest_complete_checkpoint_wins_numerically(tmp_path: Path) -> None:
    for step in (5, 40, 100):
        make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-notes").mkdir()
    assert checkpoints.latest_complete(tmp_path).step == 100  # not "40" > "100" as text
    assert checkpoints.latest_complete(tmp_path / "missing") is None


def test_a_checkpoint_whose_step_disagrees_with_its_state_is_incomplete(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 10)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 9}))
    assert not checkpoints.is_complete(path)


def test_the_final_checkpoint_of_a_finished_run_is_recognised(tmp_path: Path) -> None:
    last = checkpoints.Checkpoint(make_checkpoint(tmp_path, 50, max_steps=50), 50)
    middle = checkpoints.Checkpoint(make_checkpoint(tmp_path, 20, max_steps=50), 20)
    assert checkpoints.reached_max_steps(last, max_steps=-1)
    assert checkpoints.reached_max_steps(last, max_steps=50)
    assert not checkpoints.reached_max_steps(last, max_steps=80)  # asked to train on
    assert not checkpoints.reached_max_steps(middle, max_steps=-1)


def test_a_directory_of_another_run_is_refused(tmp_path: Path) -> None:
    run_a = {"model_name_or_path": "a", "method": "lora"}
    checkpoints.claim(tmp_path, run_a)
    checkpoints.claim(tmp_path, run_a)  # the same run may come back
    make_checkpoint(tmp_path, 10)
    with pytest.raises(CheckpointDirError, match="holds checkpoints of another run"):
        checkpoints.claim(tmp_path, {"model_name_or_path": "a", "method": "full"})
    # Without checkpoints there is nothing to mix up: a new run takes the directory over.
    empty = tmp_path / "empty"
    checkpoints.claim(empty, run_a)
    checkpoints.claim(empty, {"model_name_or_path": "b", "method": "full"})

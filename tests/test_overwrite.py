"""train.py --overwrite keeps the finished run until the new run's first epoch commits: a kill -9 at every point between."""
from __future__ import annotations

import os

import pytest

from test_run_state import copy_of, finished, state, train  # noqa: F401  (finished: the module fixture)

NEW = ["--overwrite", "--filters", "8"]  # another model, so the old and the new run tell apart
# In order: the old run moving aside (model.keras first), the new run's first epoch and its commit.
KILL_POINTS = ["aside:model.keras", "aside:losses.csv", "aside:tensorboard", "epoch:1", "replaced:config.json:1",
               "replaced:losses.csv:1", "write:model.keras:1", "replaced:model.keras:1"]


def run_bytes(run_dir) -> dict:
    return {name: open(os.path.join(run_dir, name), "rb").read() for name in ("config.json", "losses.csv", "model.keras")}


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_during_overwrite_leaves_the_old_run_or_the_new_one(finished, tmp_path, point):  # noqa: F811
    save_path = copy_of(finished, tmp_path)
    run_dir = save_path / "run"
    old = run_bytes(run_dir)
    killed = train(save_path, *NEW, epochs=1, fault=f"kill@{point}")
    assert killed.returncode == -9, f"the fault at {point} never fired: {killed.stderr[-2000:]}"
    again = train(save_path, epochs=1)  # the old run's own command
    if point == "replaced:model.keras:1":  # the new run committed its first epoch: it is the folder's run now
        assert again.returncode == 2 and "holds a run of another model (filters 8 -> 4)" in again.stderr, again.stderr
        assert state(run_dir)["config"]["model"]["filters"] == 8 and state(run_dir)["csv_epochs"] == [1]
    else:
        assert again.returncode == 0 and "is complete: 1 epoch(s)" in again.stdout, again.stderr[-2000:]
        assert run_bytes(run_dir) == old, "the old run is back, byte for byte"
    assert ".overwritten" not in os.listdir(run_dir)
    rerun = train(save_path, *NEW, epochs=1)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    new = state(run_dir)
    assert new["config"]["model"]["filters"] == 8 and new["csv_epochs"] == [1] and new["epoch"] == 1
    assert new["files"] == [".lock", "config.json", "losses.csv", "losses.md", "losses.png", "model.keras", "tensorboard"]

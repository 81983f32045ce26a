"""A run folder survives a kill -9 at every write point, continues, completes, refuses another model, and locks."""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import subprocess
import sys
import zipfile

import h5py
import pytest

from tests.conftest import ROOT

TINY = ["--num-layers", "1", "--filters", "4", "--kernel-size", "3", "--levels", "4", "--batch-size", "32",
        "--train-examples", "64", "--test-examples", "32"]
STEPS_PER_EPOCH = 2  # 64 training images in batches of 32


def train(save_path, *flags, fault=None, epochs=2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PIXELCNN_TF_FAULT", None)
    if fault:
        env["PIXELCNN_TF_FAULT"] = fault
    args = [sys.executable, os.path.join(ROOT, "train.py"), *TINY, "--epochs", str(epochs),
            "--save-path", str(save_path), "--run-name", "run", "--precision", "float32", *flags]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def state(run_dir) -> dict:
    """What a run folder holds: its files, the stamped epoch, the optimizer's step count and the loss-table epochs."""
    with zipfile.ZipFile(os.path.join(run_dir, "model.keras")) as archive:
        stamp = json.loads(archive.read("pixelcnn_tf_run.json"))
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            steps = int(weights["optimizer/vars/0"][()])  # the optimizer's iteration counter
    with open(os.path.join(run_dir, "losses.csv")) as f:
        rows = [int(row["epoch"]) for row in csv.DictReader(f)]
    with open(os.path.join(run_dir, "losses.md")) as f:
        md_rows = [line.split("|")[1].strip() for line in f.read().splitlines()[2:]]
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    config.pop("save_path")  # each test trains into its own folder
    return {"files": sorted(os.listdir(run_dir)), "epoch": stamp["epoch"], "optimizer_steps": steps,
            "csv_epochs": rows, "md_epochs": md_rows, "config": config}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    save_path = tmp_path_factory.mktemp("uninterrupted")
    result = train(save_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return state(save_path / "run")


# Kill points, in the order an epoch commits: the kill lands in epoch 2 of 2 (the last, where weights were lost) or,
# for config.json (written at a process's first commit), in epoch 1.
KILL_POINTS = [
    "epoch:2",  # after the first batch of epoch 2
    "write:config.json:1",
    "replaced:config.json:1",
    "write:losses.csv:2",
    "replaced:losses.csv:2",
    "replaced:losses.md:2",
    "write:losses.png:2",
    "replaced:losses.png:2",
    "write:model.keras:1",  # model.tmp.keras complete, not yet renamed
    "write:model.keras:2",
    "replaced:model.keras:1",
    "replaced:model.keras:2",  # the run is complete: the rerun trains nothing
]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_any_point_then_the_same_command_ends_as_an_uninterrupted_run(tmp_path, uninterrupted, point):
    killed = train(tmp_path, fault=f"kill@{point}")
    assert killed.returncode == -9, f"the fault at {point} never fired: {killed.stderr[-2000:]}"
    rerun = train(tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = state(tmp_path / "run")
    print(f"kill@{point}: model.keras epoch {after['epoch']}, optimizer steps {after['optimizer_steps']}, "
          f"losses.csv epochs {after['csv_epochs']}, rerun: {rerun.stdout.strip().splitlines()[-1]}")
    assert after == uninterrupted, point
    assert after["csv_epochs"] == [1, 2] and after["optimizer_steps"] == 2 * STEPS_PER_EPOCH
    if point == "replaced:model.keras:2":
        assert "is complete" in rerun.stdout


@pytest.mark.slow
def test_disk_full_while_saving_is_one_line_and_keeps_the_last_epoch(tmp_path):
    result = train(tmp_path, fault="enospc@write:model.keras:2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("train.py: error: cannot write ") and "No space left on device" in lines[-1], lines
    assert "Traceback" not in result.stderr
    run_dir = tmp_path / "run"
    assert not (run_dir / "model.tmp.keras").exists(), "the partial checkpoint is removed"
    assert state(run_dir)["epoch"] == 1
    assert train(tmp_path).returncode == 0
    assert state(run_dir)["csv_epochs"] == [1, 2]


def snapshot(root) -> dict:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            out[path] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch run, copied per test by the tests that change it."""
    save_path = tmp_path_factory.mktemp("finished")
    result = train(save_path, epochs=1)
    assert result.returncode == 0, result.stderr[-2000:]
    return save_path


def copy_of(finished, tmp_path):
    import shutil

    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.mark.slow
def test_the_same_command_on_a_finished_run_says_complete_and_writes_nothing(finished, tmp_path):
    save_path = copy_of(finished, tmp_path)
    before = snapshot(save_path)
    result = train(save_path, epochs=1)
    assert result.returncode == 0 and "is complete: 1 epoch(s)" in result.stdout, result.stderr
    assert snapshot(save_path) == before


@pytest.mark.slow
def test_another_model_is_refused_before_anything_is_written_naming_the_keys(finished, tmp_path):
    save_path = copy_of(finished, tmp_path)
    before = snapshot(save_path)
    result = train(save_path, "--filters", "8", "--kernel-size", "5", epochs=3)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"train.py: error: {save_path}/run holds a run of another model (filters 4 -> 8, kernel_size 3 -> 5); "
        "use the same settings, another --run-name, or --overwrite"
    ]
    assert snapshot(save_path) == before


@pytest.mark.slow
def test_a_larger_epochs_continues_and_overwrite_starts_again(finished, tmp_path):
    save_path = copy_of(finished, tmp_path)
    first_row = state(save_path / "run")
    result = train(save_path, epochs=2)
    assert result.returncode == 0 and "1 epoch(s) this run, 2 in all" in result.stdout, result.stderr[-2000:]
    continued = state(save_path / "run")
    assert continued["csv_epochs"] == [1, 2] and continued["optimizer_steps"] == 2 * STEPS_PER_EPOCH
    with open(save_path / "run" / "losses.csv") as f:
        assert f.read().splitlines()[1] == open(finished / "run" / "losses.csv").read().splitlines()[1], "epoch 1 kept"
    assert first_row["epoch"] == 1
    result = train(save_path, "--overwrite", epochs=1)
    assert result.returncode == 0, result.stderr[-2000:]
    again = state(save_path / "run")
    assert again["csv_epochs"] == [1] and again["optimizer_steps"] == STEPS_PER_EPOCH


@pytest.mark.slow
def test_a_second_training_into_the_same_folder_is_refused(finished, tmp_path):
    save_path = copy_of(finished, tmp_path)
    with open(save_path / "run" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a live train.py holds
        before = snapshot(save_path)
        result = train(save_path, epochs=2)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"train.py: error: another training is writing to {save_path}/run; wait for it to end or choose another --run-name"
    ]
    assert snapshot(save_path) == before


@pytest.mark.slow
def test_a_killed_run_leaves_temporaries_the_next_run_removes(finished, tmp_path):
    save_path = copy_of(finished, tmp_path)
    run_dir = save_path / "run"
    for name in ("model.tmp.keras", "losses.tmp.png", ".losses.csv.tmp"):
        (run_dir / name).write_bytes(b"")  # what a kill -9 inside a save leaves
    result = train(save_path, epochs=2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert state(run_dir)["files"] == [".lock", "config.json", "losses.csv", "losses.md", "losses.png", "model.keras", "tensorboard"]

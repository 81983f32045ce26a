"""train.py --overwrite keeps the finished run until the new run's first epoch commits: a kill -9 at every point between.

The readers (generate.py, python -m export, python -m pixelcnn_tf.evaluate) find that complete run too: settled
under the folder's lock after a kill, read in place in RUN/.overwritten while a live --overwrite holds the lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil

import pytest
from test_run_state import copy_of, finished, state, train  # noqa: F401  (finished: the module fixture)

from pixelcnn_tf.errors import UserError
from pixelcnn_tf.run import aside as run_aside
from pixelcnn_tf.run.folder import find_run_dir

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


# --- readers of a run folder an --overwrite was killed in, or is overwriting right now ---

OLD_FILES = {"config.json": "old config", "model.keras": "old model", "losses.csv": "old losses", "losses.md": "old md"}


def killed_overwrite(save_path, state_name: str) -> str:
    """A run folder as a kill -9 leaves it (fake file contents: the readers' path logic does not parse them)."""
    run_dir = os.path.join(save_path, "run")
    aside = os.path.join(run_dir, run_aside.ASIDE)
    os.makedirs(aside)
    open(os.path.join(run_dir, run_aside.LOCK_FILE), "w").close()
    for name, text in OLD_FILES.items():
        with open(os.path.join(run_dir, name), "w") as f:
            f.write(text)
    moved = {"moving": ["model.keras"], "moved": list(OLD_FILES), "committed": list(OLD_FILES)}[state_name]
    for name in moved:
        os.rename(os.path.join(run_dir, name), os.path.join(aside, name))
    if state_name != "moving":
        open(os.path.join(aside, run_aside.ASIDE_DONE), "w").close()
        for name in ("config.json", "losses.csv") + (("model.keras",) if state_name == "committed" else ()):
            with open(os.path.join(run_dir, name), "w") as f:
                f.write(f"new {name}")  # uncommitted, or (model.keras) the new run's first commit
    return run_dir


def contents(folder) -> dict:
    return {name: open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name)) and name != run_aside.LOCK_FILE}


@contextlib.contextmanager
def live_training(run_dir):
    """Hold the run folder's lock as a live train.py --overwrite does."""
    with open(os.path.join(run_dir, run_aside.LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


@pytest.mark.parametrize("state_name", ["moving", "moved", "committed"])
@pytest.mark.parametrize("given", ["run", "folder of runs", "model.keras"])
def test_a_reader_settles_a_killed_overwrite_and_finds_the_complete_run(tmp_path, state_name, given):
    run_dir = killed_overwrite(tmp_path, state_name)
    argument = {"run": run_dir, "folder of runs": str(tmp_path), "model.keras": os.path.join(run_dir, "model.keras")}[given]
    assert find_run_dir(argument) == run_dir
    expected = dict(OLD_FILES) if state_name != "committed" else {
        "config.json": "new config.json", "losses.csv": "new losses.csv", "model.keras": "new model.keras"}
    assert contents(run_dir) == expected and sorted(os.listdir(run_dir)) == [".lock"] + sorted(expected)


def test_while_an_overwrite_is_live_a_reader_reads_the_old_run_in_place(tmp_path):
    run_dir = killed_overwrite(tmp_path, "moved")
    before = {name: contents(os.path.join(run_dir, name) if name else run_dir) for name in ("", run_aside.ASIDE)}
    with live_training(run_dir):
        assert find_run_dir(run_dir) == os.path.join(run_dir, run_aside.ASIDE)
        assert find_run_dir(str(tmp_path)) == os.path.join(run_dir, run_aside.ASIDE)
    assert {name: contents(os.path.join(run_dir, name) if name else run_dir) for name in ("", run_aside.ASIDE)} == before
    assert run_aside.run_name(os.path.join(run_dir, run_aside.ASIDE)) == "run"  # what an export records as its source


def test_a_reader_waits_out_a_live_move_aside_then_says_so_in_one_line(tmp_path, monkeypatch):
    run_dir = killed_overwrite(tmp_path, "moving")  # the live process is between two renames
    monkeypatch.setattr(run_aside, "MOVE_WAIT", 0.3)
    with live_training(run_dir), pytest.raises(UserError, match="is being overwritten and its old run is still moving"):
        find_run_dir(run_dir)


def test_generate_samples_the_users_run_not_the_shipped_model_after_a_killed_overwrite(tmp_path, monkeypatch):
    import generate

    killed_overwrite(tmp_path / "models", "moved")
    monkeypatch.chdir(tmp_path)
    assert generate.default_source() is None  # None: the newest run under models/, not pretrained/


# Kill points with distinct folder states: mid-move, moved with the new run training, the new run's first checkpoint
# written but not renamed, and renamed (the new run committed: it is the run the readers find).
READER_POINTS = ["aside:losses.csv", "epoch:1", "write:model.keras:1", "replaced:model.keras:1"]


@pytest.fixture(scope="module")
def old_run_reads(finished, tmp_path_factory):  # noqa: F811
    """What the readers give on the finished run before any --overwrite: evaluate's figure and generate's image."""
    save_path = copy_of(finished, tmp_path_factory.mktemp("reference"))
    return read_evaluate(str(save_path), save_path), read_generate(str(save_path / "run"), save_path)


def read_evaluate(checkpoint, where) -> dict:
    from pixelcnn_tf import evaluate

    out = os.path.join(where, "scores.json")
    assert evaluate.main(["--checkpoint", checkpoint, "--examples", "8", "--out", out]) == 0
    return json.load(open(out))


def read_generate(checkpoint, where) -> bytes:
    import generate

    out = os.path.join(where, "sample.png")
    assert generate.main(["--checkpoint", checkpoint, "--num-images", "2", "--no-progress", "--out", out]) == 0
    return open(out, "rb").read()


@pytest.mark.slow
@pytest.mark.parametrize("point", READER_POINTS)
def test_readers_after_a_kill_during_overwrite_find_the_complete_run(finished, old_run_reads, tmp_path, point):  # noqa: F811
    killed_at = copy_of(finished, tmp_path / "killed")
    old = run_bytes(killed_at / "run")
    killed = train(killed_at, *NEW, epochs=1, fault=f"kill@{point}")
    assert killed.returncode == -9, f"the fault at {point} never fired: {killed.stderr[-2000:]}"
    assert ".overwritten" in os.listdir(killed_at / "run")
    committed = point == "replaced:model.keras:1"
    old_scores, old_image = old_run_reads

    def copy(name):
        return shutil.copytree(killed_at, tmp_path / name, symlinks=True)

    # evaluate, given the folder of runs (as `--checkpoint models`)
    where = copy("evaluate")
    scores = read_evaluate(str(where), where)
    assert scores["checkpoint"] == str(where / "run") and ".overwritten" not in os.listdir(where / "run")
    if committed:
        assert state(where / "run")["config"]["model"]["filters"] == 8 and scores["nats_per_image"] != old_scores["nats_per_image"]
    else:
        assert run_bytes(where / "run") == old and scores["nats_per_image"] == old_scores["nats_per_image"]
    # generate, given the run folder
    where = copy("generate")
    image = read_generate(str(where / "run"), where)
    assert (image != old_image) if committed else (image == old_image and run_bytes(where / "run") == old)
    # export, given RUN/model.keras (moved aside unless the new run committed): the metadata names the model it read
    if point in ("epoch:1", "replaced:model.keras:1"):
        import export.__main__ as export_cli

        where = copy("export")
        assert export_cli.main(["--checkpoint", str(where / "run" / "model.keras"), "--out", str(where / "exported"),
                                "--parity-images", "4"]) == 0
        source = json.load(open(where / "exported" / "metadata.json"))["source"]
        model = open(where / "run" / "model.keras", "rb").read()
        assert source["run"] == "run" and source["model_sha256"] == hashlib.sha256(model).hexdigest()
        assert (model != old["model.keras"]) if committed else run_bytes(where / "run") == old
    # a reader while the --overwrite is live (its lock held): the old run, read in place and left there
    if point == "epoch:1":
        where = copy("live")
        with live_training(where / "run"):
            scores = read_evaluate(str(where / "run"), where)
        assert scores["checkpoint"] == str(where / "run" / ".overwritten")
        assert scores["nats_per_image"] == old_scores["nats_per_image"]
        assert run_bytes(where / "run" / ".overwritten") == old and ".overwritten" in os.listdir(where / "run")

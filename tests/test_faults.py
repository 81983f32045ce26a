"""Faults outside the run folder: disk full in evaluate and export, damaged TFDS files, a killed export's leftovers."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys

import pytest

from export.publish import LOCK_FILE, remove_stale
from tests.conftest import ROOT

TINY = ["--num-layers", "1", "--filters", "4", "--kernel-size", "3", "--levels", "4", "--batch-size", "32",
        "--train-examples", "64", "--test-examples", "32", "--epochs", "1"]


def run(args: list[str], cwd, fault: str | None = None, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, **env)
    environment.pop("PIXELCNN_TF_FAULT", None)
    if fault:
        environment["PIXELCNN_TF_FAULT"] = fault
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=environment, cwd=cwd)


def one_error_line(result, prog: str, progress: bool = False) -> str:
    """The error line; progress=True allows the progress lines export logs to stderr before it."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert (progress or len(lines) == 1) and lines[-1].startswith(f"{prog}: error: "), lines
    assert not any(": error: " in line for line in lines[:-1]), lines
    return lines[-1]


@pytest.fixture(scope="module")
def damaged_tfds(tmp_path_factory, tfds_dir):
    """Two COPIES of the prepared MNIST: one with truncated tfrecords, one with a broken dataset_info.json."""
    root = tmp_path_factory.mktemp("tfds")
    truncated, broken = root / "truncated", root / "broken"
    for copy in (truncated, broken):
        shutil.copytree(os.path.join(tfds_dir, "mnist"), copy / "mnist")
    (version,) = os.listdir(truncated / "mnist")
    for name in os.listdir(truncated / "mnist" / version):
        if ".tfrecord" in name:
            path = truncated / "mnist" / version / name
            os.truncate(path, 20_000)  # a few dozen records, the last one cut
    (broken / "mnist" / version / "dataset_info.json").write_text('{"name": "mnist", broken')
    return {"truncated": str(truncated), "broken": str(broken)}


@pytest.mark.slow
@pytest.mark.parametrize("kind, message", [("truncated", "files are damaged (truncated record at"), ("broken", "cannot be read")])
def test_damaged_tfds_files_are_one_line_and_leave_no_run_folder(tmp_path, damaged_tfds, kind, message):
    result = run([os.path.join(ROOT, "train.py"), *TINY, "--train-examples", "2000", "--data-dir", damaged_tfds[kind], "--save-path", "models"], tmp_path)
    assert message in one_error_line(result, "train.py")
    assert not (tmp_path / "models").exists(), "a run that never committed an epoch leaves nothing"


@pytest.mark.slow
def test_damaged_tfds_files_in_evaluate(tmp_path, damaged_tfds, tiny_run):
    result = run(["-m", "pixelcnn_tf.evaluate", "--checkpoint", tiny_run, "--data-dir", damaged_tfds["truncated"]], tmp_path)
    assert "files are damaged (truncated record at" in one_error_line(result, "python -m pixelcnn_tf.evaluate")


@pytest.mark.slow
def test_export_reads_its_parity_images_before_converting(tmp_path, damaged_tfds, tiny_run):
    """Unreadable data is export's one line before any conversion (no progress line), and nothing at --out."""
    result = run(["-m", "export", "--checkpoint", tiny_run, "--out", "e"], tmp_path, TFDS_DATA_DIR=damaged_tfds["broken"])
    assert "cannot be read" in one_error_line(result, "python -m export")
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_disk_full_in_evaluate_removes_the_partial_file(tmp_path, tiny_run):
    out = tmp_path / "r.json"
    result = run(["-m", "pixelcnn_tf.evaluate", "--checkpoint", tiny_run, "--examples", "8", "--out", str(out)], tmp_path,
                 fault="enospc@write:r.json")
    assert one_error_line(result, "python -m pixelcnn_tf.evaluate").endswith(f"cannot write {out}: No space left on device")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_disk_full_in_export_leaves_nothing(tmp_path, tiny_run):
    out = tmp_path / "e"
    result = run(["-m", "export", "--checkpoint", tiny_run, "--out", str(out), "--parity-images", "4"], tmp_path,
                 fault="enospc@write:metadata.json")
    line = one_error_line(result, "python -m export", progress=True)
    assert line.startswith("python -m export: error: cannot write ") and line.endswith("metadata.json: No space left on device")
    assert os.listdir(tmp_path) == [], "the work folder is removed"


def test_a_killed_exports_work_folder_is_removed_but_not_a_live_one(tmp_path):
    out = str(tmp_path / "e")
    stale, live, other = (tmp_path / ".e.tmp-stale", tmp_path / ".e.tmp-live", tmp_path / ".f.tmp-other")
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"partial")
    with open(live / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a working export holds
        removed = remove_stale(out)
    assert removed == [str(stale)]
    assert live.exists() and other.exists() and not stale.exists()


@pytest.mark.slow
def test_a_killed_export_then_the_next_export_cleans_up(tmp_path, tiny_run):
    out = tmp_path / "e"
    killed = run(["-m", "export", "--checkpoint", tiny_run, "--out", str(out), "--parity-images", "4"], tmp_path,
                 fault="kill@export-started")
    assert killed.returncode == -9
    assert [name for name in os.listdir(tmp_path) if name.startswith(".e.tmp-")], "the kill left its work folder"
    again = run(["-m", "export", "--checkpoint", tiny_run, "--out", str(out), "--parity-images", "4"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert os.listdir(tmp_path) == ["e"]
    assert LOCK_FILE not in os.listdir(out)

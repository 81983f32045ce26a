"""Multi-worker training on localhost: the same model as one process, chief-only run files, resume after a killed
worker, one-line errors for a bad cluster, and TensorBoard event files."""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest
from helpers import ROOT

# 128 training images in global batches of 32: 4 steps an epoch, each worker's share 16 images a step. 72 test
# images: the last global batch (8) is split 4 + 4, so the test NLL must be weighted by images, not batches.
TINY = ["--num-layers", "2", "--filters", "8", "--kernel-size", "3", "--levels", "2", "--batch-size", "32",
        "--train-examples", "128", "--test-examples", "72", "--precision", "float32", "--epochs", "2"]
AVERAGED = ["--ema-decay", "0.9"]  # the pair below also checks weight averaging across workers (saved: the average)
TIMEOUT = 400  # seconds: a test fails rather than hangs if the workers never finish


def environment(tmp_path, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CONFIG", "PIXELCNN_TF_FAULT"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(tmp_path / "tmp"), **extra)
    os.makedirs(env["TMPDIR"], exist_ok=True)
    return env


def train(tmp_path, save_path, *flags, **env):
    args = [sys.executable, os.path.join(ROOT, "train.py"), *TINY, "--save-path", str(save_path), "--run-name", "run", *flags]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=environment(tmp_path, **env), cwd=ROOT)


def launch(tmp_path, save_path, *flags, workers=2, **env):
    args = [sys.executable, "-m", "pixelcnn_tf.distribute.launch", "--workers", str(workers), "--threads", "1", "--",
            *TINY, "--save-path", str(save_path), "--run-name", "run", "--connect-timeout", "120", *flags]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=environment(tmp_path, **env), cwd=ROOT)


def weights(run_dir) -> dict[str, np.ndarray]:
    """Every array of model.keras (layer weights, BatchNorm statistics, optimizer slots)."""
    arrays = {}
    with zipfile.ZipFile(os.path.join(run_dir, "model.keras")) as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
            f.visititems(lambda name, item: arrays.__setitem__(name, np.array(item)) if isinstance(item, h5py.Dataset) else None)
    return arrays


def loss_rows(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "losses.csv")) as f:
        return list(csv.DictReader(f))


def stamp(run_dir) -> int:
    with zipfile.ZipFile(os.path.join(run_dir, "model.keras")) as archive:
        return json.loads(archive.read("pixelcnn_tf_run.json"))["epoch"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tfds_dir):
    tmp = tmp_path_factory.mktemp("one")
    result = train(tmp, tmp / "models", "--strategy", "one", *AVERAGED)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "models" / "run"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, tfds_dir):
    tmp = tmp_path_factory.mktemp("two")
    result = launch(tmp, tmp / "models", *AVERAGED)
    return tmp, result


@pytest.mark.slow
def test_two_workers_train_the_model_one_process_trains(one_process, two_workers):
    tmp, result = two_workers
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = tmp / "models" / "run"
    # Only the chief wrote: its run folder, nothing else under the save path, no worker scratch left in TMPDIR.
    assert os.listdir(tmp / "models") == ["run"]
    assert sorted(os.listdir(run_dir)) == sorted(os.listdir(one_process))
    assert os.listdir(tmp / "tmp") == []
    assert [row["epoch"] for row in loss_rows(run_dir)] == ["1", "2"] and stamp(run_dir) == 2
    # Same global batches, seed and data: gradients and BatchNorm statistics reduced over both workers give the
    # one-process weights up to float rounding (summation order).
    one, two = weights(one_process), weights(run_dir)
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-3, atol=1e-4, err_msg=name)
    # The test NLL is the mean over every test image, whichever worker scored it.
    for a, b in zip(loss_rows(one_process), loss_rows(run_dir)):
        assert float(a["test_nats_per_image"]) == pytest.approx(float(b["test_nats_per_image"]), rel=1e-4)
        assert float(a["train_nats_per_image"]) == pytest.approx(float(b["train_nats_per_image"]), rel=1e-4)


@pytest.mark.slow
def test_tensorboard_holds_scalars_and_one_sample_grid_per_epoch(two_workers):
    import tensorflow as tf

    tmp, result = two_workers
    assert result.returncode == 0, result.stderr[-3000:]
    board = tmp / "models" / "run" / "tensorboard"
    files = os.listdir(board)
    assert len(files) == 1, files  # the chief's only
    seen: dict[str, list[int]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(board / files[0])):
        for value in event.summary.value:
            seen.setdefault(value.tag, []).append(event.step)
            if value.tag == "samples":
                images = tf.make_ndarray(value.tensor)  # [width, height, png, ...]
                assert images[:2].tolist() == [b"112", b"112"] and images[2].startswith(b"\x89PNG")
    expected = ["train/nats_per_image", "train/bits_per_dim", "test/nats_per_image", "test/bits_per_dim",
                "learning_rate", "images_per_second", "samples"]
    assert {tag: seen.get(tag) for tag in expected} == {tag: [1, 2] for tag in expected}


@pytest.mark.slow
def test_a_killed_worker_then_the_same_commands_resume_at_the_epoch_it_stopped(tmp_path, tfds_dir):
    save = tmp_path / "models"
    killed = launch(tmp_path, save, PIXELCNN_TF_FAULT="kill@epoch:2", PIXELCNN_TF_FAULT_TASK="1")
    assert killed.returncode == 128 + 9, killed.stderr[-3000:]
    assert "worker 1 exited with 137; stopping the others" in killed.stderr
    run_dir = save / "run"
    assert stamp(run_dir) == 1 and [row["epoch"] for row in loss_rows(run_dir)] == ["1"]
    again = launch(tmp_path, save)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing from epoch 1" in again.stdout
    assert [row["epoch"] for row in loss_rows(run_dir)] == ["1", "2"] and stamp(run_dir) == 2
    steps = weights(run_dir)["optimizer/vars/0"]
    assert int(steps) == 2 * 4  # two epochs of 4 global steps: epoch 1 was not replayed


def peer_config(index=0, peers=2, port=None) -> str:
    addresses = [f"127.0.0.1:{port or 1}"] + [f"127.0.0.1:{9 + i}" for i in range(peers - 1)]
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


BAD_CLUSTERS = {
    "not json": ("{cluster: worker}", "TF_CONFIG is not JSON"),
    "no task": (json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}), 'TF_CONFIG has no "task"'),
    "index out of range": (peer_config(index=2), "TF_CONFIG task index 2 is out of range"),
    "bad address": (json.dumps({"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}), "is not \"host:port\""),
}


@pytest.mark.parametrize("case", sorted(BAD_CLUSTERS))
def test_a_bad_tf_config_is_one_line_before_tensorflow(tmp_path, case):
    raw, message = BAD_CLUSTERS[case]
    started = time.monotonic()
    result = train(tmp_path, tmp_path / "models", TF_CONFIG=raw)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert result.stderr.startswith("train.py: error: ")
    assert time.monotonic() - started < 30 and not os.path.exists(tmp_path / "models")


@pytest.mark.parametrize("flags, message", [
    (["--strategy", "tpu"], "--strategy tpu: no TPU on this machine"),
    (["--strategy", "multiworker"], "--strategy multiworker needs TF_CONFIG"),
    (["--tpu", "my-tpu"], "--tpu my-tpu needs --strategy tpu"),
])
def test_a_strategy_this_machine_cannot_run_is_one_line(tmp_path, flags, message):
    result = train(tmp_path, tmp_path / "models", *flags)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"train.py: error: {message}")
    assert not os.path.exists(tmp_path / "models")


@pytest.mark.slow
def test_an_unreachable_peer_is_one_line_after_the_timeout_not_a_hang(tmp_path, tfds_dir):
    from pixelcnn_tf.distribute.launch import free_ports

    started = time.monotonic()
    result = train(tmp_path, tmp_path / "models", "--connect-timeout", "8", TF_CONFIG=peer_config(port=free_ports(1)[0]))
    assert result.returncode == -9  # SIGKILL by the watchdog (a shell shows 137), as pixelcnn_tf/distribute/watchdog.py says
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["train.py: error: the other workers of TF_CONFIG (127.0.0.1:9) did not answer within 8 s (--connect-timeout)"]
    assert time.monotonic() - started < 120
    time.sleep(0.5)  # the watchdog removes the folder the killed run had created once the run is dead
    assert not os.path.exists(tmp_path / "models")


def test_a_port_in_use_in_tf_config_is_one_line_before_tensorflow(tmp_path):
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        port = held.getsockname()[1]
        result = train(tmp_path, tmp_path / "models", TF_CONFIG=peer_config(port=port, peers=2))
    finally:
        held.close()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0] == (f"train.py: error: TF_CONFIG gives this task 127.0.0.1:{port}, but port {port} cannot be used here: "
                        "Address already in use; pick a free port")
    assert not os.path.exists(tmp_path / "models")


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "launch: error: epochs must be positive, got 0"),
    (["--architecture", "resnet"], "train.py: error: argument --architecture: invalid choice: 'resnet'"),
])
def test_a_bad_train_flag_to_the_launcher_is_one_line_before_any_worker(tmp_path, flags, message):
    result = launch(tmp_path, tmp_path / "models", *flags)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), result.stderr[-3000:]
    assert not os.path.exists(tmp_path / "models")


def test_the_chief_is_task_chief_or_worker_0_of_a_cluster_without_one():
    from pixelcnn_tf.distribute.cluster import read_task
    from pixelcnn_tf.distribute.launch import tf_config

    def task(cluster, kind, index):
        return read_task(json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))

    workers = {"worker": ["a:1", "b:1"]}
    assert [task(workers, "worker", i).is_chief for i in (0, 1)] == [True, False]
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert task(with_chief, "chief", 0).is_chief and not task(with_chief, "worker", 0).is_chief
    assert task(with_chief, "worker", 1).peers == ("c:1", "a:1") and task(with_chief, "worker", 1).workers == 3
    launched = read_task(tf_config(["127.0.0.1:5000", "127.0.0.1:5001"], 1))
    assert (launched.index, launched.address, launched.is_chief) == (1, "127.0.0.1:5001", False)

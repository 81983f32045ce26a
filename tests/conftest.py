"""Shared fixtures: the prepared offline MNIST copy and a tiny trained checkpoint."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests never download: they read the prepared TFDS copy (CI: ../shared/tfds beside the checkout).
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "tfds"))

TINY_TRAIN_FLAGS = [
    "--num-layers", "2", "--filters", "8", "--kernel-size", "3", "--levels", "4",
    "--epochs", "1", "--batch-size", "32", "--train-examples", "128", "--test-examples", "32",
    "--precision", "float32",  # auto is bf16 on CPUs with AVX-512 BF16: the exports' float32 parity would not hold
]


@pytest.fixture(scope="session")
def tfds_dir():
    path = os.environ["TFDS_DATA_DIR"]
    if not os.path.isdir(os.path.join(path, "mnist")):
        pytest.fail(f"no prepared MNIST at {path}; set TFDS_DATA_DIR to a TFDS directory holding mnist/")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tfds_dir):
    """A tiny model trained for one epoch by train.py; returns its run directory."""
    import train

    save_path = tmp_path_factory.mktemp("models")
    code = train.main(TINY_TRAIN_FLAGS + ["--save-path", str(save_path), "--run-name", "tiny"])
    assert code == 0
    return os.path.join(str(save_path), "tiny")


def _export(run_dir: str, out: str, *flags: str) -> str:
    import export.__main__ as export_cli

    assert export_cli.main(["--checkpoint", run_dir, "--out", out, "--parity-images", "8", *flags]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_conditional_run(tmp_path_factory, tfds_dir):
    """The tiny model, class-conditional on MNIST's 10 labels."""
    import train

    save_path = tmp_path_factory.mktemp("models")
    code = train.main(TINY_TRAIN_FLAGS + ["--conditional", "--save-path", str(save_path), "--run-name", "tiny_conditional"])
    assert code == 0
    return os.path.join(str(save_path), "tiny_conditional")


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """`python -m export` of tiny_run with every quantized TFLite variant; returns the export directory."""
    return _export(tiny_run, str(tmp_path_factory.mktemp("exports") / "tiny"), "--tflite-quantize", "float16,dynamic,int8", "--calibration-images", "16")


@pytest.fixture(scope="session")
def tiny_conditional_export(tiny_conditional_run, tmp_path_factory):
    return _export(tiny_conditional_run, str(tmp_path_factory.mktemp("exports") / "tiny_conditional"))

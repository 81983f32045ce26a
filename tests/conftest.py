"""Shared fixtures (MNIST, a tiny trained checkpoint and its exports) and the `slow` marker's automatic part."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A prepared TFDS copy beside the checkout (CI: ../shared/tfds) is used where it exists; otherwise tfds uses its own
# data directory and downloads MNIST as usual (pixelcnn_tf.datasets.pipeline says in one line when it cannot).
PREPARED_TFDS = os.path.join(os.path.dirname(ROOT), "shared", "tfds")
if "TFDS_DATA_DIR" not in os.environ and os.path.isdir(os.path.join(PREPARED_TFDS, "mnist")):
    os.environ["TFDS_DATA_DIR"] = PREPARED_TFDS

import pixelcnn_tf  # noqa: E402,F401  (before any test imports TensorFlow: it picks TensorFlow's CPU kernels)
from helpers import TINY_TRAIN_FLAGS, built_once, export_run, train_run  # noqa: E402

# Tests using these fixtures train or export (tf2onnx, the TFLite converter): they are `slow` without saying so.
SLOW_FIXTURES = {"tiny_run", "tiny_conditional_run", "tiny_export", "tiny_conditional_export", "gated_run", "gated_export",
                 "rgb_export", "rgb_mixture_export"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """train.main sets a global Keras dtype policy (precision 'auto' is mixed_bfloat16 on a CPU with AVX512-BF16):
    put float32 back, so a later test's model does not silently compute in bf16."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def tfds_dir():
    """The TFDS data directory holding MNIST (None: tfds's default), prepared or downloaded once."""
    from pixelcnn_tf.datasets import pipeline as data
    from pixelcnn_tf.errors import UserError

    try:
        data.load_arrays("mnist", "test", levels=2, count=1)
        problem = None
    except UserError as e:  # offline without data: pixelcnn_tf.datasets.pipeline's one line says where to point TFDS_DATA_DIR
        problem = str(e)
    if problem:
        pytest.fail(f"{problem} (for the tests: {PREPARED_TFDS} is used when it exists)", pytrace=False)
    return os.environ.get("TFDS_DATA_DIR")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tfds_dir):
    """A tiny model trained for one epoch by train.py; returns its run directory."""
    folder = built_once(tmp_path_factory, "tiny_run", lambda f: train_run(f, "tiny", *TINY_TRAIN_FLAGS))
    return os.path.join(folder, "tiny")


@pytest.fixture(scope="session")
def tiny_conditional_run(tmp_path_factory, tfds_dir):
    """The tiny model, class-conditional on MNIST's 10 labels."""
    folder = built_once(tmp_path_factory, "tiny_conditional_run", lambda f: train_run(f, "tiny_conditional", *TINY_TRAIN_FLAGS, "--conditional"))
    return os.path.join(folder, "tiny_conditional")


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """`python -m export` of tiny_run with every quantized TFLite variant; returns the export directory."""
    flags = ("--tflite-quantize", "float16,dynamic,int8", "--calibration-images", "16")
    return os.path.join(built_once(tmp_path_factory, "tiny_export", lambda f: export_run(tiny_run, str(f / "tiny"), *flags)), "tiny")


@pytest.fixture(scope="session")
def tiny_conditional_export(tiny_conditional_run, tmp_path_factory):
    folder = built_once(tmp_path_factory, "tiny_conditional_export", lambda f: export_run(tiny_conditional_run, str(f / "tiny_conditional")))
    return os.path.join(folder, "tiny_conditional")


def _rgb_export(tmp_path_factory, name: str, *flags: str) -> str:
    """A tiny RGB model (8x10, 16 levels) trained one epoch by train.py on a random image folder, exported."""
    from test_folders import make_folder

    def build(base):
        root = make_folder(base / "folder", classes=None, per_split=(16, 4), size=(10, 8))
        train_run(base / "models", name, "--dataset", "folder", "--data-dir", root, "--num-layers", "2", "--filters", "8",
               "--kernel-size", "3", "--levels", "16", "--epochs", "1", "--batch-size", "8", "--no-tensorboard", *flags)
        export_run(str(base / "models" / name), str(base / "exports" / name))

    return os.path.join(built_once(tmp_path_factory, name, build), "exports", name)


@pytest.fixture(scope="session")
def rgb_export(tmp_path_factory):
    """An RGB export (softmax over 16 levels per channel) with its sampler graph, for the page."""
    return _rgb_export(tmp_path_factory, "rgb")


@pytest.fixture(scope="session")
def rgb_mixture_export(tmp_path_factory):
    """The same RGB model with a discretized logistic mixture of 2 as its output distribution."""
    return _rgb_export(tmp_path_factory, "rgb_mixture", "--output", "logistic_mixture", "--mixtures", "2")


@pytest.fixture(scope="module")
def page():
    """A headless Chromium page for the browser tests (test_web*.py); a missing browser fails or skips (need_browser)."""
    from helpers import need_browser

    from bench.browser import Page

    need_browser()
    with Page() as p:
        yield p

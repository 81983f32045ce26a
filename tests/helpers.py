"""Helpers shared by the test modules: random weights, logits, export copies, one-line-error checks, import blockers,
fixtures built once per session."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_TRAIN_FLAGS = [
    "--num-layers", "2", "--filters", "8", "--kernel-size", "3", "--levels", "4",
    "--epochs", "1", "--batch-size", "32", "--train-examples", "128", "--test-examples", "32",
]  # fmt: skip


def built_once(tmp_path_factory, name: str, build) -> str:
    """build(folder) once per test session, also under pytest-xdist, where each worker would otherwise train and export
    the same fixture again: the first worker to ask builds it in the session's shared temporary folder under a lock,
    the others wait and reuse it (pytest-xdist's documented pattern). Returns folder; tests only read it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # gw0's and gw1's folders sit in the session's one
    folder, done = root / f"built-{name}", root / f"built-{name}.done"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker whose build failed left it half done
            folder.mkdir()
            build(folder)
            done.touch()
    return str(folder)


def train_run(folder, name: str, *flags: str) -> str:
    """train.py's main with flags, saving the run as folder/name; returns its run directory."""
    import train

    assert train.main([*flags, "--save-path", str(folder), "--run-name", name]) == 0
    return os.path.join(str(folder), name)


def export_run(run_dir: str, out: str, *flags: str, parity_images: int = 8) -> str:
    """`python -m export` of run_dir to out (its main, in this process); returns out."""
    import export.__main__ as export_cli

    assert export_cli.main(["--checkpoint", run_dir, "--out", out, "--parity-images", str(parity_images), *flags]) == 0
    return out


def logits_of(model, images, labels=None) -> np.ndarray:
    """The Keras model's logits in inference mode."""
    inputs = {"image": np.asarray(images, np.float32)}
    if labels is not None:
        inputs["label"] = np.asarray(labels, np.int32)
    return np.asarray(model(inputs, training=False))


def one_change_per_image(config, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(reference, moved): one random image repeated once per sub-pixel, and the same batch with sub-pixel p (raster,
    then channel order) of image p moved by about half the levels: causality tests compare their outputs row by row,
    so a sub-pixel outside a receptive field gives exactly 0 rather than batch-dependent float noise."""
    h, w, c = config.height, config.width, config.channels
    base = np.random.default_rng(seed).integers(0, config.levels, (1, h, w, c)).astype(np.float32)
    reference = np.repeat(base, h * w * c, axis=0)
    moved = reference.copy()
    for p in range(h * w * c):
        i, j, ch = np.unravel_index(p, (h, w, c))
        moved[p, i, j, ch] = (base[0, i, j, ch] + config.levels // 2 + 1) % config.levels
    return reference, moved


def randomize(model, seed=0):
    """Random weights, BatchNorm shifted up so ReLUs stay active: no dependency hides behind a dead unit."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
        elif weight.path.endswith("_bn/beta"):
            weight.assign(rng.uniform(20.0, 30.0, weight.shape).astype(np.float32))
        else:
            weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    return model


def randomize_gated(model, seed=0):
    """Random weights that keep every unit responsive.

    Gates see N(0, 0.5) weights, far from tanh/sigmoid saturation; the ReLUs after the skips get
    positive biases (the seed's after BatchNorm a large beta), so no dependency hides behind a dead unit.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        path = weight.path
        if "moving_variance" in path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
        elif path.endswith("_bn/beta"):
            weight.assign(rng.uniform(20.0, 30.0, weight.shape).astype(np.float32))
        elif path.endswith("bias"):
            positive = "_skip/" in path or path.startswith("out_conv/")
            weight.assign(np.full(weight.shape, 1.0 if positive else 0.0, np.float32))
        else:
            weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    return model


def randomize_moderate(model, seed=0):
    """Random weights and BatchNorm statistics far from the identity, with logits of order 1-10 (absolute 1e-4 is fair)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        path = weight.path
        if "moving_variance" in path:
            value = rng.uniform(0.3, 3.0, weight.shape)
        elif "moving_mean" in path:
            value = rng.normal(0.0, 1.0, weight.shape)
        elif path.endswith("/gamma"):
            value = rng.uniform(0.5, 2.0, weight.shape)
        elif path.endswith("/beta"):
            value = rng.uniform(0.0, 1.0, weight.shape)
        else:
            value = rng.normal(0.0, 0.4, weight.shape)
        weight.assign(value.astype(np.float32))
    return model


def copy_export(source: str, destination) -> str:
    shutil.copytree(source, destination)
    return str(destination)


def rewrite_metadata(export_dir: str, change) -> None:
    path = os.path.join(export_dir, "metadata.json")
    meta = json.load(open(path))
    change(meta)
    json.dump(meta, open(path, "w"))


def error_line(capsys, prog: str, only: bool = True) -> str:
    """The 'prog: error: ...' line a CLI printed last on stderr (only=True: the only line), with no traceback."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"{prog}: error: "), lines
    assert not only or len(lines) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    return lines[-1]


def generate_error(capsys, argv) -> str:
    """Run generate.py in-process; it must fail with exit 2 and exactly one error line."""
    import generate

    capsys.readouterr()
    assert generate.main(argv) == 2
    return error_line(capsys, "generate.py")


def assert_one_line_error(main, args, pattern, capsys):
    """main(args) exits 2 with exactly one 'prog: error: ...' line on stderr containing pattern."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0] and pattern in err[0], err


def export_leftovers(folder: str, name: str) -> list[str]:
    """Temporary folders an export leaves beside its --out when it fails (there must be none)."""
    return [entry for entry in os.listdir(folder) if entry.startswith(f".{name}.")]


SERVE_BLOCKED = ("tensorflow", "keras", "tf_keras", "tf2onnx", "pixelcnn_tf", "jax", "torch")  # serve needs none of them
# Python source that makes importing TensorFlow (and everything built on it) fail, as on a device without it.
BLOCK_TENSORFLOW = """
import importlib.abc, sys
BLOCKED = set({blocked!r})

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: serve must not need it")

sys.meta_path.insert(0, Block())
try:
    import tensorflow
    raise SystemExit("the blocker failed: tensorflow imported")
except ImportError:
    pass
"""


def run_without_tensorflow(script: str, *args: str, blocked=SERVE_BLOCKED, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run script (Python source) in a fresh interpreter where importing `blocked` fails; cwd is the checkout."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1")
    source = BLOCK_TENSORFLOW.format(blocked=tuple(blocked)) + script
    source += "\nassert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]\n"
    return subprocess.run([sys.executable, "-c", source, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def fake_onnx(source_export):
    """write_onnx stand-in that copies a finished export's model.onnx: keeps tf2onnx's 15 s out of a test."""

    def write_onnx(directory, conditional):
        shutil.copy(os.path.join(source_export, "model.onnx"), os.path.join(directory, "model.onnx"))
        from serve.manifest import read_manifest

        return read_manifest(source_export).artifacts["onnx"]

    return write_onnx


def fake_step_converter(source_export):
    """export.step.convert_step_model stand-in that copies a finished export's step files: keeps tf2onnx out."""

    def convert_step_model(step_model, work, out_dir, part, kinds=("onnx", "tflite")):
        paths = {kind: os.path.join(out_dir, f"{part}.{kind}") for kind in kinds}
        for kind, path in paths.items():
            shutil.copy(os.path.join(source_export, "step", f"{part}.{kind}"), path)
        return paths

    return convert_step_model


def float32_checkpoint(run_dir: str):
    """(model, config) of a checkpoint computing in float32, as the exporter converts it.

    train.py's precision 'auto' picks mixed_bfloat16 on a CPU with AVX512-BF16; the exports are float32 whatever the
    checkpoint, so they are compared with the float32 model (bf16 logits differ by ~1e-3).
    """
    from pixelcnn_tf.run.checkpoints import float32_model, load_checkpoint

    model, config, _ = load_checkpoint(run_dir)
    return float32_model(model, config), config


def fake_sampler_converter(source_export):
    """export.sampler.convert_sampler stand-in that copies a finished export's sampler files: keeps tf2onnx out."""

    def convert_sampler(params, config, out_dir, kinds=("onnx", "tflite")):
        os.makedirs(out_dir, exist_ok=True)
        return {kind: shutil.copy(os.path.join(source_export, f"sampler.{kind}"), out_dir) for kind in kinds}

    return convert_sampler


# The browser tests (test_web*.py): the page fixture is in conftest.py.
SKIP_BROWSER = "PIXELCNN_TF_SKIP_BROWSER"
MATCH = 0.999  # fraction of the page's sub-pixels that must equal Python's (float32 kernels differ in rare ties)


def need_browser() -> None:
    """A missing browser fails the browser tests with the command that installs it: a green run includes them,
    unless PIXELCNN_TF_SKIP_BROWSER=1 says to skip them."""
    from bench.browser import BrowserMissing, find_browser

    try:
        find_browser()
    except BrowserMissing as e:
        if os.environ.get(SKIP_BROWSER) == "1":
            pytest.skip(str(e))
        pytest.fail(f"{e} (or set {SKIP_BROWSER}=1 to skip the browser tests)", pytrace=False)


def page_images(result: dict, shape) -> np.ndarray:
    """The page's drawn images (a flat list in its result) as level indices (N, H, W, C)."""
    return np.asarray(result["images"], dtype=np.int64).reshape(-1, *shape)


def assert_same_pixels(page_result: np.ndarray, python_result: np.ndarray) -> None:
    assert page_result.shape == python_result.shape
    agree = float(np.mean(page_result == python_result))
    assert agree >= MATCH, f"only {agree:.4%} of sub-pixels agree with Python"

"""Cached gated sampling: pixel and row steps reproduce the full gated model and draw what naive sampling draws."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from helpers import TINY_TRAIN_FLAGS, built_once, copy_export, export_run
from helpers import randomize_gated as randomize
from helpers import rewrite_metadata, run_without_tensorflow, train_run

import generate
from pixelcnn_tf.architectures.gated.step import fold as fold_gated_params
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.generation import keras_logits_fn, keras_sampler
from pixelcnn_tf.model import build_model, cached_layout, step_params
from serve import Sampler, ServeError
from serve.architectures.gated import numpy_gated_step
from serve.cached import sample_cached, teacher_forced_logits
from serve.sampling import SamplingError, sample_naive

CASES = {"grey-binary": (1, 2, 0), "rgb": (3, 8, 0), "rgb-conditional": (3, 4, 3)}


def gated_config(channels=1, levels=4, num_classes=0, **overrides) -> ModelConfig:
    settings = dict(architecture="gated", height=6, width=5, channels=channels, levels=levels, num_layers=3,
                    kernel_size=3, filters=12, num_classes=num_classes)
    return ModelConfig(**(settings | overrides))


def labels_for(config: ModelConfig, n: int):
    return np.arange(n, dtype=np.int32) % config.num_classes if config.num_classes else None


@pytest.mark.parametrize("case", CASES)
def test_steps_reproduce_the_full_model_at_every_sub_pixel(case):
    channels, levels, classes = CASES[case]
    config = gated_config(channels, levels, classes, kernel_size=5)
    model = randomize(build_model(config))
    rng = np.random.default_rng(1)
    images = rng.integers(0, levels, (3, config.height, config.width, channels))
    labels = labels_for(config, 3)
    full = np.asarray(model({"image": images.astype(np.float32)} | ({"label": labels} if classes else {}), training=False))
    assert np.abs(full).max() > 1.0  # logits of a real size, so 1e-4 is a meaningful limit
    params = fold_gated_params(model, config)
    steps = {"numpy": numpy_gated_step(params), "keras": keras_sampler(model, config, "cached").step}
    for name, step in steps.items():
        forced = teacher_forced_logits(step, images, labels, cached_layout(config), config.distribution)
        assert forced.shape == full.shape, name
        assert np.abs(forced - full).max() < 1e-4, name


@pytest.mark.parametrize("case", CASES)
def test_cached_draws_the_same_pixels_as_naive(case):
    channels, levels, classes = CASES[case]
    config = gated_config(channels, levels, classes)
    model = randomize(build_model(config), seed=2)
    kwargs = dict(num_images=4, shape=(config.height, config.width, channels), seed=3, labels=labels_for(config, 4),
                  distribution=config.distribution)
    naive = sample_naive(keras_logits_fn(model, bool(classes)), **kwargs)
    # The shared entry point dispatches on the layout's architecture, as serve.Sampler calls it.
    cached = sample_cached(numpy_gated_step(fold_gated_params(model, config)), **kwargs, **cached_layout(config))
    assert (naive == cached).mean() >= 0.999
    assert len(np.unique(cached)) > 1  # a model drawing one constant level would agree trivially


def test_keras_cached_sampler_is_a_drop_in_and_batches_do_not_matter():
    config = gated_config(3, 4, 3)
    model = randomize(build_model(config))
    naive, cached = keras_sampler(model, config), keras_sampler(model, config, "cached")
    assert cached.spec == naive.spec and cached.layout["architecture"] == "gated"
    whole = cached.sample(3, labels=[0, 1, 2], seed=7)
    np.testing.assert_array_equal(whole, naive.sample(3, labels=[0, 1, 2], seed=7))
    counted = []
    np.testing.assert_array_equal(cached.sample(3, labels=[0, 1, 2], seed=7, batch_size=2, progress=counted.append), whole)
    assert sum(counted) == 3 * config.dims
    with pytest.raises(SamplingError, match="class-conditional"):
        cached.sample(2)


def test_kernel_one_has_no_cached_path():
    config = gated_config(kernel_size=1)
    with pytest.raises(UserError, match="kernel_size >= 3"):
        step_params(build_model(config), config)
    params = fold_gated_params(build_model(gated_config()), gated_config())
    with pytest.raises(SamplingError, match="kernel_size >= 3"):
        sample_cached(numpy_gated_step(params), num_images=1, shape=(6, 5, 1), distribution=gated_config().distribution,
                      **(cached_layout(gated_config()) | {"kernel_size": 1}))


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, tfds_dir):
    flags = (*TINY_TRAIN_FLAGS, "--architecture", "gated", "--conditional")
    return os.path.join(built_once(tmp_path_factory, "gated_run", lambda f: train_run(f, "gated", *flags)), "gated")


@pytest.fixture(scope="module")
def gated_export(gated_run, tmp_path_factory):
    folder = built_once(tmp_path_factory, "gated_export", lambda f: export_run(gated_run, str(f / "gated"), parity_images=4))
    return os.path.join(folder, "gated")


@pytest.mark.slow
def test_gated_export_writes_pixel_and_row_steps(gated_export):
    meta = json.load(open(os.path.join(gated_export, "metadata.json")))
    step = meta["step"]
    assert step["layout"] == {"num_layers": 2, "kernel_size": 3, "filters": 8, "levels": 4, "architecture": "gated"}
    assert sorted(os.listdir(os.path.join(gated_export, "step"))) == [
        "pixel.onnx", "pixel.tflite", "row.onnx", "row.tflite", "step_params.npz"]
    pixel = step["artifacts"]["onnx"]["parts"]["pixel"]
    assert pixel["inputs"] == ["window_0", "window_1", "above_0", "above_1", "label"]
    assert pixel["outputs"] == ["features_0", "logits"]
    row = step["artifacts"]["tflite"]["parts"]["row"]
    assert row["inputs"] == ["band_0", "band_1", "label"] and set(row["outputs"]) == {"above_0", "vertical_0", "above_1"}
    report = json.load(open(os.path.join(gated_export, "parity.json")))["step"]
    assert report["positions"] == 2 * 28 * 28 and set(report["artifacts"]) == {"onnx", "tflite", "numpy"}
    assert all(row["ok"] and row["max_abs_logit_diff"] < 1e-4 for row in report["artifacts"].values())


@pytest.mark.slow
def test_every_backend_draws_the_naive_images(gated_run, gated_export, tmp_path, capsys):
    labels = [0, 3, 9]
    naive = Sampler.load(gated_export, "onnx", sampler="naive").sample(3, seed=5, labels=labels)
    for backend in ("onnx", "tflite", "numpy"):
        sampler = Sampler.load(gated_export, backend, sampler="cached")
        assert sampler.sampler == "cached", backend
        np.testing.assert_array_equal(sampler.sample(3, seed=5, labels=labels), naive, err_msg=backend)
    for backend in ("onnx", "tflite"):  # their default: the sampler graph, one call
        sampler = Sampler.load(gated_export, backend)
        assert sampler.sampler == "graph", backend
        np.testing.assert_array_equal(sampler.sample(3, seed=5, labels=labels), naive, err_msg=backend)
    # Batch 1 after batch 3: the exported steps take any batch size.
    np.testing.assert_array_equal(Sampler.load(gated_export, "tflite", sampler="cached").sample(1, seed=5, labels=0), naive[:1])
    # generate.py: cached on the checkpoint and on the export, the same PNG as naive, and no fallback note.
    pngs = []
    for source, backend, sampler in ((gated_run, "keras", "cached"), (gated_export, "onnx", "cached"), (gated_export, "onnx", "naive")):
        out = tmp_path / f"{backend}-{sampler}.png"
        argv = ["--checkpoint", source, "--backend", backend, "--sampler", sampler, "--label", "4", "--num-images", "2",
                "--out", str(out), "--no-progress"]
        assert generate.main(argv) == 0
        captured = capsys.readouterr()
        assert f"with {sampler} sampling" in captured.out and "note" not in captured.err
        pngs.append(out.read_bytes())
    assert pngs[0] == pngs[1] == pngs[2]


@pytest.mark.slow
def test_a_missing_or_foreign_part_is_refused(gated_export, tmp_path):
    broken = copy_export(gated_export, tmp_path / "no-row")
    rewrite_metadata(broken, lambda meta: meta["step"]["artifacts"]["onnx"]["parts"].pop("row"))
    with pytest.raises(ServeError, match="must name the parts pixel, row"):
        Sampler.load(broken, "onnx", sampler="cached")
    assert Sampler.load(broken, "onnx", sampler="naive").sampler == "naive"
    swapped = copy_export(gated_export, tmp_path / "swapped")
    shutil.copy(os.path.join(swapped, "step", "pixel.tflite"), os.path.join(swapped, "step", "row.tflite"))
    with pytest.raises(ServeError, match="sha256|bytes"):
        Sampler.load(swapped, "tflite", sampler="cached")

    def vouch(meta):  # metadata that vouches for the swapped file: the tensor check must still refuse it
        parts = meta["step"]["artifacts"]["tflite"]["parts"]
        parts["row"].update(bytes=parts["pixel"]["bytes"], sha256=parts["pixel"]["sha256"])

    rewrite_metadata(swapped, vouch)
    with pytest.raises(ServeError, match="not the ones metadata.json names"):
        Sampler.load(swapped, "tflite", sampler="cached")


@pytest.mark.slow
def test_gated_cached_export_samples_without_tensorflow(gated_export):
    script = """
from serve import Sampler
for backend in ("onnx", "tflite", "numpy"):
    sampler = Sampler.load(sys.argv[1], backend)
    assert sampler.sampler == ("cached" if backend == "numpy" else "graph") and sampler.sample(1, labels=2).shape == (1, 28, 28, 1)
print("ok")
"""
    done = run_without_tensorflow(script, gated_export)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ok"

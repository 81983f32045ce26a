"""The logistic mixture output wired through both architectures: pixel-level causality, folded steps, identical draws."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import logits_of, one_change_per_image, randomize_gated, randomize_moderate

from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.generation import keras_logits_fn
from pixelcnn_tf.model import architecture, build_model, cached_layout, model_spec, step_params
from serve.cached import sample_cached, teacher_forced_logits
from serve.sampling import sample_naive

RANDOMIZE = {"pixelcnn": randomize_moderate, "gated": randomize_gated}


def mixture_config(arch: str, channels: int = 3, num_classes: int = 0, **overrides) -> ModelConfig:
    settings = dict(architecture=arch, height=6, width=5, channels=channels, levels=16, num_layers=3,
                    kernel_size=3, filters=12, num_classes=num_classes, output="logistic_mixture", mixtures=3)
    return ModelConfig(**(settings | overrides))


def pixel_influence(model, config: ModelConfig) -> np.ndarray:
    """moved[p, q]: perturbing input sub-pixel p changes the head of pixel q (p in sub-pixel, q in pixel raster order)."""
    h, w, c = config.height, config.width, config.channels
    reference, moved = one_change_per_image(config)
    diff = np.abs(logits_of(model, moved) - logits_of(model, reference)).max(axis=-1)  # (P, h, w): all head features
    return diff.reshape(h * w * c, h * w) > 1e-5


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_level_masks_keep_every_head_causal(arch, channels):
    config = mixture_config(arch, channels)
    moved = pixel_influence(RANDOMIZE[arch](build_model(config)), config)
    pixel_of = np.arange(moved.shape[0]) // channels
    pixels = np.arange(moved.shape[1])
    # No head sees its own pixel (any channel: the mixture couples them itself) or a later one.
    assert not moved[pixel_of[:, None] >= pixels[None, :]].any()
    # ...and the field reaches back: each pixel's head depends on every channel of the pixel before it on its row.
    for q in pixels[1:]:
        if q % config.width:
            assert moved[pixel_of == q - 1, q].all(), q


def test_gated_mixture_head_sees_exactly_the_no_blind_spot_field():
    config = mixture_config("gated", 3, kernel_size=3, num_layers=2, height=7, width=7)
    moved = pixel_influence(randomize_gated(build_model(config)), config)
    h, w, c = config.height, config.width, config.channels
    reach = config.num_layers * (config.kernel_size // 2)
    i, j, _ = np.unravel_index(np.arange(h * w * c), (h, w, c))
    qi, qj = np.unravel_index(np.arange(h * w), (h, w))
    up, right = qi[None, :] - i[:, None], j[:, None] - qj[None, :]
    field = ((up == 0) & (-reach <= right) & (right <= -1)) | ((1 <= up) & (up <= 1 + reach) & (np.abs(right) <= reach))
    np.testing.assert_array_equal(moved, field)


@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_steps_reproduce_the_mixture_head_and_draw_naives_pixels(arch, num_classes):
    config = mixture_config(arch, 3, num_classes, kernel_size=5 if arch == "gated" else 3)
    model = RANDOMIZE[arch](build_model(config), seed=2)
    rng = np.random.default_rng(4)
    images = rng.integers(0, config.levels, (3, config.height, config.width, 3))
    labels = np.arange(3, dtype=np.int32) % num_classes if num_classes else None
    full = logits_of(model, images, labels)
    assert full.shape == (3, config.height, config.width, config.distribution.features)
    step = architecture(config).serving.numpy_step(step_params(model, config))
    forced = teacher_forced_logits(step, images, labels, cached_layout(config), config.distribution)
    assert np.abs(forced - full).max() < 1e-4 * max(1.0, np.abs(full).max())
    kwargs = dict(num_images=3, shape=(config.height, config.width, 3), seed=5, labels=labels,
                  distribution=config.distribution)
    calls = []

    def counted(*args):  # the seed step is one function; the gated one a (pixel, row) pair
        calls.append(len(args[0][0]))
        return step(*args)

    naive = sample_naive(keras_logits_fn(model, bool(num_classes)), **kwargs)
    cached = sample_cached(counted if arch == "pixelcnn" else step, **kwargs, **cached_layout(config))
    assert (naive == cached).mean() >= 0.999 and len(np.unique(cached)) > 2
    if arch == "pixelcnn":  # one network step per pixel, not per sub-pixel: a third of softmax's for RGB
        assert len(calls) == config.height * config.width


def test_mixture_nll_from_keras_equals_serves():
    from pixelcnn_tf.evaluate import per_image_nll_fn

    config = mixture_config("gated", 3, 2)
    model = randomize_gated(build_model(config), seed=3)
    rng = np.random.default_rng(6)
    images = rng.integers(0, config.levels, (4, config.height, config.width, 3))
    labels = np.array([0, 1, 1, 0], np.int32)
    inputs = {"image": images.astype(np.float32), "label": labels}
    keras_nll = per_image_nll_fn(model, config)(inputs, images.astype(np.int32)).numpy()
    serve_nll = model_spec(config).distribution.nll_per_image(logits_of(model, images, labels), images)
    np.testing.assert_allclose(keras_nll, serve_nll, rtol=1e-6)
    assert keras_nll.min() > 0


@pytest.mark.slow
def test_an_rgb_mixture_trains_exports_and_draws_the_same_pixels_everywhere(tmp_path, monkeypatch, capsys):
    """train.py --output logistic_mixture on an RGB folder, then the export: every backend and sampler draws the
    Keras model's pixels, scores its NLL, and the exported head is causal at the pixel level."""
    from test_folders import make_folder

    import export.__main__ as export_cli
    import train
    from pixelcnn_tf import evaluate
    from pixelcnn_tf.generation import keras_sampler
    from pixelcnn_tf.run.checkpoints import load_checkpoint
    from serve import Sampler

    monkeypatch.setenv("PIXELCNN_CACHE_DIR", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "f", classes=("x", "y"), per_split=(6, 3), size=(6, 5), ext="png")
    flags = ["--dataset", "folder", "--data-dir", root, "--conditional", "--output", "logistic_mixture", "--mixtures", "2",
             "--levels", "16", "--architecture", "gated", "--num-layers", "2", "--filters", "8", "--kernel-size", "3",
             "--epochs", "1", "--batch-size", "4", "--save-path", str(tmp_path / "models"), "--run-name", "mix",
             "--no-tensorboard"]  # fmt: skip
    assert train.main(flags) == 0
    run_dir, out = str(tmp_path / "models" / "mix"), str(tmp_path / "export")
    assert export_cli.main(["--checkpoint", run_dir, "--out", out, "--parity-images", "4"]) == 0
    model, config, _ = load_checkpoint(run_dir)
    labels = [0, 1, 1]
    expected = keras_sampler(model, config.model, "cached").sample(3, seed=7, labels=labels)
    assert len(np.unique(expected)) > 2
    for backend, sampler in [("onnx", "graph"), ("tflite", "graph"), ("onnx", "cached"), ("tflite", "cached"),
                             ("numpy", "cached"), ("onnx", "naive")]:
        drawn = Sampler.load(out, backend, sampler=sampler).sample(3, seed=7, labels=labels)
        np.testing.assert_array_equal(drawn, expected, err_msg=f"{backend} {sampler}")
    # Scores: the Keras run and the export's ONNX model give the same exact NLL over the test folder.
    scores = {}
    for checkpoint in (run_dir, out):
        capsys.readouterr()
        argv = ["--checkpoint", checkpoint, "--data-dir", root, "--out", str(tmp_path / "score.json")]
        assert evaluate.main(argv) == 0
        scores[checkpoint] = json.load(open(tmp_path / "score.json"))["nats_per_image"]
    assert abs(scores[run_dir] - scores[out]) < 1e-3 * scores[run_dir], scores
    # The exported head is causal at the pixel level: no pixel's head moves when its own or a later pixel changes.
    onnx = Sampler.load(out, "onnx")
    h, w = onnx.spec.height, onnx.spec.width
    base = np.random.default_rng(0).integers(0, 16, (1, h, w, 3)).astype(np.float32)
    raster = np.arange(h * w).reshape(h, w)
    for i, j, c in [(2, 3, 0), (2, 3, 2), (3, 0, 1)]:
        moved = base.copy()
        moved[0, i, j, c] = (base[0, i, j, c] + 9) % 16
        label = np.zeros(1, np.int32)
        diff = np.abs(onnx.logits_fn(moved, label) - onnx.logits_fn(base, label)).max(axis=-1)[0]
        assert not diff[raster <= i * w + j].any() and diff[raster > i * w + j].any(), (i, j, c)

"""Cached sampling: the step model reproduces the full model at every position and draws what naive sampling draws."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import logits_of as full_logits
from helpers import randomize as randomize_large
from helpers import randomize_moderate, run_without_tensorflow

from pixelcnn_tf.architectures.seed.step import fold as fold_step_params
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.generation import compiled_runner, keras_logits_fn, keras_sampler
from pixelcnn_tf.model import build_model, cached_layout, step_models
from serve.architectures.seed import from_runners, new_caches, numpy_step_fn
from serve.cached import sample_cached
from serve.runtime import onnx_runner, tflite_runner
from serve.sampling import SamplingError, sample_naive

CASES = {"grey": (1, 0), "rgb": (3, 0), "rgb-conditional": (3, 4)}


def tiny_config(channels=1, num_classes=0, **overrides) -> ModelConfig:
    settings = dict(height=6, width=6, channels=channels, levels=8, num_layers=3, kernel_size=3, filters=12,
                    num_classes=num_classes)
    settings.update(overrides)
    return ModelConfig(**settings)


def sampling_kwargs(config: ModelConfig, num_images: int, seed: int = 3) -> dict:
    labels = np.arange(num_images, dtype=np.int32) % config.num_classes if config.num_classes else None
    return dict(num_images=num_images, shape=(config.height, config.width, config.channels), seed=seed, labels=labels,
                distribution=config.distribution)


def cached_kwargs(config: ModelConfig) -> dict:
    return cached_layout(config)


def keras_step_fn(model, config):
    """The seed step function over its Keras step model, as the Keras cached sampler runs it."""
    return from_runners({"step": compiled_runner(step_models(model, config)["step"])}, config.num_layers, bool(config.num_classes))


def recording(step_fn, log: list):
    def step(windows, labels):
        features, logits = step_fn(windows, labels)
        log.append(np.asarray(logits))
        return features, logits

    return step


def logits_used(log: list, config: ModelConfig, num_images: int) -> np.ndarray:
    """The logits each step drew from: step (i, j, c) contributes channel c, in the full model's layout."""
    h, w, c = config.height, config.width, config.channels
    steps = np.stack(log, axis=1).reshape(num_images, h, w, c, c, config.levels)
    return np.stack([steps[:, :, :, ch, ch] for ch in range(c)], axis=3)


@pytest.mark.parametrize("case", CASES)
def test_step_model_matches_full_model_at_every_position(case):
    channels, num_classes = CASES[case]
    config = tiny_config(channels, num_classes)
    model = randomize_moderate(build_model(config))
    rng = np.random.default_rng(5)
    images = rng.integers(0, config.levels, (2, 6, 6, channels)).astype(np.float32)
    labels = np.array([1, 3], np.int32) if num_classes else None
    names = [f"masked_conv_{n}_relu" for n in range(config.num_layers)]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names] + [model.output])
    inputs = {"image": images} | ({"label": labels} if num_classes else {})
    *activations, logits = [np.asarray(t) for t in probe(inputs, training=False)]
    # Caches filled with the whole image: future taps hold real (non-zero) values the masks must ignore.
    pad, k = config.kernel_size // 2, config.kernel_size
    caches = new_caches(2, (6, 6, channels), config.num_layers, k, config.filters, config.levels)
    for cache, source in zip(caches, [images] + activations[:-1]):
        cache[:, pad:, pad : pad + 6] = source
    positions = [(i, j) for i in range(6) for j in range(6)]
    windows = [np.concatenate([cache[:, i : i + pad + 1, j : j + k] for i, j in positions]) for cache in caches]
    all_labels = np.tile(labels, len(positions)) if num_classes else None
    for step_fn in (keras_step_fn(model, config), numpy_step_fn(fold_step_params(model, config))):
        features, step_logits = step_fn(windows, all_labels)
        expected = np.concatenate([logits[:, i, j] for i, j in positions])
        step_logits = step_logits.reshape(expected.shape)  # the numpy step's head is flat: the loop shapes it
        assert np.abs(step_logits - expected).max() < 1e-4, np.abs(step_logits - expected).max()
        for n, feature in enumerate(features):
            np.testing.assert_allclose(feature, np.concatenate([activations[n][:, i, j] for i, j in positions]), atol=1e-4)
    assert np.abs(logits).max() > 1.0  # the comparison is not between near-zero numbers


@pytest.mark.parametrize("randomize", [randomize_moderate, randomize_large], ids=["moderate", "large"])
@pytest.mark.parametrize("case", CASES)
def test_cached_draws_the_same_pixels_as_naive(case, randomize, capsys):
    channels, num_classes = CASES[case]
    config = tiny_config(channels, num_classes)
    model = randomize(build_model(config))
    kwargs = sampling_kwargs(config, num_images=3)
    naive = sample_naive(keras_logits_fn(model, bool(num_classes)), **kwargs)
    log = []
    cached = sample_cached(recording(keras_step_fn(model, config), log), **kwargs, **cached_kwargs(config))
    numpy_cached = sample_cached(numpy_step_fn(fold_step_params(model, config)), **kwargs, **cached_kwargs(config))
    reference = full_logits(model, cached, kwargs["labels"])
    delta = np.abs(logits_used(log, config, 3) - reference).max()
    scale = np.abs(reference).max()
    agreement, numpy_agreement = (naive == cached).mean(), (numpy_cached == cached).mean()
    with capsys.disabled():
        print(f"\n[{case}/{randomize.__name__}] agreement {agreement:.2%}, numpy {numpy_agreement:.2%}, "
              f"max |dlogit| {delta:.2e} (max |logit| {scale:.1f})")
    assert delta <= 1e-4 * max(1.0, scale / 100.0)  # float32: large logits carry proportionally larger rounding
    assert agreement >= 0.999 and numpy_agreement >= 0.999
    assert len(np.unique(cached)) > 1  # a model drawing one constant level would agree trivially


@pytest.mark.slow
def test_briefly_trained_model_samples_the_same():
    config = tiny_config(1, 0, height=8, width=8, levels=4, num_layers=2, filters=8)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = np.clip(np.cumsum(rng.integers(-1, 2, (64, 8, 8, 1)), axis=2), 0, 3)  # stripes with structure
    model.fit({"image": images.astype(np.float32)}, images.astype(np.int32), batch_size=16, epochs=3, verbose=0)
    moving_mean = np.asarray(model.get_layer("masked_conv_0_bn").moving_mean)
    assert np.abs(moving_mean).max() > 1e-3  # BatchNorm statistics really moved
    kwargs = sampling_kwargs(config, num_images=4)
    naive = sample_naive(keras_logits_fn(model, False), **kwargs)
    cached = sample_cached(keras_step_fn(model, config), **kwargs, **cached_kwargs(config))
    assert (naive == cached).mean() >= 0.999


def test_cached_sampler_is_a_drop_in_for_the_keras_sampler():
    config = tiny_config(3, 4)
    model = randomize_moderate(build_model(config))
    naive, cached = keras_sampler(model, config), keras_sampler(model, config, "cached")
    assert cached.spec == naive.spec and (naive.sampler, cached.sampler) == ("naive", "cached")
    for kwargs in ({"labels": 2, "seed": 7}, {"labels": [0, 1, 3], "batch_size": 2, "temperature": 0.8}):
        np.testing.assert_array_equal(cached.sample(3, **kwargs), naive.sample(3, **kwargs))
    with pytest.raises(SamplingError, match="class-conditional"):
        cached.sample(2)


def test_batches_draw_the_same_images_as_one_batch(tmp_path):
    config = tiny_config(3, 4)
    np.savez(tmp_path / "step.npz", **fold_step_params(randomize_moderate(build_model(config)), config))
    params = np.load(tmp_path / "step.npz")  # the TensorFlow-free fallback's file
    kwargs = sampling_kwargs(config, num_images=5)
    whole = sample_cached(numpy_step_fn(params), **kwargs, **cached_kwargs(config))
    counted = []
    split = sample_cached(numpy_step_fn(params), **kwargs, **cached_kwargs(config), batch_size=2, progress=counted.append)
    np.testing.assert_array_equal(whole, split)
    assert sum(counted) == 5 * config.dims and whole.dtype == np.uint8 and whole.shape == (5, 6, 6, 3)


@pytest.mark.slow
def test_exported_step_models_draw_the_same_pixels(tmp_path):
    from export.step import convert_step_model

    config = tiny_config(3, 4)
    model = randomize_moderate(build_model(config))
    step_model = step_models(model, config)["step"]
    paths = convert_step_model(step_model, str(tmp_path / "work"), str(tmp_path), "step")
    assert list(step_model.input) == ["window_0", "window_1", "window_2", "label"]
    assert list(step_model.output) == ["features_0", "features_1", "logits"]
    kwargs = sampling_kwargs(config, num_images=3)
    expected = sample_cached(keras_step_fn(model, config), **kwargs, **cached_kwargs(config))
    for kind, make in (("onnx", onnx_runner), ("tflite", tflite_runner)):
        step_fn = from_runners({"step": make(paths[kind])}, config.num_layers, True)
        log = []
        got = sample_cached(recording(step_fn, log), **kwargs, **cached_kwargs(config))
        assert (got == expected).mean() >= 0.999, kind
        reference = full_logits(model, got, kwargs["labels"])
        assert np.abs(logits_used(log, config, 3) - reference).max() < 1e-4, kind
    # Batch 1 after batch 3: the batch dimension is dynamic in every artifact.
    one = sample_cached(from_runners({"step": tflite_runner(paths["tflite"])}, config.num_layers, True),
                        **sampling_kwargs(config, 1), **cached_kwargs(config))
    np.testing.assert_array_equal(one, expected[:1])


def test_serve_cached_runs_without_tensorflow():
    script = """
import numpy as np
from serve.cached import sample_cached
from serve.architectures.seed import numpy_step_fn
from serve.distributions import build
import serve.step_loader
rng = np.random.default_rng(0)
params = {"kernel_0": rng.normal(size=(6, 4)), "bias_0": rng.normal(size=4), "centre_1": rng.normal(size=(4, 4)),
          "kernel_1": rng.normal(size=(24, 4)), "bias_1": rng.normal(size=4),
          "head_kernel": rng.normal(size=(4, 5)), "head_bias": rng.normal(size=5)}
images = sample_cached(numpy_step_fn(params), num_images=2, shape=(4, 4, 1), num_layers=2, kernel_size=3,
                       filters=4, levels=5, architecture="pixelcnn", distribution=build("softmax", channels=1, levels=5))
assert images.shape == (2, 4, 4, 1) and images.max() < 5
print("ok")
"""
    done = run_without_tensorflow(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_mismatched_step_function_is_an_error():
    config = tiny_config()
    params = fold_step_params(randomize_moderate(build_model(config)), config)
    kwargs = sampling_kwargs(config, num_images=1)
    with pytest.raises(SamplingError, match="expected 3 and"):
        sample_cached(numpy_step_fn(params), **kwargs, **(cached_kwargs(config) | {"num_layers": 4}))
    with pytest.raises(SamplingError, match="kernel_size"):
        sample_cached(numpy_step_fn(params), **kwargs, **(cached_kwargs(config) | {"kernel_size": 4}))
    conditional = tiny_config(1, 3)
    conditional_params = fold_step_params(build_model(conditional), conditional)
    with pytest.raises(SamplingError, match="needs labels"):
        sample_cached(numpy_step_fn(conditional_params), **kwargs, **cached_kwargs(conditional))
    with pytest.raises(SamplingError, match=r"labels must have shape \(1,\)"):
        sample_cached(numpy_step_fn(conditional_params), **(kwargs | {"labels": [0, 1]}), **cached_kwargs(conditional))


def test_step_model_is_float32_under_a_mixed_precision_policy():
    config = tiny_config(3, 4)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = randomize_moderate(build_model(config))
        step_model = step_models(model, config)["step"]
    finally:
        keras.config.set_dtype_policy("float32")
    assert {layer.compute_dtype for layer in step_model.layers if layer.weights} == {"float32"}
    rng = np.random.default_rng(0)
    windows = [rng.integers(0, 8, (4, 2, 3, 3)).astype(np.float32)] + [rng.random((4, 2, 3, 12), np.float32)] * 2
    labels = np.arange(4, dtype=np.int32)
    _, logits = from_runners({"step": compiled_runner(step_model)}, config.num_layers, True)(windows, labels)
    _, expected = numpy_step_fn(fold_step_params(model, config))(windows, labels)
    np.testing.assert_allclose(logits, expected.reshape(logits.shape), atol=1e-4)  # the numpy step's head is flat

"""The sampler graph: one call draws the Python cached loop's pixels (TF, TFLite, ONNX), completes prefixes, refuses bad input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import randomize_gated, randomize_moderate

from export.sampler import convert_sampler
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import (
    architecture,
    build_model,
    cached_layout,
    graph_function,
    graph_params,
    model_spec,
    step_params,
)
from serve.backends import BACKENDS
from serve.cached import sample_cached
from serve.graph import GraphRunner, as_float32_uniforms, check_graph_request, loop_images
from serve.sampling import SamplingError, uniforms

# name -> (architecture, channels, levels, classes, mixtures): grey seed, grey gated, RGB conditional of each (softmax),
# and RGB logistic mixtures (one head per pixel, channels coupled through the means).
CASES = {
    "seed-grey": ("pixelcnn", 1, 8, 0, None),
    "gated-grey": ("gated", 1, 4, 0, None),
    "seed-rgb-conditional": ("pixelcnn", 3, 4, 3, None),
    "gated-rgb-conditional": ("gated", 3, 4, 3, None),
    "seed-rgb-mixture": ("pixelcnn", 3, 16, 0, 3),
    "gated-rgb-conditional-mixture": ("gated", 3, 32, 3, 2),
}
N = 4


class Case:
    """A tiny random model of one case: its config, spec, numpy loop step and graph weights."""

    def __init__(self, name: str):
        name_of_architecture, channels, levels, classes, mixtures = CASES[name]
        gated = name_of_architecture == "gated"
        self.config = ModelConfig(architecture=name_of_architecture, height=6, width=5, channels=channels, levels=levels,
                                  num_layers=3, kernel_size=5 if gated else 3, filters=12,
                                  num_classes=classes, output="logistic_mixture" if mixtures else "softmax",
                                  mixtures=mixtures)
        model = (randomize_gated if gated else randomize_moderate)(build_model(self.config), seed=2)
        c = self.config
        folded = step_params(model, c)
        self.step = architecture(c).serving.numpy_step(folded)  # the Python loop's numpy step
        self.spec = model_spec(c)
        self.params = graph_params(folded, c)
        self.function = graph_function(self.params, c)
        self.labels = np.arange(N, dtype=np.int32) % classes if classes else None

    def tf_run(self, feeds: dict) -> dict:
        order = ["uniforms", "temperature", "prefix", "start"] + (["label"] if self.config.num_classes else [])
        return {k: v.numpy() for k, v in self.function(*[feeds[name] for name in order]).items()}

    def loop(self, seed: int, temperature: float = 1.0) -> np.ndarray:
        return sample_cached(self.step, num_images=N, shape=self.spec.shape, seed=seed, temperature=temperature,
                             labels=self.labels, distribution=self.config.distribution, **cached_layout(self.config))

    def uniforms(self, seed: int) -> np.ndarray:
        return as_float32_uniforms(uniforms(N, *self.spec.shape, seed))


@pytest.fixture(scope="module")
def cases():
    made = {}
    return lambda name: made.setdefault(name, Case(name))


@pytest.fixture(scope="module")
def runner(cases, tmp_path_factory):
    """runner(case name, runtime) -> GraphRunner over the converted file; each case converted once per module."""
    made = {}

    def get(name: str, runtime: str) -> GraphRunner:
        if (name, runtime) not in made:
            case = cases(name)
            if runtime == "tf":
                made[name, runtime] = GraphRunner(case.tf_run, case.spec)
            else:
                written = convert_sampler(case.params, case.config, str(tmp_path_factory.mktemp(name)), [runtime])
                made[name, runtime] = GraphRunner(BACKENDS[runtime].runner(written[runtime], 1), case.spec)
        return made[name, runtime]

    return get


GRAPH_RUNTIMES = ["tf", pytest.param("tflite", marks=pytest.mark.slow), pytest.param("onnx", marks=pytest.mark.slow)]


@pytest.mark.parametrize("runtime", GRAPH_RUNTIMES)
@pytest.mark.parametrize("name", CASES)
def test_graph_draws_the_python_loops_pixels(cases, runner, name, runtime):
    case, run = cases(name), runner(name, runtime)
    for seed, temperature in ((0, 1.0), (5, 0.7)):
        expected = case.loop(seed, temperature)
        images = run(case.uniforms(seed), temperature, labels=case.labels)
        assert images.dtype == np.uint8 and images.shape == expected.shape
        assert (images == expected).mean() >= 0.999, (images == expected).mean()
        assert len(np.unique(expected)) > 1  # a model drawing one constant level would agree trivially


@pytest.mark.parametrize("runtime", ["tf", pytest.param("tflite", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", ["seed-rgb-conditional", "gated-grey", "gated-rgb-conditional-mixture"])
def test_completion(cases, runner, name, runtime):
    case, run = cases(name), runner(name, runtime)
    u = case.uniforms(7)
    rng = np.random.default_rng(1)
    prefix = rng.integers(0, case.spec.levels, u.shape).astype(np.float32)
    dims = case.spec.dims
    for start in (1, case.spec.width * case.spec.channels * 2 + 2, dims - 1, dims):
        completed = run(u, 1.0, prefix, start, case.labels)
        flat, flat_prefix = completed.reshape(N, -1), prefix.reshape(N, -1)
        np.testing.assert_array_equal(flat[:, :start], flat_prefix[:, :start])  # sub-pixels before start are the prefix
        # The Python loop, choosing the same prefix, then drawing: the same images.
        reference = loop_images(case.step, cached_layout(case.config), case.spec, u, 1.0, prefix, start, case.labels)
        assert (completed == reference).mean() >= 0.999
        # Causality: what the prefix holds from start on changes nothing.
        changed = flat_prefix.copy()
        changed[:, start:] = (changed[:, start:] + 1) % case.spec.levels
        np.testing.assert_array_equal(run(u, 1.0, changed.reshape(u.shape), start, case.labels), completed)
    # A completion from a prefix equals sampling whose first draws happened to be that prefix.
    sampled = run(u, 1.0, labels=case.labels)
    start = dims // 2
    np.testing.assert_array_equal(run(u, 1.0, sampled.astype(np.float32), start, case.labels), sampled)


def test_bad_requests_are_one_sampling_error_before_the_runtime(cases):
    case = cases("seed-rgb-conditional")
    calls = []
    run = GraphRunner(lambda feeds: calls.append(feeds), case.spec)
    u = case.uniforms(0)
    labels = case.labels
    bad = {
        "uniforms shape": dict(uniforms=u[:, :-1]),
        "uniforms dtype": dict(uniforms=u.astype(np.float64)),
        "uniforms list": dict(uniforms=u.tolist()),
        "uniform 1.0": dict(uniforms=np.where(u > 0.5, np.float32(1.0), u)),
        "negative uniform": dict(uniforms=u - 1),
        "nan uniform": dict(uniforms=np.full_like(u, np.nan)),
        "start negative": dict(start=-1, prefix=np.zeros_like(u)),
        "start past the end": dict(start=case.spec.dims + 1, prefix=np.zeros_like(u)),
        "start float": dict(start=2.0, prefix=np.zeros_like(u)),
        "start without prefix": dict(start=3),
        "prefix level too high": dict(start=3, prefix=np.full_like(u, case.spec.levels)),
        "prefix negative": dict(start=3, prefix=-np.ones_like(u)),
        "prefix fraction": dict(start=3, prefix=np.full_like(u, 0.5)),
        "prefix shape": dict(start=3, prefix=np.zeros(u.shape[:-1])),
        "missing label": dict(labels=None),
        "label out of range": dict(labels=np.full(N, 3)),
        "label shape": dict(labels=np.zeros(N + 1, np.int32)),
        "temperature": dict(temperature=0.0),
    }
    for what, change in bad.items():
        request = dict(uniforms=u, temperature=1.0, prefix=None, start=0, labels=labels) | change
        with pytest.raises(SamplingError) as error:
            run(**request)
        assert "\n" not in str(error.value), what
    assert calls == []  # no runtime call for any of them
    with pytest.raises(SamplingError, match="not class-conditional"):
        check_graph_request(cases("seed-grey").spec, cases("seed-grey").uniforms(0), 1.0, labels=np.zeros(N, np.int32))


def test_float32_uniforms_stay_below_one():
    u = np.array([0.0, 0.5, 1 - 1e-12, np.nextafter(1.0, 0.0)])
    assert as_float32_uniforms(u).max() < 1.0 and as_float32_uniforms(u).dtype == np.float32


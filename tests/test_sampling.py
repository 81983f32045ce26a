"""The shared sampling pieces: draw samples softmax(logits / T), to_grid's layout, generate.py without TensorFlow."""
from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import ROOT, run_without_tensorflow

from serve.sampling import draw, to_grid

CHI2_5DF_999 = 20.515  # the 99.9% quantile of chi-square with 5 degrees of freedom (6 levels)


def chi_square(counts, probabilities) -> float:
    expected = counts.sum() * probabilities
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draw_samples_the_tempered_softmax(temperature):
    logits = np.array([[1.0, -0.5, 0.3, 0.0, 0.8, -1.0]])
    n = 60_000
    u = np.random.default_rng(int(temperature * 10)).random(n)
    levels = draw(np.repeat(logits, n, axis=0), u, temperature)
    counts = np.bincount(levels, minlength=logits.shape[1])
    z = np.exp(logits[0] / temperature)
    assert (n * z / z.sum()).min() > 5  # the chi-square approximation holds
    assert chi_square(counts, z / z.sum()) < CHI2_5DF_999, (temperature, counts, (n * z / z.sum()).round())
    # And it is sharp: the softmax at another temperature fails the same test by far.
    other = np.exp(logits[0] / (temperature * 1.5))
    assert chi_square(counts, other / other.sum()) > 10 * CHI2_5DF_999


def test_draw_inverts_the_cdf_exactly_at_the_edges():
    logits = np.log(np.array([[0.25, 0.25, 0.5]] * 4))
    np.testing.assert_array_equal(draw(logits, np.array([0.0, 0.2499, 0.2501, 0.9999])), [0, 0, 1, 2])


@pytest.mark.parametrize("channels", [1, 3])
def test_to_grid_puts_image_k_at_row_k_div_columns_and_column_k_mod_columns(channels):
    n, h, w, columns, levels = 7, 3, 2, 3, 8
    images = np.stack([np.full((h, w, channels), k, np.uint8) for k in range(n)])  # image k is all level k
    grid = to_grid(images, levels, columns)
    assert grid.shape == ((3 * h, columns * w) + ((channels,) if channels == 3 else ()))
    for k in range(n):
        tile = grid[(k // columns) * h : (k // columns + 1) * h, (k % columns) * w : (k % columns + 1) * w]
        assert np.all(tile == round(k * 255 / (levels - 1))), k
    assert np.all(grid[2 * h :, 1 * w :] == 0)  # the two unused cells of the last row stay black


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_generate_runs_with_tensorflow_blocked(backend, tmp_path):
    """The README's promise: generate.py with --backend onnx or tflite needs no TensorFlow, nor Keras."""
    out = str(tmp_path / "grid.png")
    script = f"""
import generate
code = generate.main(["--checkpoint", {os.path.join(ROOT, "pretrained", "gated_mnist")!r}, "--backend", {backend!r},
                      "--num-images", "2", "--out", {out!r}, "--no-progress"])
assert code == 0, code
"""
    done = run_without_tensorflow(script, blocked=("tensorflow", "keras", "tf_keras", "tf2onnx", "jax", "torch"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "with graph sampling" in done.stdout and os.path.getsize(out) > 0  # the export's sampler graph: the default

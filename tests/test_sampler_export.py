"""The exported sampler graph: files, contract and parity in the export; serve's graph sampler, completion; generate.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import (
    copy_export,
    error_line,
    export_leftovers,
    fake_onnx,
    fake_sampler_converter,
    fake_step_converter,
    float32_checkpoint,
)
from PIL import Image

import export.__main__ as export_cli
import export.sampler as export_sampler
import generate
from serve import Sampler, ServeError
from serve.sampling import SamplingError

pytestmark = pytest.mark.slow  # every test here trains a tiny model and converts it with tf2onnx


def metadata(export_dir: str) -> dict:
    with open(os.path.join(export_dir, "metadata.json")) as f:
        return json.load(f)


def test_export_writes_the_sampler_graph_with_its_contract_and_parity(tiny_export):
    import tensorflow as tf

    graph = metadata(tiny_export)["sampler_graph"]
    assert sorted(graph["inputs"]) == ["prefix", "start", "temperature", "uniforms"] and list(graph["output"]) == ["images"]
    for kind in ("onnx", "tflite"):
        entry = graph["artifacts"][kind]
        assert os.path.getsize(os.path.join(tiny_export, entry["path"])) == entry["bytes"]
    signature = tf.saved_model.load(os.path.join(tiny_export, "saved_model")).signatures[graph["signature"]]
    assert sorted(signature.structured_outputs) == ["images"]
    with open(os.path.join(tiny_export, "parity.json")) as f:
        parity = json.load(f)["sampler_graph"]
    assert sorted(parity["artifacts"]) == ["onnx", "saved_model", "tflite"]
    for row in parity["artifacts"].values():
        assert len(row["agreement"]) == 4 and min(row["agreement"].values()) == 1.0 and row["ok"]  # 3 seeds, 1 completion


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_graph_is_the_default_and_draws_the_cached_loops_pixels(tiny_export, backend):
    graph = Sampler.load(tiny_export, backend)
    assert graph.sampler == "graph"
    cached = Sampler.load(tiny_export, backend, sampler="cached")
    np.testing.assert_array_equal(graph.sample(5, seed=4, batch_size=3), cached.sample(5, seed=4))
    assert Sampler.load(tiny_export, "numpy").sampler == "cached"  # no graph for the numpy backend: its loop


def test_completion_keeps_rows_and_matches_the_cached_loop(tiny_conditional_export):
    rng = np.random.default_rng(0)
    graph = Sampler.load(tiny_conditional_export, "tflite")
    images = rng.integers(0, graph.spec.levels, (2, *graph.spec.shape))
    completed = graph.complete(images, start_row=10, num_samples=3, seed=2, labels=[1, 7])
    assert completed.shape == (6, *graph.spec.shape)
    np.testing.assert_array_equal(completed[:, :10], np.repeat(images, 3, axis=0)[:, :10])
    cached = Sampler.load(tiny_conditional_export, "onnx", sampler="cached")
    np.testing.assert_array_equal(cached.complete(images, 10, 3, seed=2, labels=[1, 7]), completed)
    assert not np.array_equal(completed[0, 10:], completed[1, 10:])  # different uniforms: different completions
    for bad in (dict(start_row=29), dict(start_row=-1), dict(start_row=3, num_samples=0)):
        with pytest.raises(SamplingError):
            graph.complete(images, **({"num_samples": 1} | bad), labels=[1, 7])
    with pytest.raises(SamplingError, match="class-conditional"):
        graph.complete(images, 10)
    with pytest.raises(SamplingError, match="naive"):
        Sampler.load(tiny_conditional_export, "onnx", sampler="naive").complete(images, 10, labels=[1, 7])


def test_a_damaged_sampler_file_is_refused_on_load(tiny_export, tmp_path):
    broken = copy_export(tiny_export, tmp_path / "broken")
    path = os.path.join(broken, "sampler.tflite")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(ServeError, match="sha256"):
        Sampler.load(broken, "tflite")
    assert Sampler.load(broken, "tflite", sampler="cached").sampler == "cached"  # the other samplers still work


def test_graph_parity_failure_fails_the_export(tiny_run, tiny_export, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("export.build.write_onnx", fake_onnx(tiny_export))
    monkeypatch.setattr("export.step.convert_step_model", fake_step_converter(tiny_export))
    monkeypatch.setattr(export_sampler, "convert_sampler", fake_sampler_converter(tiny_export))
    monkeypatch.setattr(export_sampler, "MIN_AGREEMENT", 1.01)  # no agreement can pass: parity must fail
    out = tmp_path / "failed"
    assert export_cli.main(["--checkpoint", tiny_run, "--out", str(out), "--parity-images", "2"]) == 1
    assert "sampler tflite" in error_line(capsys, "python -m export", only=False)
    assert not out.exists() and export_leftovers(str(tmp_path), "failed") == []


def test_generate_animates_and_completes(tiny_export, tmp_path, tfds_dir):
    sample, gif = tmp_path / "sample.png", tmp_path / "sampling.gif"
    flags = ["--checkpoint", tiny_export, "--num-images", "4", "--no-progress"]
    assert generate.main(flags + ["--out", str(sample), "--animate", str(gif), "--animate-rows", "7"]) == 0
    with Image.open(gif) as animation:
        assert animation.n_frames >= 2
        animation.seek(animation.n_frames - 1)
        last = np.asarray(animation.convert("L"))
    np.testing.assert_array_equal(last, np.asarray(Image.open(sample)))
    completion = tmp_path / "completion.png"
    assert generate.main(flags[:2] + ["--complete", "test", "--num-images", "3", "--keep-rows", "14", "--completions", "2",
                                      "--no-progress", "--out", str(completion), "--backend", "tflite"]) == 0
    grid = np.asarray(Image.open(completion))
    assert grid.shape == (3 * 28, (2 + 2) * 28)  # per row: kept part, 2 completions, original
    np.testing.assert_array_equal(grid[:14, :28], grid[:14, 3 * 28 :])  # the kept rows are the original's


def test_a_keras_checkpoint_samples_through_the_graph_in_tensorflow(tiny_run, tiny_export, tmp_path):
    from pixelcnn_tf.generation import keras_sampler

    model, config = float32_checkpoint(tiny_run)
    sampler = keras_sampler(model, config.model, "graph")
    assert sampler.sampler == "graph"
    np.testing.assert_array_equal(sampler.sample(3, seed=1), Sampler.load(tiny_export, "tflite").sample(3, seed=1))
    out = tmp_path / "keras.png"
    assert generate.main(["--checkpoint", tiny_run, "--sampler", "graph", "--num-images", "2", "--no-progress",
                          "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_parity_scores_each_sub_pixel_against_pythons_draw_given_the_same_earlier_ones(rgb_mixture_export):
    """forced_draws: Python's draw at each sub-pixel given the images' own earlier ones (teacher-forced). On the loop's
    own images it is those images; where one early sub-pixel was drawn otherwise (as a float tie at a bin edge does),
    Python's draw there is still the original, and every later draw conditions on the flipped images, not its own."""
    from serve.graph import as_float32_uniforms, forced_draws, loop_images
    from serve.manifest import read_manifest
    from serve.sampling import uniforms
    from serve.step_loader import load_step

    manifest = read_manifest(rgb_mixture_export)
    spec = manifest.spec
    step, layout = load_step(manifest, rgb_mixture_export, "numpy", spec)
    u = as_float32_uniforms(uniforms(3, *spec.shape, 7))
    images = loop_images(step, layout, spec, u)
    np.testing.assert_array_equal(forced_draws(step, layout, spec, images, u), images)
    flipped = images.copy()
    flipped[:, 0, 1, 0] = (flipped[:, 0, 1, 0] + spec.levels // 2) % spec.levels
    draws = forced_draws(step, layout, spec, flipped, u)
    np.testing.assert_array_equal(draws[:, 0, 1, 0], images[:, 0, 1, 0])
    # From the next sub-pixel on, the forced draws are the loop's own completion of the flipped prefix.
    resumed = loop_images(step, layout, spec, u, prefix=flipped.astype(np.float32), start=spec.channels + 1)
    after = np.arange(draws[0].size).reshape(spec.shape) >= spec.channels + 1
    first = np.argmax((resumed != flipped).reshape(3, -1) & after.reshape(1, -1), axis=1)  # where each part first
    for n, k in enumerate(first):
        np.testing.assert_array_equal(draws[n].reshape(-1)[spec.channels + 1 : k + 1], resumed[n].reshape(-1)[spec.channels + 1 : k + 1])

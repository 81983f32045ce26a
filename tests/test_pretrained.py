"""The shipped pretrained export: small enough for a phone, its recorded NLL re-measured, usable on a fresh clone."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from helpers import ROOT, assert_one_line_error, copy_export, rewrite_metadata, run_without_tensorflow
from PIL import Image

import generate
from pixelcnn_tf.config import model_config_from_dict, to_dict
from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.presets import preset
from serve import Sampler, ServeError

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
MAX_ARTIFACT_BYTES = 1_500_000  # every file: sharded SavedModel variables included


def results():
    with open(os.path.join(PRETRAINED, "results.json")) as f:
        return json.load(f)


def test_every_shipped_file_fits_on_a_phone():
    sizes = {}
    for folder, _, files in os.walk(PRETRAINED):
        for name in files:
            sizes[os.path.relpath(os.path.join(folder, name), PRETRAINED)] = os.path.getsize(os.path.join(folder, name))
    assert {"metadata.json", "model.onnx", "model.tflite", "sampler.onnx", "sampler.tflite"} <= set(sizes)
    assert max(sizes.values()) <= MAX_ARTIFACT_BYTES, sizes


@pytest.mark.slow
def test_recorded_nll_is_re_measured_on_a_test_slice(tfds_dir):
    recorded = results()
    assert recorded["architecture"] == "gated" and recorded["levels"] == 2
    count = recorded["slice"]["examples"]
    images, _ = data.load_arrays("mnist", "test", levels=2, count=count)  # the fixed test binarization
    for backend in ("onnx", "tflite"):
        nll = Sampler.load(PRETRAINED, backend).nll(images).mean()
        # Keras measured the slice; exported graphs agree to ~1e-6 per logit, so to far below 0.01 nats.
        assert abs(nll - recorded["slice"]["nats_per_image"]) < 0.01, (backend, nll, recorded["slice"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "numpy", "savedmodel"])  # savedmodel: its SavedModel, in TensorFlow
def test_evaluate_scores_the_shipped_export_as_keras_scored_its_run(tfds_dir, tmp_path, capsys, backend):
    """`python -m pixelcnn_tf.evaluate --checkpoint pretrained/gated_mnist`: the README's figure, on the recorded slice."""
    from pixelcnn_tf import evaluate

    recorded = results()["slice"]
    out = tmp_path / "r.json"
    argv = ["--checkpoint", PRETRAINED, "--backend", backend, "--examples", str(recorded["examples"]), "--out", str(out)]
    assert evaluate.main(argv) == 0
    scored = json.load(open(out))
    assert scored["examples"] == recorded["examples"] and scored["backend"] == backend and scored["architecture"] == "gated"
    assert abs(scored["nats_per_image"] - recorded["nats_per_image"]) < 0.01, scored
    assert capsys.readouterr().out == (f"mnist test ({recorded['examples']} images): {scored['nats_per_image']:.3f} nats/image, "
                                       f"{scored['bits_per_dim']:.4f} bits/dim\n")


def test_results_name_a_preset_that_trains_the_shipped_model_again():
    recorded = results()
    preset_name = re.search(r"--preset (\S+)", recorded["recipe"]).group(1)
    config = preset(preset_name)
    # Read as config.json is read: settings newer than the shipped model (output, mixtures) take their defaults.
    shipped = to_dict(model_config_from_dict(recorded["model_config"]))
    assert to_dict(config.model) | {"height": 28, "width": 28, "channels": 1} == shipped
    trained = {key: recorded[key] for key in ("batch_size", "learning_rate", "lr_schedule", "ema_decay")}
    assert trained == {key: getattr(config, key) for key in trained}
    assert recorded["epochs_trained"] == config.epochs == len(recorded["test_nats_per_image_per_epoch"])
    assert recorded["train_minutes"] <= 150 and recorded["hardware"]
    # The averaged weights are the shipped ones: their whole-split NLL is the last epoch's, and it beats the raw one.
    assert recorded["test"]["nats_per_image"] == pytest.approx(recorded["test_nats_per_image_per_epoch"][-1], abs=0.01)
    assert recorded["test"]["nats_per_image"] < recorded["test_raw_weights"]["nats_per_image"]


def test_fresh_clone_generate_samples_the_shipped_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no models/ here: nothing trained yet
    assert generate.main(["--backend", "onnx", "--num-images", "4", "--out", "s.png", "--no-progress"]) == 0
    assert "shipped" in capsys.readouterr().err
    picture = np.asarray(Image.open(tmp_path / "s.png"))
    assert picture.shape == (56, 56) and set(np.unique(picture)) <= {0, 255}


def test_shipped_step_models_and_sampler_graphs_draw_what_the_full_model_draws():
    cached = Sampler.load(PRETRAINED, "tflite", sampler="cached")
    assert cached.sampler == "cached" and cached.layout["architecture"] == "gated"
    naive = Sampler.load(PRETRAINED, "tflite", sampler="naive").sample(1, seed=11)
    np.testing.assert_array_equal(cached.sample(1, seed=11), naive)
    np.testing.assert_array_equal(Sampler.load(PRETRAINED, "numpy").sample(1, seed=11), naive)
    for backend in ("onnx", "tflite"):
        graph = Sampler.load(PRETRAINED, backend)  # the default where the export has a sampler graph
        assert graph.sampler == "graph"
        np.testing.assert_array_equal(graph.sample(1, seed=11), naive)


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_a_large_batch_runs_the_graph_on_every_core_and_draws_the_one_thread_pixels(backend):
    """serve's thread choice for the graph (one thread, every core from ALL_CORES_FROM_BATCH images) keeps the pixels."""
    from serve.graph import ALL_CORES_FROM_BATCH

    default = Sampler.load(PRETRAINED, backend, sampler="graph")
    assert default.graph.runner_for(ALL_CORES_FROM_BATCH - 1) is default.graph.run
    assert default.graph.runner_for(ALL_CORES_FROM_BATCH) is not default.graph.run
    one_thread = Sampler.load(PRETRAINED, backend, sampler="graph", num_threads=1)
    assert one_thread.graph.runner_for(ALL_CORES_FROM_BATCH) is one_thread.graph.run
    labels = np.arange(ALL_CORES_FROM_BATCH) % 10 if default.spec.num_classes else None
    np.testing.assert_array_equal(default.sample(ALL_CORES_FROM_BATCH, seed=4, labels=labels),
                                  one_thread.sample(ALL_CORES_FROM_BATCH, seed=4, labels=labels))


def test_device_recipe_samples_the_shipped_graph_without_tensorflow():
    """docs/device.md's Python recipe, run as written (from the checkout) where TensorFlow cannot be imported."""
    with open(os.path.join(ROOT, "docs", "device.md")) as f:
        recipe = re.search(r"## Python.*?```python\n(.*?)```", f.read(), re.S).group(1)
    check = "\nfrom serve import Sampler\nassert (Sampler.load('pretrained/gated_mnist', 'onnx').sample(16, seed=0) == images).all()\n"
    done = run_without_tensorflow(recipe + check)
    assert done.returncode == 0, done.stderr[-2000:]


def test_shipped_metadata_is_format_2_and_names_no_path_of_the_training_machine():
    meta = json.load(open(os.path.join(PRETRAINED, "metadata.json")))
    assert meta["format_version"] == 2 and set(meta["source"]) == {"run", "model_file", "model_sha256"}
    paths = [meta["source"]["run"]] + [entry["path"] for entry in meta["artifacts"].values()]
    paths += [part["path"] for entry in meta["step"]["artifacts"].values() for part in entry["parts"].values()]
    assert not [path for path in paths if os.path.isabs(path) or ".." in path], paths


def test_an_export_older_than_format_2_is_refused_in_one_line(tmp_path):
    old = copy_export(PRETRAINED, tmp_path / "old")
    rewrite_metadata(old, lambda meta: meta.update(format_version=1))
    with pytest.raises(ServeError) as refused:
        Sampler.load(old, "onnx")
    message = str(refused.value)
    assert "\n" not in message and "format_version 1; this serve reads 2: re-export" in message


@pytest.mark.parametrize("flags, message", [
    (["--complete", "missing.png"], "no such file"),
    (["--animate", "x.txt"], "must name a .gif"),
    (["--complete", "test", "--animate", "a.gif"], "does not combine"),
    (["--keep-rows", "3"], "needs --complete"),
    (["--complete", "test", "--keep-rows", "29"], "at most the image height 28"),
    (["--complete", "test", "--completions", "0"], "must be positive"),
])
def test_generate_refuses_bad_completion_and_animation_flags(flags, message, tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert_one_line_error(generate.main, ["--checkpoint", PRETRAINED, "--out", out, *flags], message, capsys)
    assert not os.path.exists(out)


def test_every_backend_scores_what_onnx_scores_numpy_included():
    """README's serve snippet offers onnx, tflite, numpy and tflite_int8; nll() answers on each (numpy: the step model)."""
    images = Sampler.load(PRETRAINED, "onnx").sample(3, seed=1)
    reference = Sampler.load(PRETRAINED, "onnx").nll(images)
    for backend in ("tflite", "numpy"):
        np.testing.assert_allclose(Sampler.load(PRETRAINED, backend).nll(images), reference, atol=1e-4)
    assert Sampler.load(PRETRAINED, "numpy").log_prob(images).dtype == np.float64

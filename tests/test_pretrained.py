"""The shipped pretrained export: small enough for a phone, its recorded NLL re-measured, usable on a fresh clone."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import generate
from helpers import ROOT, copy_export, rewrite_metadata
from pixelcnn_tf import data
from serve import Sampler, ServeError

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024


def results():
    with open(os.path.join(PRETRAINED, "results.json")) as f:
        return json.load(f)


def test_every_shipped_file_fits_on_a_phone():
    sizes = {}
    for folder, _, files in os.walk(PRETRAINED):
        for name in files:
            sizes[os.path.relpath(os.path.join(folder, name), PRETRAINED)] = os.path.getsize(os.path.join(folder, name))
    assert {"metadata.json", "model.onnx", "model.tflite"} <= set(sizes)
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


def test_fresh_clone_generate_samples_the_shipped_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no models/ here: nothing trained yet
    assert generate.main(["--backend", "onnx", "--num-images", "4", "--out", "s.png", "--no-progress"]) == 0
    assert "shipped" in capsys.readouterr().err
    picture = np.asarray(Image.open(tmp_path / "s.png"))
    assert picture.shape == (56, 56) and set(np.unique(picture)) <= {0, 255}


def test_shipped_step_models_draw_what_the_full_model_draws():
    cached = Sampler.load(PRETRAINED, "tflite")
    assert cached.sampler == "cached" and cached.layout["architecture"] == "gated"
    naive = Sampler.load(PRETRAINED, "tflite", sampler="naive").sample(1, seed=11)
    np.testing.assert_array_equal(cached.sample(1, seed=11), naive)
    np.testing.assert_array_equal(Sampler.load(PRETRAINED, "numpy").sample(1, seed=11), naive)


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

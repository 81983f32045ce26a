"""serve/: one sampler over ONNX and TFLite exports, TensorFlow-free, equal to Keras, with one-line errors."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import copy_export, float32_checkpoint, generate_error, rewrite_metadata, run_without_tensorflow

import generate
from export.savedmodel import savedmodel_sampler
from pixelcnn_tf.datasets.pipeline import load_arrays
from pixelcnn_tf.generation import keras_sampler
from serve import Sampler, SamplingError, ServeError


def test_same_seed_same_samples_on_every_backend(tiny_run, tiny_export):
    model, config = float32_checkpoint(tiny_run)
    samples = {
        "keras": keras_sampler(model, config.model).sample(4, seed=3),
        "savedmodel": savedmodel_sampler(tiny_export).sample(4, seed=3),
        # Other batch sizes on purpose: the uniforms are drawn up front, so batching cannot change the draws.
        "onnx": Sampler.load(tiny_export, "onnx").sample(4, seed=3, batch_size=3),
        "tflite": Sampler.load(tiny_export, "tflite").sample(4, seed=3, batch_size=3),
    }
    for name, images in samples.items():
        assert images.dtype == np.uint8 and images.shape == (4, 28, 28, 1) and images.max() < 4
        # Logits differ by ~1e-7 between runtimes: a sub-pixel flips only when its uniform lands that
        # close to a CDF boundary, so nearly all sub-pixels agree (and usually all do).
        agreement = float(np.mean(images == samples["keras"]))
        print(f"{name}: {agreement:.5%} of sub-pixels equal to keras")
        assert agreement >= 0.999, name
    assert not np.array_equal(samples["onnx"], Sampler.load(tiny_export, "onnx").sample(4, seed=4))


def test_nll_equals_keras_nll(tiny_run, tiny_export):
    model, _ = float32_checkpoint(tiny_run)
    images, _ = load_arrays("mnist", "test", levels=4, count=6)
    logits = tf.cast(model({"image": images.astype(np.float32)}, training=False), tf.float64)
    keras_nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(images.astype(np.int64), logits), [1, 2, 3]).numpy()
    for backend in ("onnx", "tflite"):
        sampler = Sampler.load(tiny_export, backend)
        nll = sampler.nll(images)
        assert nll.dtype == np.float64 and nll.shape == (6,)
        # ~1e-7 per logit over 784 sub-pixels: well under 1e-3 nats on an NLL of ~1000 nats.
        np.testing.assert_allclose(nll, keras_nll, atol=1e-3)
        np.testing.assert_allclose(sampler.log_prob(images), -nll)
        np.testing.assert_allclose(sampler.nll(images, batch_size=4), nll, atol=1e-9)


SERVE_SCRIPT = """
import json
from serve import Sampler
out = {}
for backend in ("onnx", "tflite"):
    sampler = Sampler.load(sys.argv[1], backend, sampler="naive")
    images = sampler.sample(2, seed=5)
    out[backend] = {"images": images.tolist(), "nll": sampler.nll(images).tolist()}
for backend in ("onnx", "tflite", "numpy"):  # cached sampling: the step models, still no TensorFlow
    sampler = Sampler.load(sys.argv[1], backend, sampler="cached")
    assert sampler.sampler == "cached"
    out[backend + "_cached"] = {"images": sampler.sample(2, seed=5).tolist()}
print(json.dumps(out))
"""


def test_serve_samples_and_scores_without_tensorflow(tiny_export):
    result = run_without_tensorflow(SERVE_SCRIPT, tiny_export)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for backend in ("onnx", "tflite"):
        sampler = Sampler.load(tiny_export, backend)
        np.testing.assert_array_equal(np.asarray(out[backend]["images"]), sampler.sample(2, seed=5))
        assert np.all(np.isfinite(out[backend]["nll"])) and min(out[backend]["nll"]) > 0
    for backend in ("onnx", "tflite", "numpy"):
        np.testing.assert_array_equal(np.asarray(out[backend + "_cached"]["images"]), np.asarray(out["onnx"]["images"]))


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_conditional_export_samples_a_requested_class(tiny_conditional_export, tmp_path, capsys, backend):
    sampler = Sampler.load(tiny_conditional_export, backend)
    assert sampler.spec.num_classes == 10
    images = sampler.sample(2, seed=1, labels=3)
    assert images.shape == (2, 28, 28, 1)
    # The label really reaches the network: the same images score differently under another class.
    assert not np.allclose(sampler.nll(images, labels=3), sampler.nll(images, labels=7))
    with pytest.raises(SamplingError, match="class-conditional"):
        sampler.sample(1)
    with pytest.raises(SamplingError, match="labels must be in 0..9"):
        sampler.sample(1, labels=10)
    out = tmp_path / "three.png"
    argv = ["--checkpoint", tiny_conditional_export, "--backend", backend, "--label", "3", "--num-images", "2", "--out", str(out), "--no-progress"]
    assert generate.main(argv) == 0 and out.is_file()
    assert json.load(open(os.path.join(tiny_conditional_export, "parity.json")))["ok"]


def test_generate_defaults_to_onnx_for_an_export(tiny_export, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert generate.main(["--checkpoint", tiny_export, "--num-images", "2", "--out", str(out), "--no-progress"]) == 0
    assert out.is_file() and "(onnx)" in capsys.readouterr().out


@pytest.mark.parametrize("backend, filename", [("onnx", "model.onnx"), ("tflite", "model.tflite")])
def test_missing_or_corrupt_artifact_is_one_line(tiny_export, tmp_path, capsys, backend, filename):
    broken = copy_export(tiny_export, tmp_path / "export")
    path = os.path.join(broken, filename)
    size = os.path.getsize(path)
    os.remove(path)
    with pytest.raises(ServeError, match=f"missing {filename}"):
        Sampler.load(broken, backend)
    out = tmp_path / "x.png"
    assert f"missing {filename}" in generate_error(capsys, ["--checkpoint", broken, "--backend", backend, "--out", str(out)])
    with open(path, "wb") as f:
        f.write(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))  # same size: only the digest tells
    with pytest.raises(ServeError, match="sha256"):
        Sampler.load(broken, backend)
    # With metadata that vouches for the damaged file, the runtime itself must refuse it, in one line.
    rewrite_metadata(broken, lambda meta: meta["artifacts"][backend].pop("sha256"))
    message = generate_error(capsys, ["--checkpoint", broken, "--backend", backend, "--out", str(out)])
    assert "cannot load" in message
    assert not out.exists()


def test_metadata_of_another_model_is_refused(tiny_export, tiny_conditional_export, tmp_path):
    swapped = copy_export(tiny_export, tmp_path / "swapped")
    shutil.copy(os.path.join(tiny_conditional_export, "metadata.json"), os.path.join(swapped, "metadata.json"))
    for backend in ("onnx", "tflite"):
        with pytest.raises(ServeError, match="from another export"):
            Sampler.load(swapped, backend)
    resized = copy_export(tiny_export, tmp_path / "resized")
    rewrite_metadata(resized, lambda meta: meta.update(height=32))
    for backend in ("onnx", "tflite"):
        with pytest.raises(ServeError, match="another model"):
            Sampler.load(resized, backend)
    rewrite_metadata(resized, lambda meta: meta.update(height=28, num_classes=10))
    with pytest.raises(ServeError, match="label input"):
        Sampler.load(resized, "onnx")
    with pytest.raises(ServeError, match="not an export directory"):
        Sampler.load(str(tmp_path), "onnx")


def test_bad_requests_are_one_line_and_write_nothing(tiny_run, tiny_export, tmp_path, capsys):
    sampler = Sampler.load(tiny_export, "tflite")
    for count in (0, -1, 10**6):
        with pytest.raises(SamplingError, match="num_images"):
            sampler.sample(count)
    with pytest.raises(ServeError, match="unknown backend 'foo'"):
        Sampler.load(tiny_export, "foo")
    with pytest.raises(SamplingError, match="level indices in 0..3"):
        sampler.nll(np.full((1, 28, 28, 1), 4))
    with pytest.raises(SamplingError, match="shape"):
        sampler.nll(np.zeros((1, 27, 28, 1)))
    out = tmp_path / "x.png"
    base = ["--checkpoint", tiny_export, "--no-progress"]
    assert "positive" in generate_error(capsys, base + ["--num-images", "0", "--out", str(out)])
    assert "more than" in generate_error(capsys, base + ["--num-images", "1000000", "--out", str(out)])
    assert "does not exist" in generate_error(capsys, base + ["--out", str(tmp_path / "missing" / "x.png")])
    assert "is not writable" in generate_error(capsys, base + ["--num-images", "1", "--out", "/proc/x.png"])
    assert "needs an export directory" in generate_error(capsys, ["--checkpoint", tiny_run, "--backend", "onnx", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        generate.main(base + ["--backend", "foo", "--out", str(out)])
    assert exit_info.value.code == 2
    capsys.readouterr()
    no_saved_model = copy_export(tiny_export, tmp_path / "lean")
    shutil.rmtree(os.path.join(no_saved_model, "saved_model"))
    for backend in ("keras", "savedmodel"):
        message = generate_error(capsys, ["--checkpoint", no_saved_model, "--backend", backend, "--out", str(out)])
        assert "saved_model" in message
    assert sorted(os.listdir(tmp_path)) == ["lean"]  # no picture, no temporary file

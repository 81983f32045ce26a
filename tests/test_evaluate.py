"""pixelcnn_tf.evaluate: exact per-image NLL sums, unit consistency, fixed binarization, one-line errors, exports without TF."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from helpers import ROOT, run_without_tensorflow

from pixelcnn_tf import evaluate
from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config
from pixelcnn_tf.datasets import binarized_mnist
from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.model import build_model
from pixelcnn_tf.run.checkpoints import float32_model, load_checkpoint, save_model
from serve import Sampler
from serve.sampling import nll_per_image


def direct_nats_per_image(run_dir: str, count: int) -> float:
    """The same score by hand: numpy log-softmax over float32 logits of the first `count` test images."""
    model, config, _ = load_checkpoint(run_dir)
    model = float32_model(model, config)  # evaluate scores a mixed-precision run in float32
    m = config.model
    images, labels = data.load_arrays(config.dataset, "test", levels=m.levels, count=count)
    inputs = {"image": images.astype(np.float32)}
    if m.num_classes:
        inputs["label"] = labels
    logits = np.asarray(model(inputs, training=False))
    return float(nll_per_image(logits, images).mean())


def run_evaluate(argv, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert evaluate.main(argv + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out) as f:
        return json.load(f), printed


def test_tiny_run_scores_match_numpy_and_units_agree(tiny_run, tmp_path, capsys):
    result, printed = run_evaluate(["--checkpoint", tiny_run, "--examples", "20", "--batch-size", "7"], tmp_path, capsys)
    assert result["examples"] == 20 and result["dims"] == 28 * 28 and result["split"] == "test"
    assert result["bits_per_dim"] == pytest.approx(result["nats_per_image"] / (784 * math.log(2)), rel=1e-12)
    assert result["total_nats"] == pytest.approx(20 * result["nats_per_image"], rel=1e-12)
    # A 4-level model scores between a perfect predictor (0) and ~uniform (784 ln 4 nats) after one epoch.
    assert 0 < result["nats_per_image"] < 1.5 * 784 * math.log(4)
    assert result["nats_per_image"] == pytest.approx(direct_nats_per_image(tiny_run, 20), rel=1e-5)
    assert f"{result['nats_per_image']:.3f} nats/image" in printed
    # Exact per-image sums: the batching does not change the score.
    again, _ = run_evaluate(["--checkpoint", tiny_run, "--examples", "20", "--batch-size", "20"], tmp_path, capsys)
    assert again["nats_per_image"] == pytest.approx(result["nats_per_image"], rel=1e-6)


def test_binarized_gated_checkpoint_uses_the_fixed_test_binarization(tfds_dir, tmp_path, capsys):
    config = TrainConfig(model=ModelConfig(architecture="gated", levels=2, num_layers=2, kernel_size=3, filters=4))
    run_dir = str(tmp_path / "gated")
    save_config(config, run_dir)
    save_model(build_model(config.model), run_dir)
    first, _ = run_evaluate(["--checkpoint", run_dir, "--examples", "12", "--batch-size", "5"], tmp_path, capsys)
    second, _ = run_evaluate(["--checkpoint", run_dir, "--examples", "12", "--batch-size", "12"], tmp_path, capsys)
    assert first["architecture"] == "gated" and first["levels"] == 2
    assert second["nats_per_image"] == pytest.approx(first["nats_per_image"], rel=1e-6)
    assert first["nats_per_image"] == pytest.approx(direct_nats_per_image(run_dir, 12), rel=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--checkpoint", "/nonexistent/run"], "does not exist"),
        (["--split", "validation"], "no split 'validation'"),
        (["--examples", "0"], "--examples must be positive"),
        (["--out", "/nonexistent/dir/r.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tiny_run, capsys, argv, message):
    if argv[0] != "--checkpoint":
        argv = ["--checkpoint", tiny_run] + argv
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("python -m pixelcnn_tf.evaluate: error:")


# --- an export scored without TensorFlow: the binarized MNIST test split shipped in data/ ---

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
NO_TENSORFLOW = ("tensorflow", "keras", "tf_keras", "tf2onnx", "tensorflow_datasets")  # scoring an export needs none
EVALUATE = ("from pixelcnn_tf import evaluate\ncode = evaluate.main(sys.argv[1:])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]\nsys.exit(code)\n")


def evaluate_without_tensorflow(*argv: str):
    return run_without_tensorflow(EVALUATE, *argv, blocked=NO_TENSORFLOW)


@pytest.mark.slow
def test_the_shipped_test_split_is_what_the_tensorflow_path_feeds_the_model(tfds_dir, tmp_path):
    """Bit for bit: the images and labels evaluate() gives Keras, and what the documented command writes again."""
    images, labels = binarized_mnist.load()
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.uint8 and set(np.unique(images)) == {0, 1}
    batches = data.fit_dataset(data.load_split("mnist", "test", levels=2), batch_size=1000, conditional=True)
    fed = [(inputs["label"].numpy(), targets.numpy()) for inputs, targets in batches]
    np.testing.assert_array_equal(np.concatenate([targets for _, targets in fed]), images)
    np.testing.assert_array_equal(np.concatenate([batch_labels for batch_labels, _ in fed]), labels)
    out = str(tmp_path / "again.npz")
    assert binarized_mnist.main(["--out", out]) == 0
    again = binarized_mnist.load(path=out)
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], labels)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_an_export_is_scored_without_tensorflow_as_the_tensorflow_path_scores_it(tfds_dir, tmp_path, backend):
    out = tmp_path / "r.json"
    done = evaluate_without_tensorflow("--checkpoint", PRETRAINED, "--backend", backend, "--examples", "300",
                                       "--batch-size", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    scored = json.load(open(out))
    # The TensorFlow path: tfds and tf.data's seeded binarization, scored by the same backend in the same batches.
    sampler = Sampler.load(PRETRAINED, backend, sampler="naive")
    started, per_image = evaluate._score_through_tensorflow(sampler, "mnist", "test", 64, 300, None)
    expected = evaluate.summary(per_image, "mnist", "test", 2, 784, started)
    assert scored["total_nats"] == expected["total_nats"] and scored["examples"] == 300 and scored["backend"] == backend
    assert done.stdout == (f"mnist test (300 images): {expected['nats_per_image']:.3f} nats/image, "
                           f"{expected['bits_per_dim']:.4f} bits/dim\n")


def test_without_tensorflow_other_data_is_refused_in_one_line():
    done = evaluate_without_tensorflow("--checkpoint", PRETRAINED, "--backend", "numpy", "--split", "train")
    assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
    [line] = done.stderr.splitlines()
    assert line.startswith("python -m pixelcnn_tf.evaluate: error: scoring mnist (2 levels, split 'train') reads it with")
    assert "pip install -r requirements.txt" in line and binarized_mnist.SHIPPED in line


def test_a_changed_or_damaged_shipped_split_is_refused_in_one_line(tmp_path):
    with np.load(binarized_mnist.DATA_FILE) as arrays:
        bits, labels = arrays["bits"].copy(), arrays["labels"]
    bits[7, 3] ^= 1  # one pixel of one image
    changed = str(tmp_path / "changed.npz")
    binarized_mnist.write_npz(changed, {"bits": bits, "labels": labels})
    with pytest.raises(UserError, match="is not the recorded binarized MNIST test split .* rebuild it with"):
        binarized_mnist.load(path=changed)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(open(binarized_mnist.DATA_FILE, "rb").read()[:50_000])
    with pytest.raises(UserError, match="cannot read .*cut.npz"):
        binarized_mnist.load(path=str(cut))

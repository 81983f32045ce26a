"""pixelcnn_tf.evaluate: exact per-image NLL sums, unit consistency, fixed binarization, one-line errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pixelcnn_tf import evaluate

from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.run.checkpoints import float32_model, load_checkpoint, save_model
from pixelcnn_tf.config import ModelConfig, TrainConfig, save_config
from pixelcnn_tf.model import build_model
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

"""python -m export: artifacts, metadata, parity per backend, atomic output and one-line errors."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from helpers import error_line as cli_error_line
from helpers import export_leftovers as leftovers
from helpers import fake_onnx, fake_sampler_converter, fake_step_converter, float32_checkpoint

import export.__main__ as export_cli
import pixelcnn_tf
from export import artifacts as export_artifacts
from export import parity as export_parity
from export.savedmodel import savedmodel_sampler
from pixelcnn_tf.config import to_dict
from pixelcnn_tf.datasets.pipeline import load_arrays
from pixelcnn_tf.generation import keras_logits_fn
from pixelcnn_tf.run.checkpoints import load_checkpoint
from serve import Sampler
from serve.backends import ARTIFACTS
from serve.manifest import read_manifest
from serve.metadata import file_sha256

TOLERANCES = export_parity.TOLERANCES  # per-backend limits on max |Δlogit| vs Keras, as the exporter enforces them


def error_line(capsys) -> str:
    return cli_error_line(capsys, "python -m export", only=False)  # progress lines may come first


def test_export_writes_every_artifact_and_metadata(tiny_run, tiny_export):
    meta = json.load(open(os.path.join(tiny_export, "metadata.json")))
    _, config, _ = load_checkpoint(tiny_run)
    assert (meta["height"], meta["width"], meta["channels"], meta["levels"], meta["num_classes"]) == (28, 28, 1, 4, 0)
    assert meta["channel_order"] == "L" and meta["model_config"] == to_dict(config.model)
    assert meta["source"]["model_sha256"] == file_sha256(os.path.join(tiny_run, "model.keras"))
    assert meta["pixelcnn_tf_version"] == pixelcnn_tf.__version__
    names = {"saved_model", "onnx", "tflite", "tflite_float16", "tflite_dynamic", "tflite_int8"}
    assert set(meta["artifacts"]) == names == set(ARTIFACTS)  # every row of serve/backends.py with a full-model file
    assert read_manifest(tiny_export).to_dict() == meta  # the typed manifest holds all of it: written once, read back whole
    for name, entry in meta["artifacts"].items():
        path = os.path.join(tiny_export, entry["path"])
        if name == "saved_model":
            assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        else:
            assert os.path.getsize(path) == entry["bytes"] and file_sha256(path) == entry["sha256"]
    # Names are discovered from each runtime: the serving signature's, in both.
    assert meta["artifacts"]["onnx"]["inputs"] == meta["artifacts"]["tflite"]["inputs"] == {"image": "image"}
    assert meta["format_version"] == 2 and meta["source"] == {
        "run": "tiny", "model_file": "model.keras", "model_sha256": file_sha256(os.path.join(tiny_run, "model.keras"))}
    assert os.sep + "tmp" not in json.dumps(meta) and tiny_run not in json.dumps(meta)  # no path of this machine
    report = json.load(open(os.path.join(tiny_export, "parity.json")))
    assert report["ok"] and report["images"] == 8
    assert leftovers(os.path.dirname(tiny_export), "tiny") == []


@pytest.mark.parametrize("batch", [1, 5])
def test_parity_with_keras_per_backend_at_any_batch(tiny_run, tiny_export, batch):
    model, _ = float32_checkpoint(tiny_run)
    images, _ = load_arrays("mnist", "test", levels=4, count=batch)
    inputs = images.astype(np.float32)
    reference = keras_logits_fn(model, conditional=False)(inputs, None)
    backends = {
        "saved_model": savedmodel_sampler(tiny_export).logits_fn,
        "onnx": Sampler.load(tiny_export, "onnx").logits_fn,
        "tflite": Sampler.load(tiny_export, "tflite").logits_fn,
    }
    for name, logits_fn in backends.items():
        logits = logits_fn(inputs, None)
        assert logits.shape == (batch, 28, 28, 1, 4)  # the batch axis is dynamic in every artifact
        diff = float(np.abs(logits - reference).max())
        print(f"{name} batch {batch}: max |Δlogit| {diff:.2e}")
        assert diff <= TOLERANCES[name], name


def test_quantized_variants_report_nll_change(tiny_export):
    report = json.load(open(os.path.join(tiny_export, "parity.json")))
    for name in ("tflite_float16", "tflite_dynamic", "tflite_int8"):
        row = report["artifacts"][name]
        assert "tolerance" not in row and np.isfinite(row["nll_change_vs_float32"])
        # Quantization costs a little likelihood, not everything: within 5% of the float model's NLL.
        assert abs(row["nll_change_vs_float32"]) < 0.05 * report["keras_nll_nats_per_image"], (name, row)
    assert report["artifacts"]["tflite_int8"]["max_abs_logit_diff"] > 0  # really quantized


def test_parity_failure_leaves_the_old_export_alone(tiny_run, tiny_export, tmp_path, monkeypatch, capsys):
    out = tmp_path / "old"
    shutil.copytree(tiny_export, out)
    before = sorted(os.listdir(out))
    monkeypatch.setattr("export.build.write_onnx", fake_onnx(tiny_export))
    monkeypatch.setattr("export.step.convert_step_model", fake_step_converter(tiny_export))
    monkeypatch.setattr("export.sampler.convert_sampler", fake_sampler_converter(tiny_export))
    monkeypatch.setitem(export_parity.TOLERANCES, "onnx", -1.0)  # no difference can pass: parity must fail
    code = export_cli.main(["--checkpoint", tiny_run, "--out", str(out), "--overwrite", "--parity-images", "2"])
    assert code == 1
    assert "parity check failed" in error_line(capsys)
    assert sorted(os.listdir(out)) == before
    assert leftovers(str(tmp_path), "old") == []


def test_overwrite_replaces_an_export(tiny_run, tiny_export, tmp_path, monkeypatch, capsys):
    out = tmp_path / "again"
    shutil.copytree(tiny_export, out)
    (out / "stale.txt").write_text("from the old export")
    monkeypatch.setattr("export.build.write_onnx", fake_onnx(tiny_export))
    monkeypatch.setattr("export.step.convert_step_model", fake_step_converter(tiny_export))
    monkeypatch.setattr("export.sampler.convert_sampler", fake_sampler_converter(tiny_export))
    assert export_cli.main(["--checkpoint", tiny_run, "--out", str(out), "--overwrite", "--parity-images", "2"]) == 0
    assert not (out / "stale.txt").exists() and (out / "metadata.json").is_file()
    assert json.load(open(out / "parity.json"))["images"] == 2
    assert leftovers(str(tmp_path), "again") == []


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda run, tmp: ["--checkpoint", run, "--out", str(tmp)], "already exists; pass --overwrite"),
        (lambda run, tmp: ["--checkpoint", run, "--out", str(tmp), "--overwrite"], "not an export directory"),
        (lambda run, tmp: ["--checkpoint", str(tmp / "nope"), "--out", str(tmp / "e")], "does not exist"),
        (lambda run, tmp: ["--checkpoint", run, "--out", str(tmp / "keep.txt" / "e")], "is not a folder"),
        (lambda run, tmp: ["--checkpoint", run, "--out", "/proc/e"], "is not writable"),
    ],
)
def test_bad_destinations_and_checkpoints_are_one_line_errors(tiny_run, tmp_path, capsys, make_args, message):
    (tmp_path / "keep.txt").write_text("mine")
    before = sorted(os.listdir(tmp_path))
    assert export_cli.main(make_args(tiny_run, tmp_path)) == 2
    assert message in error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, nothing removed


def test_unknown_quantization_is_an_argparse_error(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(["--checkpoint", tiny_run, "--out", str(tmp_path / "e"), "--tflite-quantize", "float16,int4"])
    assert exit_info.value.code == 2
    assert "unknown quantization int4" in capsys.readouterr().err


def test_roles_find_decorated_names():
    assert export_artifacts._roles(["serving_default_label:0", "serving_default_image:0"], True, "m") == {
        "image": "serving_default_image:0",
        "label": "serving_default_label:0",
    }
    with pytest.raises(export_artifacts.ExportFailed, match="cannot tell the label"):
        export_artifacts._roles(["serving_default_image:0"], True, "m")


def test_mixed_precision_checkpoints_export_in_float32():
    import keras

    from pixelcnn_tf.config import TrainConfig
    from pixelcnn_tf.model import build_model
    from pixelcnn_tf.run.checkpoints import float32_model

    config = TrainConfig()
    config.model.num_layers, config.model.filters, config.model.kernel_size, config.model.levels = 2, 8, 3, 4
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_model(config.model)
    finally:
        keras.config.set_dtype_policy("float32")
    clone = float32_model(mixed, config)
    assert {layer.dtype_policy.name for layer in clone.layers} == {"float32"}
    for a, b in zip(mixed.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert float32_model(clone, config) is clone  # already float32: used as it is

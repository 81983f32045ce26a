"""Cached sampling end to end: the export's step models, Sampler.load(sampler=...), generate.py --sampler, damage."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from helpers import (
    ROOT,
    copy_export,
    error_line,
    export_leftovers,
    fake_onnx,
    fake_step_converter,
    generate_error,
    rewrite_metadata,
)

import generate
from export import step as export_step
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import build_model, cached_layout
from pixelcnn_tf.run.checkpoints import load_checkpoint
from serve import Sampler, ServeError
from serve.manifest import read_manifest
from serve.metadata import file_sha256

pytestmark = pytest.mark.slow  # every test here needs a trained and exported checkpoint


def test_export_writes_step_models_described_in_metadata(tiny_run, tiny_export, tiny_conditional_export):
    _, config, _ = load_checkpoint(tiny_run)
    step = json.load(open(os.path.join(tiny_export, "metadata.json")))["step"]
    assert step["layout"] == cached_layout(config.model)
    assert set(step["artifacts"]) == {"onnx", "tflite", "numpy"}
    for name, entry in step["artifacts"].items():
        assert sorted(entry["parts"]) == (["params"] if name == "numpy" else ["step"])
        for part in entry["parts"].values():
            path = os.path.join(tiny_export, part["path"])
            assert part["path"].startswith("step/") and os.path.getsize(path) == part["bytes"] and file_sha256(path) == part["sha256"]
        if name != "numpy":
            assert entry["parts"]["step"]["inputs"] == ["window_0", "window_1"]
            assert entry["parts"]["step"]["outputs"] == ["features_0", "logits"]
    # Only the three step files: the step SavedModel fed the converters and stays out of the export.
    assert sorted(os.listdir(os.path.join(tiny_export, "step"))) == ["step.onnx", "step.tflite", "step_params.npz"]
    assert not [name for name in os.listdir(tiny_export) if name.startswith(".")]
    report = json.load(open(os.path.join(tiny_export, "parity.json")))["step"]
    assert report["positions"] == 2 * 28 * 28 and set(report["artifacts"]) == {"onnx", "tflite", "numpy"}
    for row in report["artifacts"].values():
        assert row["ok"] and row["max_abs_logit_diff"] <= row["tolerance"]
    conditional = json.load(open(os.path.join(tiny_conditional_export, "metadata.json")))["step"]
    assert conditional["artifacts"]["onnx"]["parts"]["step"]["inputs"] == ["window_0", "window_1", "label"]


def test_a_model_without_a_step_model_exports_none(tmp_path):
    config = ModelConfig(num_layers=2, filters=8, kernel_size=1, levels=4, architecture="gated")
    notes = []
    assert export_step.write_step(build_model(config), config, str(tmp_path), notes.append) is None
    assert "kernel_size 1" in notes[0] and os.listdir(tmp_path) == []
    no_step = dataclasses.replace(read_manifest(os.path.join(ROOT, "pretrained", "gated_mnist")), step=None)
    assert export_step.step_parity(None, config, str(tmp_path), no_step, None, None) is None


def test_failing_step_parity_fails_the_export(tiny_run, tiny_export, tmp_path, monkeypatch, capsys):
    import export.__main__ as export_cli

    monkeypatch.setattr("export.build.write_onnx", fake_onnx(tiny_export))
    monkeypatch.setattr("export.step.convert_step_model", fake_step_converter(tiny_export))
    monkeypatch.setitem(export_step.TOLERANCES, "npz", -1.0)  # no difference can pass
    assert export_cli.main(["--checkpoint", tiny_run, "--out", str(tmp_path / "e"), "--parity-images", "2"]) == 1
    assert "parity check failed (max |Δlogit|): step numpy" in error_line(capsys, "python -m export", only=False)
    assert os.listdir(tmp_path) == [] and export_leftovers(str(tmp_path), "e") == []


def grid(capsys, source, backend, sampler, out) -> bytes:
    argv = ["--checkpoint", source, "--num-images", "3", "--seed", "7", "--sampler", sampler, "--out", str(out), "--no-progress"]
    assert generate.main(argv + (["--backend", backend] if backend else [])) == 0
    assert f"with {sampler} sampling" in capsys.readouterr().out
    return out.read_bytes()


@pytest.mark.parametrize("backend", ["keras", "onnx", "tflite"])
def test_generate_cached_and_naive_write_the_same_png(tiny_run, tiny_export, tmp_path, capsys, backend):
    source = tiny_run if backend == "keras" else tiny_export
    naive = grid(capsys, source, backend, "naive", tmp_path / "naive.png")
    assert grid(capsys, source, backend, "cached", tmp_path / "cached.png") == naive
    if backend == "onnx":  # the pure-numpy step model draws them too
        assert grid(capsys, tiny_export, "numpy", "cached", tmp_path / "numpy.png") == naive


def test_backends_without_a_step_model_fall_back_to_naive(tiny_export, tmp_path, capsys):
    out = tmp_path / "int8.png"
    argv = ["--checkpoint", tiny_export, "--backend", "tflite_int8", "--num-images", "1", "--out", str(out), "--no-progress"]
    assert generate.main(argv) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.strip()]
    assert notes == [f"generate.py: note: {tiny_export} has no step model for --backend tflite_int8; sampling naively (the same images, slower)"]
    assert "with naive sampling" in captured.out
    assert Sampler.load(tiny_export, "tflite_int8").sampler == "naive"
    with pytest.raises(ServeError, match="no step model for backend 'tflite_int8'"):
        Sampler.load(tiny_export, "tflite_int8", sampler="cached")
    with pytest.raises(ServeError, match="step model only"):
        Sampler.load(tiny_export, "numpy", sampler="naive")
    images = Sampler.load(tiny_export, "onnx").sample(2, seed=4)
    np.testing.assert_allclose(Sampler.load(tiny_export, "numpy").nll(images), Sampler.load(tiny_export, "onnx").nll(images), atol=1e-3)
    # An export from before step models (no "step" entry, so no sampler graph either) still samples, naively.
    old = copy_export(tiny_export, tmp_path / "old")
    rewrite_metadata(old, lambda meta: [meta.pop("step"), meta.pop("sampler_graph")])
    assert Sampler.load(old, "onnx").sampler == "naive"


@pytest.mark.parametrize("backend, filename, refusal", [
    ("onnx", "step.onnx", "cannot load"), ("tflite", "step.tflite", "cannot load"), ("numpy", "step_params.npz", "cannot read"),
])
def test_damaged_step_file_is_one_line(tiny_export, tmp_path, capsys, backend, filename, refusal):
    broken = copy_export(tiny_export, tmp_path / "export")
    path = os.path.join(broken, "step", filename)
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))  # same size: only the digest tells
    with pytest.raises(ServeError, match="sha256"):
        Sampler.load(broken, backend, sampler="cached")  # the step models (the sampler graph never opens them)
    out = tmp_path / "x.png"
    argv = ["--checkpoint", broken, "--backend", backend, "--sampler", "cached", "--out", str(out), "--no-progress"]
    assert f"step/{filename} does not match the sha256" in generate_error(capsys, argv)
    # With metadata that vouches for the damaged file, the runtime itself must refuse it, in one line.
    part = "params" if backend == "numpy" else "step"
    rewrite_metadata(broken, lambda meta: meta["step"]["artifacts"][backend]["parts"][part].pop("sha256"))
    assert refusal in generate_error(capsys, argv)
    if backend != "numpy":  # naive sampling never opens the step file
        assert Sampler.load(broken, backend, sampler="naive").sample(1).shape == (1, 28, 28, 1)
    os.remove(path)
    assert f"missing step/{filename}" in generate_error(capsys, argv)
    assert not out.exists()


def test_step_model_of_another_export_is_refused(tiny_export, tiny_conditional_export, tmp_path):
    swapped = copy_export(tiny_export, tmp_path / "swapped")
    for name in ("step.onnx", "step.tflite"):
        shutil.copy(os.path.join(tiny_conditional_export, "step", name), os.path.join(swapped, "step", name))
    # Metadata rewritten to vouch for the foreign files: the tensor check must still catch them.
    conditional = json.load(open(os.path.join(tiny_conditional_export, "metadata.json")))["step"]["artifacts"]

    def vouch(meta):
        for n in ("onnx", "tflite"):
            foreign = conditional[n]["parts"]["step"]
            meta["step"]["artifacts"][n]["parts"]["step"].update(bytes=foreign["bytes"], sha256=foreign["sha256"])

    rewrite_metadata(swapped, vouch)
    for backend in ("onnx", "tflite"):
        with pytest.raises(ServeError, match="not the ones metadata.json names"):
            Sampler.load(swapped, backend, sampler="cached")

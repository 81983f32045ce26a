"""metadata.json as one typed Manifest: a byte-exact round trip, and every refusal one ServeError line naming the field."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, copy_export, rewrite_metadata

from serve import Sampler, ServeError
from serve.manifest import (
    FORMAT_VERSION,
    REEXPORT,
    Artifact,
    GraphFile,
    Manifest,
    SamplerGraph,
    Source,
    Step,
    StepArtifact,
    StepLayout,
    StepPart,
    from_dict,
    read_manifest,
    write_manifest,
)

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")
SHIPPED = json.load(open(os.path.join(PRETRAINED, "metadata.json")))


def test_the_shipped_metadata_reads_and_writes_back_byte_for_byte(tmp_path):
    manifest = read_manifest(PRETRAINED)
    assert manifest.format_version == FORMAT_VERSION and manifest.spec.shape == (28, 28, 1)
    assert isinstance(manifest.artifacts["onnx"], Artifact) and isinstance(manifest.step.layout, StepLayout)
    assert manifest.step.artifacts["numpy"].parts["params"].path == "step/step_params.npz"
    assert manifest.sampler_graph.artifacts["tflite"].path == "sampler.tflite" and manifest.source.run == "mnist_gated_L2"
    assert manifest.to_dict() == SHIPPED  # the schema holds every field the exporter writes: nothing dropped or added
    write_manifest(str(tmp_path), manifest)
    written = (tmp_path / "metadata.json").read_bytes()
    assert written == open(os.path.join(PRETRAINED, "metadata.json"), "rb").read()
    assert read_manifest(str(tmp_path)) == manifest
    assert os.listdir(tmp_path) == ["metadata.json"]  # no temporary left beside it


def built_manifest(conditional: bool) -> Manifest:
    """A manifest as the exporter builds one, from typed parts (no step model or graph when unconditional)."""
    config = {"architecture": "pixelcnn", "height": 8, "width": 6, "channels": 3, "levels": 16,
              "num_classes": 10 if conditional else 0, "num_layers": 2, "kernel_size": 3, "filters": 8}
    inputs = {"image": "image"} | ({"label": "label"} if conditional else {})
    artifacts = {"onnx": Artifact(kind="onnx", runtime="onnxruntime", path="model.onnx", bytes=10, sha256="ab" * 32,
                                  inputs=inputs, outputs={"logits": "output_0"}, opset=17)}
    step = graph = None
    if conditional:
        part = StepPart(path="step/step.onnx", bytes=3, sha256="cd" * 32, inputs=["window_0", "label"], outputs=["logits"])
        step = Step(layout=StepLayout(architecture="pixelcnn", num_layers=2, kernel_size=3, filters=8, levels=16),
                    artifacts={"onnx": StepArtifact(kind="onnx", runtime="onnxruntime", parts={"step": part}, opset=17)})
        graph = SamplerGraph(inputs={"uniforms": "u"}, output={"images": "i"}, signature="sample",
                             artifacts={"onnx": GraphFile(kind="onnx", runtime="onnxruntime", path="sampler.onnx", bytes=5)})
    names = [f"class {c}" for c in range(10)] if conditional else None
    return Manifest.describe(config, dataset="cifar10", class_names=names,
                             source=Source(run="r", model_file="model.keras", model_sha256="0" * 64),
                             artifacts=artifacts, step=step, sampler_graph=graph, pixelcnn_tf_version="0.1.0")


@pytest.mark.parametrize("conditional", [False, True], ids=["bare", "full"])
def test_a_built_manifest_round_trips(tmp_path, conditional):
    manifest = built_manifest(conditional)
    write_manifest(str(tmp_path), manifest)
    raw = json.load(open(tmp_path / "metadata.json"))
    assert read_manifest(str(tmp_path)) == manifest
    assert raw["format"] == "pixelcnn-tf-export" and raw["format_version"] == FORMAT_VERSION
    # step, sampler_graph and label_input are written as null when absent; optional file fields are left out.
    assert ("step" in raw, raw["label_input"] is None) == (True, not conditional)
    assert "quantization" not in raw["artifacts"]["onnx"] and raw["channel_order"] == "RGB"


def test_a_manifest_serve_would_refuse_is_never_written(tmp_path):
    bad = dataclasses.replace(built_manifest(False), levels=1)
    with pytest.raises(ServeError, match="impossible model"):
        write_manifest(str(tmp_path), bad)
    assert os.listdir(tmp_path) == []


def changed(change) -> dict:
    meta = copy.deepcopy(SHIPPED)
    change(meta)
    return meta


def put(path: str, value):
    """A change setting the dotted path (a.b.c) of the metadata to value; value DELETE removes the key."""
    *parents, last = path.split(".")

    def change(meta):
        for key in parents:
            meta = meta[key]
        if value is DELETE:
            del meta[last]
        else:
            meta[last] = value

    return change


DELETE = object()
REFUSALS = [
    ("not an object", lambda meta: meta.clear() or meta.update(format=None), "is not pixelcnn-tf export metadata"),
    ("format", put("format", "other"), "is not pixelcnn-tf export metadata"),
    ("old version", put("format_version", 1), f"has format_version 1; this serve reads {FORMAT_VERSION}: re-export the checkpoint with `{REEXPORT}`"),
    ("newer version", put("format_version", 3), "has format_version 3; this serve reads 2: re-export"),
    ("no version", put("format_version", DELETE), "has format_version None"),
    ("version string", put("format_version", "2"), "has format_version '2'"),
    ("height string", put("height", "28"), "metadata.json.height must be an integer, got '28'"),
    ("height bool", put("height", True), ".height must be an integer, got True"),
    ("no levels", put("levels", DELETE), "metadata.json lacks levels"),
    ("channels 2", put("channels", 2), "describes an impossible model"),
    ("levels 1", put("levels", 1), "describes an impossible model"),
    ("no artifacts", put("artifacts", {}), "lists no artifacts"),
    ("artifacts list", put("artifacts", []), ".artifacts must be an object, got list"),
    ("artifact path", put("artifacts.onnx.path", DELETE), ".artifacts.onnx lacks path"),
    ("artifact bytes", put("artifacts.onnx.bytes", "big"), ".artifacts.onnx.bytes must be an integer, got 'big'"),
    ("artifact inputs", put("artifacts.onnx.inputs", ["image"]), ".artifacts.onnx.inputs must be an object, got list"),
    ("unknown kind", put("artifacts.onnx.kind", "pytorch"), "artifacts.onnx has kind 'pytorch', not"),
    ("kind of another backend", put("artifacts.onnx.kind", "tflite"), "artifacts.onnx has kind 'tflite', not onnx"),
    ("step kind", put("step.artifacts.numpy.kind", "onnx"), "step.artifacts.numpy has kind 'onnx', not npz"),
    ("graph kind", put("sampler_graph.artifacts.tflite.kind", "npz"), "sampler_graph.artifacts.tflite has kind 'npz', not tflite"),
    ("step parts", put("step.artifacts.onnx.parts", None), ".step.artifacts.onnx.parts must be an object, got null"),
    ("step arrays", put("step.artifacts.numpy.parts.params.arrays", [1]), ".parts.params.arrays[0] must be a string, got 1"),
    ("layout architecture", put("step.layout.architecture", "transformer"), "unknown step architecture 'transformer'"),
    ("layout levels", put("step.layout.levels", 4), "the step layout has 4 levels, the model 2"),
    ("layout layers", put("step.layout.num_layers", 0), "the step layout must give positive integers"),
    ("layout missing", put("step.layout", DELETE), ".step lacks layout"),
    ("graph signature", put("sampler_graph.signature", 7), ".sampler_graph.signature must be a string, got 7"),
    ("source run", put("source.run", DELETE), ".source lacks run"),
    ("class names count", put("class_names", ["cat"]), "class_names must be 0 non-empty strings, got ['cat']"),
    ("class names type", put("class_names", "cat"), ".class_names must be a list, got str"),
]


@pytest.mark.parametrize("change, message", [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_every_refusal_is_one_serve_error_line(change, message):
    with pytest.raises(ServeError) as refused:
        from_dict(changed(change))
    assert type(refused.value) is ServeError and "\n" not in str(refused.value)
    assert message in str(refused.value), str(refused.value)


def test_unreadable_or_missing_metadata_is_one_line(tmp_path):
    for content, message in ((b"{not json", "cannot read"), (b"\xff\xfe", "cannot read"), (b"[]", "is not pixelcnn-tf export metadata")):
        (tmp_path / "metadata.json").write_bytes(content)
        with pytest.raises(ServeError, match=message):
            read_manifest(str(tmp_path))
    os.remove(tmp_path / "metadata.json")
    with pytest.raises(ServeError, match="not an export directory"):
        read_manifest(str(tmp_path))
    with pytest.raises(ServeError, match="does not exist"):
        read_manifest(str(tmp_path / "nowhere"))


@pytest.fixture(scope="module")
def version_3(tmp_path_factory):
    """The shipped export, its metadata.json claiming a format version this code does not know."""
    export = copy_export(PRETRAINED, tmp_path_factory.mktemp("manifest") / "v3")
    rewrite_metadata(export, lambda meta: meta.update(format_version=3))
    return export


def test_an_export_of_another_version_is_refused_by_every_reader_in_one_line(version_3):
    with pytest.raises(ServeError, match="format_version 3; this serve reads 2"):
        Sampler.load(version_3, "numpy")
    run = subprocess.run([sys.executable, "-m", "serve.web", "--export", version_3, "--port", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "format_version 3; this serve reads 2" in lines[0], run.stderr


def test_readers_get_the_typed_manifest():
    sampler = Sampler.load(PRETRAINED, "numpy")
    assert isinstance(sampler.manifest, Manifest) and sampler.manifest == read_manifest(PRETRAINED)
    assert sampler.layout == sampler.manifest.step.layout.as_dict()

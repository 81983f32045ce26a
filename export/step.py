"""The export's step models (cached sampling) under step/, described in metadata.json as named parts, and their parity.

Each architecture's step models are its table entry's parts (pixelcnn_tf/model.py): the seed model one (step), the
gated model two (pixel, row); each part is written as step/<part>.onnx and step/<part>.tflite, the folded weights
once as step/step_params.npz.
"""
from __future__ import annotations

import os
import shutil

import keras
import numpy as np

from export.artifacts import CONVERTERS, ONNX_OPSET, SIGNATURE, ExportFailed
from export.parity import TOLERANCES
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import architecture, cached_layout, has_step_model
from serve.backends import BACKENDS, KINDS, STEP_EXPORTS
from serve.cached import teacher_forced_logits
from serve.manifest import Manifest, Step, StepArtifact, StepLayout, StepPart
from serve.metadata import ServeError, file_sha256
from serve.names import IMAGE, LABEL
from serve.step_loader import NUMPY_PART, load_step

STEP_DIR = "step"
PARAMS_FILE = BACKENDS["numpy"].file("step_params")
PARITY_IMAGES = 2  # every position of each: all the step model's code paths; the full model's check takes more


def _file(directory: str, relative: str, **extra) -> StepPart:
    path = os.path.join(directory, relative)
    return StepPart(path=relative, bytes=os.path.getsize(path), sha256=file_sha256(path), **extra)


def convert_step_model(step_model: keras.Model, work: str, out_dir: str, part: str, kinds=tuple(CONVERTERS)) -> dict:
    """SavedModel (model.export, in work) -> out_dir/<part>.<kind> per kind; returns {kind: path}."""
    saved = os.path.join(work, part)
    step_model.export(saved, verbose=False)
    paths = {}
    for kind in kinds:
        paths[kind] = os.path.join(out_dir, KINDS[kind].file(part))
        try:
            CONVERTERS[kind](saved, paths[kind])
        except ExportFailed as e:
            raise ExportFailed(f"step model {part}: {e}") from None
    return paths


def write_step(model: keras.Model, config: ModelConfig, directory: str, log) -> Step | None:
    """Write step/ into the export directory and return the manifest's step entry (layout, artifacts of named parts)."""
    if not has_step_model(config):
        log(f"no step model for a {config.architecture} model with kernel_size {config.kernel_size}: this export samples naively only")
        return None
    entry = architecture(config)
    folder, work = os.path.join(directory, STEP_DIR), os.path.join(directory, ".step-work")  # work: SavedModels, not published
    params = entry.fold(model, config)
    os.makedirs(folder)
    parts = {kind: {} for kind in CONVERTERS}
    for part, step_model in entry.step_models(params, config).items():
        names = {"inputs": list(step_model.input), "outputs": list(step_model.output)}
        for kind, path in convert_step_model(step_model, work, folder, part).items():
            parts[kind][part] = _file(directory, os.path.relpath(path, directory), **names)
    if os.path.isdir(work):
        shutil.rmtree(work)
    np.savez(os.path.join(folder, PARAMS_FILE), **params)
    log(f"wrote step/ (cached sampling): {', '.join(os.path.basename(p.path) for k in parts.values() for p in k.values())}, {PARAMS_FILE}")
    parts["numpy"] = {NUMPY_PART: _file(directory, f"{STEP_DIR}/{PARAMS_FILE}", arrays=sorted(params))}
    extra = {"onnx": {"opset": ONNX_OPSET, "signature": SIGNATURE}, "tflite": {"quantization": "none"}}
    artifacts = {name: StepArtifact(kind=BACKENDS[name].kind, runtime=BACKENDS[name].runtime, parts=parts[name],
                                    **extra.get(name, {})) for name in STEP_EXPORTS}
    return Step(layout=StepLayout(**cached_layout(config)), artifacts=artifacts)


def step_parity(model: keras.Model, config: ModelConfig, export_dir: str, manifest: Manifest, images, labels) -> dict | None:
    """max |Δlogit| of each step artifact vs the full Keras model at every sub-pixel of images, run in sampling order
    on the images' own levels (teacher forcing); 'ok' per tolerance, which scales with max(1, max |logit|): the step
    model sums the same products in another order (BatchNorm and rescaling folded in, float64 folding rounded to float32).
    """
    if manifest.step is None:
        return None
    images = images[:PARITY_IMAGES]
    labels = None if labels is None else labels[:PARITY_IMAGES]
    inputs = {IMAGE: images.astype(np.float32)} | ({LABEL: labels} if labels is not None else {})
    expected = np.asarray(model(inputs, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    rows = {}
    for name, artifact in manifest.step.artifacts.items():
        try:  # through serve's own loader: this also proves metadata.json describes the step files
            step, layout = load_step(manifest, export_dir, name, manifest.spec)
        except ServeError as e:
            raise ExportFailed(f"serve cannot load the fresh step {name} artifact: {e}") from None
        diff = float(np.abs(teacher_forced_logits(step, images, labels, layout, manifest.spec.distribution) - expected).max())
        tolerance = TOLERANCES[artifact.kind] * scale
        rows[name] = {"max_abs_logit_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}
    return {"images": int(len(images)), "positions": int(np.prod(images.shape[:3])), "logit_scale": scale, "artifacts": rows}

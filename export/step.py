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

from export.artifacts import ONNX_OPSET, SIGNATURE, ExportFailed, convert_onnx, convert_tflite
from export.parity import TOLERANCES
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.model import architecture, cached_layout, has_step_model
from serve.cached import teacher_forced_logits
from serve.metadata import RUNTIMES, ServeError, file_sha256, spec_of
from serve.names import IMAGE, LABEL
from serve.step_loader import NUMPY_KIND, NUMPY_PART, load_step

STEP_DIR = "step"
PARAMS_FILE = "step_params.npz"
CONVERTERS = {"onnx": convert_onnx, "tflite": convert_tflite}  # artifact kind -> SavedModel converter
PARITY_IMAGES = 2  # every position of each: all the step model's code paths; the full model's check takes more


def _file(directory: str, relative: str, **extra) -> dict:
    path = os.path.join(directory, relative)
    return {"path": relative, "bytes": os.path.getsize(path), "sha256": file_sha256(path), **extra}


def convert_step_model(step_model: keras.Model, work: str, out_dir: str, part: str, kinds=tuple(CONVERTERS)) -> dict:
    """SavedModel (model.export, in work) -> out_dir/<part>.<kind> per kind; returns {kind: path}."""
    saved = os.path.join(work, part)
    step_model.export(saved, verbose=False)
    paths = {}
    for kind in kinds:
        paths[kind] = os.path.join(out_dir, f"{part}.{kind}")
        try:
            CONVERTERS[kind](saved, paths[kind])
        except ExportFailed as e:
            raise ExportFailed(f"step model {part}: {e}") from None
    return paths


def write_step(model: keras.Model, config: ModelConfig, directory: str, log) -> dict | None:
    """Write step/ into the export directory and return metadata's "step" entry (layout, artifacts of named parts)."""
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
    log(f"wrote step/ (cached sampling): {', '.join(f'{part}.onnx, {part}.tflite' for part in entry.serving.parts)}, {PARAMS_FILE}")
    return {
        "layout": cached_layout(config),
        "artifacts": {
            "onnx": {"kind": "onnx", "runtime": RUNTIMES["onnx"], "opset": ONNX_OPSET, "signature": SIGNATURE, "parts": parts["onnx"]},
            "tflite": {"kind": "tflite", "runtime": RUNTIMES["tflite"], "quantization": "none", "parts": parts["tflite"]},
            "numpy": {"kind": NUMPY_KIND, "runtime": RUNTIMES[NUMPY_KIND],
                      "parts": {NUMPY_PART: _file(directory, f"{STEP_DIR}/{PARAMS_FILE}", arrays=sorted(params))}},
        },
    }


def step_parity(model: keras.Model, config: ModelConfig, export_dir: str, meta: dict, images, labels) -> dict | None:
    """max |Δlogit| of each step artifact vs the full Keras model at every sub-pixel of images, run in sampling order
    on the images' own levels (teacher forcing); 'ok' per tolerance, which scales with max(1, max |logit|): the step
    model sums the same products in another order (BatchNorm and rescaling folded in, float64 folding rounded to float32).
    """
    if meta.get("step") is None:
        return None
    images = images[:PARITY_IMAGES]
    labels = None if labels is None else labels[:PARITY_IMAGES]
    inputs = {IMAGE: images.astype(np.float32)} | ({LABEL: labels} if labels is not None else {})
    expected = np.asarray(model(inputs, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    rows = {}
    for name, artifact in meta["step"]["artifacts"].items():
        try:  # through serve's own loader: this also proves metadata.json describes the step files
            step, layout = load_step(meta, export_dir, name, spec_of(meta))
        except ServeError as e:
            raise ExportFailed(f"serve cannot load the fresh step {name} artifact: {e}") from None
        diff = float(np.abs(teacher_forced_logits(step, images, labels, layout, spec_of(meta).distribution) - expected).max())
        tolerance = TOLERANCES[artifact["kind"]] * scale
        rows[name] = {"max_abs_logit_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}
    return {"images": int(len(images)), "positions": int(np.prod(images.shape[:3])), "logit_scale": scale, "artifacts": rows}

"""The export's step models (cached sampling) under step/, described in metadata.json, and their parity.

Seed architecture: model.onnx, model.tflite, step_params.npz. Gated: pixel.{onnx,tflite}, row.{onnx,tflite}, step_params.npz.
"""
from __future__ import annotations

import os
import shutil

import keras
import numpy as np

from export.artifacts import ExportFailed
from pixelcnn_tf.cached import build_step_model, cached_layout, export_step_model, fold_step_params
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.gated_cached import build_pixel_step_model, build_row_step_model, fold_gated_params
from serve.cached import new_caches
from serve.gated_cached import teacher_forced_logits
from serve.metadata import RUNTIMES, ServeError, file_sha256, spec_of
from serve.step_runtimes import load_step_fn

STEP_DIR = "step"
FILES = {"onnx": "model.onnx", "tflite": "model.tflite", "numpy": "step_params.npz"}
KINDS = {"onnx": "onnx", "tflite": "tflite", "numpy": "npz"}
# Limits on max |Δlogit| vs the full Keras model, times max(1, max |logit|): the step model sums the same
# products in another order (BatchNorm folded into the weights, flattened windows, float64 folding rounded
# to float32), so its rounding error grows with the logits' size; for logits of order 1 the limits are the
# full model's (ONNX and numpy: same float32 math, 1e-4; TFLite: XNNPACK's reordered sums, 1e-3).
TOLERANCES = {"onnx": 1e-4, "tflite": 1e-3, "numpy": 1e-4}
ROWS_PER_CALL = 4096  # positions per step-model call in the parity check: bounds the runtimes' buffers
PARITY_IMAGES = 2  # every position of each: all the step model's code paths; the full model's check takes more


def _entry(name: str, directory: str, **extra) -> dict:
    relative = f"{STEP_DIR}/{FILES[name]}"
    path = os.path.join(directory, relative)
    return {"kind": KINDS[name], "runtime": RUNTIMES[KINDS[name]], "path": relative, "bytes": os.path.getsize(path),
            "sha256": file_sha256(path), **extra}


def _convert(step_model: keras.Model, work: str) -> dict:
    try:
        return export_step_model(step_model, work)
    except Exception as e:  # the converters raise many types (ConverterError, RuntimeError from tf2onnx)
        raise ExportFailed(f"step model conversion failed: {(str(e).strip().splitlines() or [type(e).__name__])[-1]}") from None


def write_gated_step(model: keras.Model, config: ModelConfig, directory: str, log) -> dict:
    """step/pixel.* and step/row.* (ONNX, TFLite) and step_params.npz for the gated architecture."""
    folder, work = os.path.join(directory, STEP_DIR), os.path.join(directory, ".step-work")
    params = fold_gated_params(model, config)
    models = {"pixel": build_pixel_step_model(params, config), "row": build_row_step_model(params, config)}
    os.makedirs(folder)
    parts = {"onnx": {}, "tflite": {}}
    for part, step_model in models.items():
        written = _convert(step_model, os.path.join(work, part))
        names = {"inputs": written["inputs"], "outputs": written["outputs"]}
        for kind in parts:
            relative = f"{STEP_DIR}/{part}.{kind}"
            shutil.move(written[kind], os.path.join(directory, relative))
            path = os.path.join(directory, relative)
            parts[kind][part] = {"path": relative, "bytes": os.path.getsize(path), "sha256": file_sha256(path), **names}
    shutil.rmtree(work)
    np.savez(os.path.join(folder, FILES["numpy"]), **params)
    log("wrote step/ (cached sampling): pixel and row step models (.onnx, .tflite), step_params.npz")
    return {
        "layout": cached_layout(config),
        "artifacts": {
            "onnx": {"kind": "onnx", "runtime": RUNTIMES["onnx"], "opset": 17, "parts": parts["onnx"]},
            "tflite": {"kind": "tflite", "runtime": RUNTIMES["tflite"], "quantization": "none", "parts": parts["tflite"]},
            "numpy": _entry("numpy", directory, arrays=sorted(params)),
        },
    }


def write_step(model: keras.Model, config: ModelConfig, directory: str, log) -> dict | None:
    """Write step/ into the export directory and return metadata's "step" entry (layout, artifacts, tensor names)."""
    if config.architecture == "gated":
        if config.kernel_size < 3:
            log("no step model for a gated model with kernel_size 1: this export samples naively only")
            return None
        return write_gated_step(model, config, directory, log)
    folder = os.path.join(directory, STEP_DIR)
    work = os.path.join(directory, ".step-work")  # the step SavedModel only feeds the converters: not published
    params = fold_step_params(model, config)
    written = _convert(build_step_model(model, config), work)
    os.makedirs(folder)
    shutil.move(written["onnx"], os.path.join(folder, FILES["onnx"]))
    shutil.move(written["tflite"], os.path.join(folder, FILES["tflite"]))
    shutil.rmtree(work)
    np.savez(os.path.join(folder, FILES["numpy"]), **params)
    names = {"inputs": written["inputs"], "outputs": written["outputs"]}
    log("wrote step/ (cached sampling): model.onnx, model.tflite, step_params.npz")
    return {
        "layout": cached_layout(config),
        **names,
        "artifacts": {
            "onnx": _entry("onnx", directory, opset=17, **names),
            "tflite": _entry("tflite", directory, quantization="none", **names),
            "numpy": _entry("numpy", directory, arrays=sorted(params)),
        },
    }


def _position_windows(model: keras.Model, config: ModelConfig, images: np.ndarray, labels):
    """Every position's windows, from caches filled with the images and the full model's activations, and its logits.

    Future taps then hold real values the step model's masks must ignore, as in tests/test_cached.py.
    """
    names = [f"masked_conv_{n}_relu" for n in range(config.num_layers)]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names] + [model.output])
    inputs = {"image": images.astype(np.float32)} | ({"label": labels} if labels is not None else {})
    *activations, logits = [np.asarray(t) for t in probe(inputs, training=False)]
    n, h, w, c = images.shape
    pad, k = config.kernel_size // 2, config.kernel_size
    caches = new_caches(n, (h, w, c), config.num_layers, k, config.filters, config.levels)
    for cache, source in zip(caches, [images] + activations[:-1]):
        cache[:, pad:, pad : pad + w] = source
    positions = [(i, j) for i in range(h) for j in range(w)]
    windows = [np.concatenate([cache[:, i : i + pad + 1, j : j + k] for i, j in positions]) for cache in caches]
    expected = np.concatenate([logits[:, i, j] for i, j in positions])
    return windows, (None if labels is None else np.tile(labels, len(positions))), expected


def step_parity(model: keras.Model, config: ModelConfig, export_dir: str, meta: dict, images, labels) -> dict | None:
    """max |Δlogit| of each step artifact vs the full Keras model at every position of images; 'ok' per tolerance."""
    if meta.get("step") is None:
        return None
    images = images[:PARITY_IMAGES]
    labels = None if labels is None else labels[:PARITY_IMAGES]
    if config.architecture == "gated":
        # The pixel and row steps run in sampling order, fed the images' own levels: every position's logits.
        inputs = {"image": images.astype(np.float32)} | ({"label": labels} if labels is not None else {})
        expected = np.asarray(model(inputs, training=False))
        positions = int(np.prod(images.shape[:3]))

        def step_logits(step, layout):
            return teacher_forced_logits(step, images, labels, layout)
    else:
        # Every position's windows at once, in chunks: the seed's step model needs no sampling order.
        windows, all_labels, expected = _position_windows(model, config, images, labels)
        positions = len(expected)

        def step_logits(step, layout):
            chunks = [slice(start, start + ROWS_PER_CALL) for start in range(0, positions, ROWS_PER_CALL)]
            return np.concatenate([step([w[part] for w in windows], None if all_labels is None else all_labels[part])[1]
                                   for part in chunks])
    scale = max(1.0, float(np.abs(expected).max()))
    rows = {}
    for name in meta["step"]["artifacts"]:
        try:  # through serve's own loader: this also proves metadata.json describes the step files
            step_fn, layout = load_step_fn(meta, export_dir, name, spec_of(meta))
        except ServeError as e:
            raise ExportFailed(f"serve cannot load the fresh step {name} artifact: {e}") from None
        diff = float(np.abs(step_logits(step_fn, layout) - expected).max())
        tolerance = TOLERANCES[name] * scale
        rows[name] = {"max_abs_logit_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}
    return {"images": int(len(images)), "positions": positions, "logit_scale": scale, "artifacts": rows}

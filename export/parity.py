"""Parity of every artifact with the Keras model on real test images: max |Δlogit|, and the NLL change of quantized ones."""
from __future__ import annotations

import numpy as np

from export.artifacts import ExportFailed
from export.savedmodel import savedmodel_sampler
from serve.metadata import ServeError, spec_of
from serve.sampler import Sampler

# Float32 limits on max |Δlogit| per artifact kind, for full and step models alike (export/step.py scales them
# by the logits' size). SavedModel runs the same TF kernels as Keras, ONNX and numpy the same float32 math in
# another library: all agree to rounding (~1e-6 on logits of size ~10), so 1e-4 catches any real graph
# difference. TFLite fuses BatchNorm into the conv and runs XNNPACK's reordered sums, so it gets 1e-3.
# Quantized variants change logits by design (0.01-1): their NLL change is reported instead.
TOLERANCES = {"saved_model": 1e-4, "onnx": 1e-4, "tflite": 1e-3, "npz": 1e-4}


def artifact_logits_fn(export_dir: str, name: str, entry: dict):
    if entry["kind"] == "saved_model":
        return savedmodel_sampler(export_dir).logits_fn
    # Through serve's own loader: this also proves metadata.json describes the files it sits beside.
    try:
        return Sampler.load(export_dir, backend=name, sampler="naive").logits_fn
    except ServeError as e:
        raise ExportFailed(f"serve cannot load the fresh {name} artifact: {e}") from None


def parity_report(reference_fn, export_dir: str, meta: dict, images: np.ndarray, labels: np.ndarray | None) -> dict:
    """Compare each artifact with reference_fn (the Keras model) on images; 'ok' is False past a tolerance."""
    inputs = images.astype(np.float32)
    reference = reference_fn(inputs, labels)
    distribution = spec_of(meta).distribution
    keras_nll = float(distribution.nll_per_image(reference, images).mean())
    rows = {}
    for name, entry in meta["artifacts"].items():
        logits = artifact_logits_fn(export_dir, name, entry)(inputs, labels)
        row = {
            "max_abs_logit_diff": float(np.abs(logits - reference).max()),
            "nll_nats_per_image": float(distribution.nll_per_image(logits, images).mean()),
        }
        quantized = entry.get("quantization", "none") != "none"
        if not quantized:
            row["tolerance"] = TOLERANCES[entry["kind"]]
            row["ok"] = row["max_abs_logit_diff"] <= row["tolerance"]
        rows[name] = row
    float_tflite = rows.get("tflite", {}).get("nll_nats_per_image", keras_nll)
    for name, row in rows.items():
        if "tolerance" not in row:
            row["nll_change_vs_float32"] = row["nll_nats_per_image"] - float_tflite
    return {
        "images": int(len(images)),
        "split": "test",
        "keras_nll_nats_per_image": keras_nll,
        "artifacts": rows,
        "ok": all(row.get("ok", True) for row in rows.values()),
    }


def format_report(report: dict, dataset: str) -> str:
    lines = [
        f"parity on {report['images']} {dataset} test images; Keras NLL {report['keras_nll_nats_per_image']:.3f} nats/image"
    ]
    for name, row in report["artifacts"].items():
        line = f"  {name:<15} max|Δlogit| {row['max_abs_logit_diff']:.2e}"
        if "tolerance" in row:
            line += f"  (limit {row['tolerance']:.0e})  {'ok' if row['ok'] else 'FAILED'}"
        else:
            line += f"  NLL {row['nll_change_vs_float32']:+.4f} nats/image vs float32 tflite"
        lines.append(line)
    step = report.get("step")
    if step:
        lines.append(f"step model at all {step['positions']} positions of {step['images']} images (logit scale {step['logit_scale']:.1f}):")
        for name, row in step["artifacts"].items():
            lines.append(f"  step {name:<10} max|Δlogit| {row['max_abs_logit_diff']:.2e}  (limit {row['tolerance']:.1e})  "
                         f"{'ok' if row['ok'] else 'FAILED'}")
    return "\n".join(lines)

"""Parity of every artifact with the Keras model on real test images: max |Δlogit|, and the NLL change of quantized ones."""
from __future__ import annotations

import numpy as np

from export.artifacts import ExportFailed
from export.savedmodel import savedmodel_sampler
from serve.backends import ARTIFACTS, KINDS
from serve.manifest import Artifact, Manifest
from serve.metadata import ServeError
from serve.sampler import Sampler

# Float32 limits on max |Δlogit| per file kind, for full and step models alike (export/step.py scales them by the
# logits' size); why each: serve.backends. Quantized variants change logits by design: their NLL change is reported.
TOLERANCES = {kind: row.tolerance for kind, row in KINDS.items() if row.tolerance is not None}


def artifact_logits_fn(export_dir: str, name: str, entry: Artifact):
    if ARTIFACTS[name].tensorflow:
        return savedmodel_sampler(export_dir).logits_fn
    # Through serve's own loader: this also proves metadata.json describes the files it sits beside.
    try:
        return Sampler.load(export_dir, backend=ARTIFACTS[name].name, sampler="naive").logits_fn
    except ServeError as e:
        raise ExportFailed(f"serve cannot load the fresh {name} artifact: {e}") from None


def parity_report(reference_fn, export_dir: str, manifest: Manifest, images: np.ndarray, labels: np.ndarray | None) -> dict:
    """Compare each artifact with reference_fn (the Keras model) on images; 'ok' is False past a tolerance."""
    inputs = images.astype(np.float32)
    reference = reference_fn(inputs, labels)
    distribution = manifest.spec.distribution
    keras_nll = float(distribution.nll_per_image(reference, images).mean())
    rows = {}
    for name, entry in manifest.artifacts.items():
        logits = artifact_logits_fn(export_dir, name, entry)(inputs, labels)
        row = {
            "max_abs_logit_diff": float(np.abs(logits - reference).max()),
            "nll_nats_per_image": float(distribution.nll_per_image(logits, images).mean()),
        }
        if not ARTIFACTS[name].quantization:
            row["tolerance"] = TOLERANCES[entry.kind]
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

"""The export's sampler graph: sampler.tflite, sampler.onnx (and the SavedModel's "sample" signature), and its parity.

Parity: for PARITY_SEEDS and one completion (test images' top half kept), each graph file's images must equal the
Python cached loop's (serve's numpy step model) on at least MIN_AGREEMENT of the sub-pixels; 100% is expected.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from export.artifacts import ExportFailed
from pixelcnn_tf.config import ModelConfig
from pixelcnn_tf.sampler_export import FILES, ONNX_OPSET, SIGNATURE, contract, convert_sampler
from serve.graph import GRAPH_KEY, GraphRunner, as_float32_uniforms, load_graph, loop_images
from serve.metadata import RUNTIMES, ServeError, file_sha256, spec_of
from serve.sampling import uniforms
from serve.step_runtimes import load_step_fn

PARITY_SEEDS = (0, 1, 2)
PARITY_IMAGES = 4  # per case: each image is a full raster pass of the Python loop, the slow side of the check
MIN_AGREEMENT = 0.999


def write_sampler(params: dict, config: ModelConfig, directory: str, log) -> dict:
    """sampler.tflite and sampler.onnx from the graph weights (pixelcnn_tf.sampler_params); metadata's entry."""
    work = os.path.join(directory, ".sampler-work")  # the graph's own SavedModel only feeds the converters
    try:
        written = convert_sampler(params, config, work)
    except Exception as e:  # the converters raise many types (ConverterError, tf2onnx's ValueError...)
        raise ExportFailed(f"sampler graph conversion failed: {(str(e).strip().splitlines() or [type(e).__name__])[-1]}") from None
    artifacts = {}
    for kind in ("onnx", "tflite"):
        shutil.move(written[kind], os.path.join(directory, FILES[kind]))
        path = os.path.join(directory, FILES[kind])
        artifacts[kind] = {"kind": kind, "runtime": RUNTIMES[kind], "path": FILES[kind], "bytes": os.path.getsize(path),
                           "sha256": file_sha256(path)} | ({"opset": ONNX_OPSET} if kind == "onnx" else {})
    shutil.rmtree(work)
    log(f"wrote the sampler graph (one call samples): {FILES['tflite']}, {FILES['onnx']}, SavedModel signature {SIGNATURE!r}")
    return {**contract(config), "artifacts": artifacts}


def saved_model_runner(path: str):
    """run(feeds) -> {"images": numpy} through the SavedModel's "sample" signature (TensorFlow)."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures[SIGNATURE]
    return lambda feeds: {name: value.numpy() for name, value in signature(**feeds).items()}


def sampler_parity(export_dir: str, meta: dict, images: np.ndarray, labels) -> dict | None:
    """Graph images vs the Python cached loop's for each seed and a completion; 'ok' per file."""
    if not meta.get(GRAPH_KEY):
        return None
    spec = spec_of(meta)
    try:
        step, layout = load_step_fn(meta, export_dir, "numpy", spec)
    except ServeError as e:
        raise ExportFailed(f"the sampler graph's parity needs the numpy step model: {e}") from None
    n = min(PARITY_IMAGES, len(images))
    case_labels = None if labels is None else np.asarray(labels[:n], np.int32)
    start = (spec.height // 2) * spec.width * spec.channels
    cases = {f"seed {seed}": (as_float32_uniforms(uniforms(n, *spec.shape, seed)), None, 0) for seed in PARITY_SEEDS}
    cases[f"completion of {n} test images from row {spec.height // 2}"] = (
        as_float32_uniforms(uniforms(n, *spec.shape, 99)), images[:n].astype(np.float32), start)
    expected = {name: loop_images(step, layout, spec, u, 1.0, prefix, first, case_labels)
                for name, (u, prefix, first) in cases.items()}
    rows = {}
    for backend in [*meta[GRAPH_KEY]["artifacts"], "saved_model"]:
        if backend == "saved_model":
            graph = GraphRunner(saved_model_runner(os.path.join(export_dir, meta["artifacts"]["saved_model"]["path"])), spec)
        else:
            try:  # serve's own loader: this also proves metadata.json describes the files
                graph = load_graph(meta, export_dir, backend, spec)
            except ServeError as e:
                raise ExportFailed(f"serve cannot load the fresh sampler graph {backend}: {e}") from None
        agreement = {name: float((graph(u, 1.0, prefix, first, case_labels) == expected[name]).mean())
                     for name, (u, prefix, first) in cases.items()}
        rows[backend] = {"agreement": agreement, "min_agreement": MIN_AGREEMENT,
                         "ok": min(agreement.values()) >= MIN_AGREEMENT}
    return {"images_per_case": n, "reference": "Python cached loop (numpy step model)", "artifacts": rows}


def format_sampler_parity(report: dict | None) -> list[str]:
    if not report:
        return []
    lines = [f"sampler graph vs the Python cached loop ({report['images_per_case']} images per case):"]
    for name, row in report["artifacts"].items():
        worst = min(row["agreement"].values())
        lines.append(f"  sampler {name:<11} {worst:.2%} of sub-pixels equal in the worst of {len(row['agreement'])} cases  "
                     f"{'ok' if row['ok'] else 'FAILED'}")
    return lines

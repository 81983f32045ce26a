"""The export's sampler graph: sampler.tflite, sampler.onnx (and the SavedModel's "sample" signature), and its parity."""
from __future__ import annotations

import os
import shutil

import numpy as np

from export.artifacts import ONNX_OPSET, ExportFailed, convert_onnx, convert_tflite
from export.graph_module import contract, save_graph
from pixelcnn_tf.config import ModelConfig
from serve.graph import GRAPH_KEY, GraphRunner, as_float32_uniforms, load_graph, loop_images
from serve.metadata import RUNTIMES, ServeError, file_sha256, spec_of
from serve.names import SAMPLE_SIGNATURE
from serve.sampling import uniforms
from serve.step_loader import load_step

FILES = {"onnx": "sampler.onnx", "tflite": "sampler.tflite"}
# TFLite writes the caches with its builtin DYNAMIC_UPDATE_SLICE (XLA's op in TensorFlow); tf2onnx maps no
# dynamic-update op, so the ONNX file is converted from the same graph with ScatterND writes instead.
UPDATES = {"tflite": "dynamic_update_slice", "onnx": "scatter_nd"}
CONVERTERS = {"tflite": convert_tflite, "onnx": convert_onnx}

PARITY_SEEDS = (0, 1, 2)
PARITY_IMAGES = 4  # per case: each image is a full raster pass of the Python loop, the slow side of the check
MIN_AGREEMENT = 0.999  # per file and case: each graph's images vs the Python cached loop's; 100% is expected


def convert_sampler(params: dict, config: ModelConfig, out_dir: str, kinds=tuple(FILES)) -> dict:
    """out_dir/sampler.<kind> per kind, each through a SavedModel of its graph variant in out_dir; {kind: path}."""
    paths = {}
    for kind in kinds:
        saved = save_graph(params, config, os.path.join(out_dir, f"sampler_{kind}_saved_model"), UPDATES[kind])
        paths[kind] = os.path.join(out_dir, FILES[kind])
        try:
            CONVERTERS[kind](saved, paths[kind], signature=SAMPLE_SIGNATURE)
        except ExportFailed as e:
            raise ExportFailed(f"sampler graph: {e}") from None
    return paths


def write_sampler(params: dict, config: ModelConfig, directory: str, log) -> dict:
    """sampler.tflite and sampler.onnx from the graph weights (pixelcnn_tf.model.graph_params); metadata's entry."""
    work = os.path.join(directory, ".sampler-work")  # the graphs' SavedModels only feed the converters
    written = convert_sampler(params, config, work)
    artifacts = {}
    for kind, source in written.items():
        shutil.move(source, os.path.join(directory, FILES[kind]))
        path = os.path.join(directory, FILES[kind])
        artifacts[kind] = {"kind": kind, "runtime": RUNTIMES[kind], "path": FILES[kind], "bytes": os.path.getsize(path),
                           "sha256": file_sha256(path)} | ({"opset": ONNX_OPSET} if kind == "onnx" else {})
    shutil.rmtree(work)
    log(f"wrote the sampler graph (one call samples): {', '.join(FILES.values())}, SavedModel signature {SAMPLE_SIGNATURE!r}")
    return {**contract(config), "artifacts": artifacts}


def saved_model_runner(path: str):
    """run(feeds) -> {"images": numpy} through the SavedModel's "sample" signature (TensorFlow)."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures[SAMPLE_SIGNATURE]
    return lambda feeds: {name: value.numpy() for name, value in signature(**feeds).items()}


def sampler_parity(export_dir: str, meta: dict, images: np.ndarray, labels) -> dict | None:
    """Graph images vs the Python cached loop's for each seed and a completion; 'ok' per file."""
    if not meta.get(GRAPH_KEY):
        return None
    spec = spec_of(meta)
    try:
        step, layout = load_step(meta, export_dir, "numpy", spec)
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

"""The export's sampler graph: sampler.tflite, sampler.onnx (and the SavedModel's "sample" signature), and its parity."""
from __future__ import annotations

import os
import shutil

import numpy as np

from export.artifacts import CONVERTERS, ONNX_OPSET, ExportFailed
from export.graph_module import contract, save_graph
from pixelcnn_tf.config import ModelConfig
from serve.backends import BACKENDS, GRAPH_EXPORTS
from serve.graph import GraphRunner, as_float32_uniforms, forced_draws, load_graph, loop_images
from serve.manifest import GraphFile, Manifest, SamplerGraph
from serve.metadata import ServeError, file_sha256
from serve.names import SAMPLE_SIGNATURE
from serve.sampling import uniforms
from serve.step_loader import load_step

STEM = "sampler"  # sampler.onnx, sampler.tflite: one per serve.backends row with a sampler graph (GRAPH_EXPORTS)

PARITY_SEEDS = (0, 1, 2)
PARITY_IMAGES = 4  # per case: each image is a full raster pass of the Python loop, the slow side of the check
# Per file and case: each sub-pixel a graph draws vs the Python cached loop's draw given the same earlier sub-pixels
# (teacher-forced, so a float tie is one sub-pixel); the free-running images are reported as "identical" too.
MIN_AGREEMENT = 0.999


def convert_sampler(params: dict, config: ModelConfig, out_dir: str, kinds=GRAPH_EXPORTS) -> dict:
    """out_dir/sampler.<kind> per kind, each through a SavedModel of its graph variant in out_dir; {kind: path}."""
    paths = {}
    for kind in kinds:
        row = BACKENDS[kind]
        saved = save_graph(params, config, os.path.join(out_dir, f"sampler_{kind}_saved_model"), row.graph_update)
        paths[kind] = os.path.join(out_dir, row.file(STEM))
        try:
            CONVERTERS[row.kind](saved, paths[kind], signature=SAMPLE_SIGNATURE)
        except ExportFailed as e:
            raise ExportFailed(f"sampler graph: {e}") from None
    return paths


def write_sampler(params: dict, config: ModelConfig, directory: str, log) -> SamplerGraph:
    """sampler.tflite and sampler.onnx from the graph weights (pixelcnn_tf.model.graph_params); the manifest's entry."""
    work = os.path.join(directory, ".sampler-work")  # the graphs' SavedModels only feed the converters
    written = convert_sampler(params, config, work)
    artifacts = {}
    for name, source in written.items():
        row = BACKENDS[name]
        path = os.path.join(directory, row.file(STEM))
        shutil.move(source, path)
        artifacts[name] = GraphFile(kind=row.kind, runtime=row.runtime, path=row.file(STEM), bytes=os.path.getsize(path),
                                    sha256=file_sha256(path), opset=ONNX_OPSET if row.kind == "onnx" else None)
    shutil.rmtree(work)
    log(f"wrote the sampler graph (one call samples): {', '.join(a.path for a in artifacts.values())}, "
        f"SavedModel signature {SAMPLE_SIGNATURE!r}")
    return SamplerGraph(**contract(config), artifacts=artifacts)


def saved_model_runner(path: str):
    """run(feeds) -> {"images": numpy} through the SavedModel's "sample" signature (TensorFlow)."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures[SAMPLE_SIGNATURE]
    return lambda feeds: {name: value.numpy() for name, value in signature(**feeds).items()}


def sampler_parity(export_dir: str, manifest: Manifest, images: np.ndarray, labels) -> dict | None:
    """Graph images vs the Python cached loop's for each seed and a completion; 'ok' per file."""
    if not manifest.sampler_graph:
        return None
    spec = manifest.spec
    try:
        step, layout = load_step(manifest, export_dir, "numpy", spec)
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
    saved_model = BACKENDS["savedmodel"].artifact
    for backend in [*manifest.sampler_graph.artifacts, saved_model]:
        if backend == saved_model:
            graph = GraphRunner(saved_model_runner(os.path.join(export_dir, manifest.artifacts[saved_model].path)), spec)
        else:
            try:  # serve's own loader: this also proves metadata.json describes the files
                graph = load_graph(manifest, export_dir, backend, spec)
            except ServeError as e:
                raise ExportFailed(f"serve cannot load the fresh sampler graph {backend}: {e}") from None
        identical, agreement = {}, {}
        for name, (u, prefix, first) in cases.items():
            drawn = graph(u, 1.0, prefix, first, case_labels)
            identical[name] = float((drawn == expected[name]).mean())
            # Where the images part, score each sub-pixel against Python's draw given the graph's own earlier ones.
            agreement[name] = 1.0 if identical[name] == 1.0 else float(
                (drawn == forced_draws(step, layout, spec, drawn, u, 1.0, prefix, first, case_labels)).mean())
        rows[backend] = {"agreement": agreement, "identical": identical, "min_agreement": MIN_AGREEMENT,
                         "ok": min(agreement.values()) >= MIN_AGREEMENT}
    return {"images_per_case": n, "reference": "Python cached loop (numpy step model)", "artifacts": rows}


def format_sampler_parity(report: dict | None) -> list[str]:
    if not report:
        return []
    lines = [f"sampler graph vs the Python cached loop ({report['images_per_case']} images per case):"]
    for name, row in report["artifacts"].items():
        worst, same = min(row["agreement"].values()), min(row.get("identical", row["agreement"]).values())
        lines.append(f"  sampler {name:<11} {worst:.2%} of sub-pixels drawn as Python draws them, {same:.2%} identical "
                     f"free-running, in the worst of {len(row['agreement'])} cases  {'ok' if row['ok'] else 'FAILED'}")
    return lines

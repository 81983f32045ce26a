"""Export a checkpoint: every artifact, metadata and parity report, built in a work folder beside --out (export.publish)."""
from __future__ import annotations

import os

import tensorflow as tf

import pixelcnn_tf
from export.artifacts import (
    ExportFailed,
    representative_dataset,
    tflite_backend,
    write_onnx,
    write_saved_model,
    write_tflite,
)
from export.graph_module import GraphModule
from export.parity import format_report, parity_report
from export.publish import WorkFolder, check_destination, remove_stale
from export.sampler import format_sampler_parity, sampler_parity, write_sampler
from export.step import step_parity, write_step
from pixelcnn_tf import faults
from pixelcnn_tf.config import TrainConfig, to_dict
from pixelcnn_tf.datasets import pipeline as data
from pixelcnn_tf.datasets.catalog import known_class_names
from pixelcnn_tf.errors import UserError, first_line
from pixelcnn_tf.files import write_json_atomic, write_text_atomic
from pixelcnn_tf.generation import keras_logits_fn
from pixelcnn_tf.model import graph_params, has_sampler_graph, step_params
from pixelcnn_tf.run.aside import run_name
from pixelcnn_tf.run.checkpoints import MODEL_FILE, float32_model, load_checkpoint
from serve.backends import BACKENDS
from serve.manifest import Manifest, Source, write_manifest
from serve.metadata import file_sha256
from serve.names import SAMPLE_SIGNATURE

PARITY_FILE = "parity.json"


def manifest(config: TrainConfig, run_dir: str, artifacts: dict, step, sampler_graph, raw: bool = False) -> Manifest:
    """The export's metadata.json (serve.manifest), with the run's provenance."""
    # The run's name, not its path: an absolute path of the training machine means nothing where the export goes.
    source = Source(run=run_name(run_dir), model_file=MODEL_FILE,
                    model_sha256=file_sha256(os.path.join(run_dir, MODEL_FILE)), weights="raw" if raw else None)
    names = list(known_class_names(config))
    class_names = names if config.model.num_classes and len(names) == config.model.num_classes else None
    return Manifest.describe(to_dict(config.model), dataset=config.dataset, class_names=class_names, source=source,
                             artifacts=artifacts, step=step, sampler_graph=sampler_graph,
                             pixelcnn_tf_version=pixelcnn_tf.__version__)


def section(report: dict, key: str) -> dict:
    """The per-artifact rows of a parity report's step or sampler_graph section ({} when the export has none)."""
    return (report.get(key) or {}).get("artifacts") or {}


def build(model, config: TrainConfig, run_dir: str, directory: str, quantize, parity_images: int, calibration_images: int, log,
          raw: bool = False) -> dict:
    """Write every artifact, metadata.json and parity.json into directory; returns the parity report."""
    conditional = bool(config.model.num_classes)

    def load(split: str, count: int):
        return data.load_arrays(config.dataset, split, levels=config.model.levels, count=count, data_dir=config.data_dir,
                                image_size=config.image_size)

    images, labels = load("test", parity_images)  # first: a missing dataset is one line before minutes of converting
    labels = labels if conditional else None
    # The sampler graph (one call samples), where the architecture's split covers the kernel size.
    params = graph_params(step_params(model, config.model), config.model) if has_sampler_graph(config.model) else None
    graph = GraphModule(params, config.model) if params else None
    endpoints = {SAMPLE_SIGNATURE: (graph, graph.sample)} if graph else None
    artifacts = {BACKENDS["savedmodel"].artifact: write_saved_model(model, directory, conditional, endpoints)}
    log("wrote saved_model/; converting to ONNX and TFLite")
    artifacts[BACKENDS["onnx"].artifact] = write_onnx(directory, conditional)
    artifacts[BACKENDS["tflite"].artifact] = write_tflite(directory, conditional)
    for quantization in quantize:
        representative = None
        if quantization == "int8":
            train_images, train_labels = load("train", calibration_images)
            representative = representative_dataset(train_images, train_labels if conditional else None)
        artifacts[BACKENDS[tflite_backend(quantization)].artifact] = write_tflite(directory, conditional, quantization, representative)
    step = write_step(model, config.model, directory, log)
    graph_entry = write_sampler(params, config.model, directory, log) if params and step else None
    meta = manifest(config, run_dir, artifacts, step, graph_entry, raw)
    write_manifest(directory, meta, write_text_atomic)

    report = parity_report(keras_logits_fn(model, conditional), directory, meta, images, labels)
    report["step"] = step_parity(model, config.model, directory, meta, images, labels)
    report["sampler_graph"] = sampler_parity(directory, meta, images, labels)
    report["ok"] = report["ok"] and all(row["ok"] for key in ("step", "sampler_graph") for row in section(report, key).values())
    report["dataset"] = config.dataset
    write_json_atomic(os.path.join(directory, PARITY_FILE), report)
    log("\n".join([format_report(report, config.dataset)] + format_sampler_parity(report["sampler_graph"])))
    return report


def export_checkpoint(checkpoint, out: str, quantize=(), overwrite=False, parity_images=16, calibration_images=128, log=print,
                      raw: bool = False) -> dict:
    """Export checkpoint to out (SavedModel, TFLite, ONNX, metadata, parity); nothing is left at out on failure."""
    out = os.path.abspath(out)
    check_destination(out, overwrite)
    remove_stale(out)
    work = WorkFolder(out)
    try:
        faults.point("export-started")
        model, config, run_dir = load_checkpoint(checkpoint, raw=raw)
        model = float32_model(model, config)
        report = build(model, config, run_dir, work.path, quantize, parity_images, calibration_images, log, raw)
        if not report["ok"]:
            rows = list(report["artifacts"].items())
            rows += [(f"step {name}", row) for name, row in section(report, "step").items()]
            failed = [f"{name} {row['max_abs_logit_diff']:.2e} > {row['tolerance']:.1e}" for name, row in rows if not row.get("ok", True)]
            failed += [f"sampler {name} {min(row['agreement'].values()):.2%} of sub-pixels drawn as Python draws them "
                       f"< {row['min_agreement']:.1%}" for name, row in section(report, "sampler_graph").items() if not row["ok"]]
            raise ExportFailed(f"parity check failed (max |Δlogit|): {', '.join(failed)}")
        work.publish(out, overwrite)
    # Disk full or read-only while writing (TensorFlow reports it as its own error types): the partial export goes
    # with work.close().
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e).rsplit("; ", 1)[-1]
        raise UserError(f"cannot write the export {out}: {reason}") from None
    finally:
        work.close()
    return report

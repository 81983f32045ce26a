"""Write the artifacts of an export (SavedModel, TFLite float32 and quantized, ONNX) and discover their tensor names."""
from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf

from pixelcnn_tf.errors import first_line
from serve.backends import BACKENDS
from serve.manifest import Artifact
from serve.metadata import file_sha256
from serve.names import IMAGE, LABEL, LOGITS

SAVED_MODEL_DIR = BACKENDS["savedmodel"].file("saved_model")  # a folder
SIGNATURE = "serving_default"
ENDPOINT = "serve"  # the endpoint model.export names the forward pass; the SavedModel serves it as serving_default
MODEL = "model"  # the full model's file stem: model.onnx, model.tflite, model_int8.tflite (serve.backends)
ONNX_OPSET = 17  # tf2onnx 1.17 refuses opset 19; 17 runs on every onnxruntime since 1.13
MAX_SHARD_BYTES = 1_000_000  # SavedModel variable files stay small enough to ship in the repository (< 1.5 MB each)


class ExportFailed(Exception):
    """A conversion or a parity check failed: the export is discarded."""


def tflite_backend(quantization: str | None) -> str:
    return f"tflite_{quantization}" if quantization else "tflite"


def _roles(names: list[str], conditional: bool, where: str) -> dict:
    """Map the roles image/label to a runtime's tensor names, which converters may decorate (image:0)."""
    roles = {}
    for role in (IMAGE, LABEL) if conditional else (IMAGE,):
        matches = [name for name in names if role in name]
        if len(matches) != 1:
            raise ExportFailed(f"{where}: cannot tell the {role} input among {names}")
        roles[role] = matches[0]
    if len(names) != len(roles):
        raise ExportFailed(f"{where}: unexpected inputs {names}")
    return roles


def input_signature(model) -> list:
    """model.export's input signature of a functional model, from public API: its inputs' structure (the dict of
    image and label), each with any batch size."""
    import keras

    def spec(tensor):
        return keras.InputSpec(dtype=tensor.dtype, shape=(None, *tensor.shape[1:]), name=tensor.name)

    return [keras.tree.map_structure(spec, model.input)]  # one positional argument: the whole structure


def write_saved_model(model, directory: str, conditional: bool, endpoints: dict | None = None) -> Artifact:
    """A SavedModel whose serving_default signature (Keras's "serve" endpoint) takes image (and label), any batch.

    endpoints: name -> (trackable holding its variables, tf.function with an input signature), saved as further
    signatures (the sampler graph's "sample"). Variables are sharded into files under MAX_SHARD_BYTES.
    """
    import keras

    path = os.path.join(directory, SAVED_MODEL_DIR)
    archive = keras.export.ExportArchive()
    archive.track_and_add_endpoint(ENDPOINT, model, input_signature(model))  # what model.export does
    for name, (trackable, function) in (endpoints or {}).items():
        archive.track(trackable)
        archive.add_endpoint(name, function)
    sharding = tf.train.experimental.MaxShardSizePolicy(max_shard_size=MAX_SHARD_BYTES)
    archive.write_out(path, verbose=False, options=tf.saved_model.SaveOptions(experimental_sharding_callback=sharding))
    signature = tf.saved_model.load(path).signatures[SIGNATURE]
    _, inputs = signature.structured_input_signature
    outputs = list(signature.structured_outputs)
    if len(outputs) != 1 or inputs[IMAGE].shape[0] is not None:
        raise ExportFailed(f"{path}: expected one output and a dynamic batch axis, got {outputs} and {inputs[IMAGE].shape}")
    size = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)
    row = BACKENDS["savedmodel"]
    return Artifact(kind=row.kind, runtime=row.runtime, path=SAVED_MODEL_DIR, bytes=size, signature=SIGNATURE,
                    signatures=sorted(tf.saved_model.load(path).signatures), inputs=_roles(sorted(inputs), conditional, path),
                    outputs={LOGITS: outputs[0]})


def convert_tflite(saved_model: str, path: str, quantization: str | None = None, representative=None,
                   signature: str = SIGNATURE) -> None:
    """TFLite from a SavedModel's signature, builtin ops only (the plain LiteRT interpreter runs it), float32 in and out.

    quantization: None (float32), "float16" (weights), "dynamic" (int8 weights, float activations) or
    "int8" (weights and activations, calibrated on representative(); float fallback keeps float I/O).
    """
    # One signature: without signature_keys the converter would take every one (the full model's "sample" too).
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = representative
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # the converter raises ConverterError with a page of MLIR diagnostics
        raise ExportFailed(f"TFLite conversion ({quantization or 'float32'}) failed: {str(e).strip().splitlines()[0]}") from None
    with open(path, "wb") as f:
        f.write(flatbuffer)


def convert_onnx(saved_model: str, path: str, signature: str = SIGNATURE) -> None:
    """ONNX from a SavedModel's signature, converted as `python -m tf2onnx.convert --saved-model` converts it (its
    from_keras path breaks on Keras 3), but in this process: a converter process per file imported TensorFlow again,
    ~8 s of CPU each, three times an export."""
    log_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    from tf2onnx import convert, tf_loader  # importing it sets TF_CPP_MIN_LOG_LEVEL=3 for the whole process: put it back

    if log_level is None:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = log_level
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its progress lines at WARNING would be the export's output
    try:
        graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
            saved_model, None, None, signatures=[signature], return_initialized_tables=True, return_tensors_to_rename=True)
        with tf.device("/cpu:0"):  # the command line's own steps after loading (tf2onnx.convert.main, version pinned)
            convert._convert_common(graph_def, name=saved_model, opset=ONNX_OPSET, input_names=inputs, output_names=outputs,
                                    tensors_to_rename=renames, initialized_tables=tables, output_path=path)
    except Exception as e:  # an op it cannot map, or a graph it cannot load
        raise ExportFailed(f"tf2onnx failed: {first_line(e)}") from None
    finally:
        logger.setLevel(level)
    if not os.path.isfile(path):
        raise ExportFailed(f"tf2onnx wrote no {os.path.basename(path)}")


def _runner(open_runner, path: str, what: str):
    """The fresh file through serve's own runtime layer: the converter wrote something serve can run."""
    try:
        return open_runner(path)
    except Exception as e:  # ServeError from the runtime layer
        raise ExportFailed(f"{what} cannot load the converted {os.path.basename(path)}: {e}") from None


def _full_model_entry(backend: str, directory: str, conditional: bool, **extra) -> Artifact:
    """The manifest entry of backend's fresh full model file, its tensor names read through serve's own runtime layer."""
    row = BACKENDS[backend]
    filename = row.file(MODEL)
    path = os.path.join(directory, filename)
    runner = _runner(row.runner, path, row.runtime)
    dynamic = all(not isinstance(shape[0], int) or shape[0] < 0 for shape in runner.inputs.values())
    if not dynamic or len(runner.outputs) != 1:
        raise ExportFailed(f"{filename}: expected a dynamic batch axis and one output, got {runner.inputs} -> {list(runner.outputs)}")
    return Artifact(kind=row.kind, runtime=row.runtime, path=filename, bytes=os.path.getsize(path), sha256=file_sha256(path),
                    inputs=_roles(sorted(runner.inputs), conditional, filename), outputs={LOGITS: next(iter(runner.outputs))},
                    **extra)


def write_tflite(directory: str, conditional: bool, quantization: str | None = None, representative=None) -> Artifact:
    """The full model as TFLite (convert_tflite); tensor names are its serving signature's."""
    backend = tflite_backend(quantization)
    path = os.path.join(directory, BACKENDS[backend].file(MODEL))
    convert_tflite(os.path.join(directory, SAVED_MODEL_DIR), path, quantization, representative)
    return _full_model_entry(backend, directory, conditional, quantization=quantization or "none")


def write_onnx(directory: str, conditional: bool) -> Artifact:
    """The full model as ONNX (convert_onnx)."""
    convert_onnx(os.path.join(directory, SAVED_MODEL_DIR), os.path.join(directory, BACKENDS["onnx"].file(MODEL)))
    return _full_model_entry("onnx", directory, conditional, opset=ONNX_OPSET)


# The converters from a SavedModel signature, per file kind: every kind serve runs (tests/test_backends.py checks it).
CONVERTERS = {"onnx": convert_onnx, "tflite": convert_tflite}


def representative_dataset(images: np.ndarray, labels: np.ndarray | None):
    """int8 calibration batches of one real training image each, in the serving signature's input names."""
    def generate():
        for index in range(len(images)):
            batch = {IMAGE: images[index : index + 1].astype(np.float32)}
            if labels is not None:
                batch[LABEL] = labels[index : index + 1]
            yield batch

    return generate

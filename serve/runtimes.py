"""Logits functions over onnxruntime and LiteRT, checked against the metadata's tensor names and shapes."""
from __future__ import annotations

import numpy as np

from serve.metadata import ModelSpec, ServeError
from serve.sampling import LogitsFn


def _check_tensor(where: str, role: str, found: list | None, expected: tuple) -> None:
    """A tensor's shape after the batch axis must be the model's; None in `found` is a dynamic axis."""
    if found is None or len(found) != len(expected) + 1:
        raise ServeError(f"{where}: {role} tensor has shape {found}, metadata implies (batch, {', '.join(map(str, expected))})")
    for have, want in zip(found[1:], expected):
        if isinstance(have, (int, np.integer)) and have >= 0 and have != want:
            raise ServeError(
                f"{where}: {role} tensor has shape {list(found)}, metadata implies (batch, {', '.join(map(str, expected))}): "
                "the metadata belongs to another model"
            )


def _check_names(where: str, kind: str, wanted: dict, available: list[str]) -> None:
    for role, name in wanted.items():
        if name not in available:
            raise ServeError(f"{where}: no {kind} tensor {name!r} ({role}); the model has {', '.join(available)}")


def _names(entry: dict, spec: ModelSpec, where: str) -> tuple[dict, str]:
    """The metadata's input names (image, plus label exactly when conditional) and output name."""
    inputs, outputs = dict(entry.get("inputs") or {}), dict(entry.get("outputs") or {})
    if "image" not in inputs or "logits" not in outputs:
        raise ServeError(f"{where}: metadata names no image input or logits output")
    if bool(spec.num_classes) != ("label" in inputs):
        raise ServeError(f"{where}: metadata says num_classes={spec.num_classes} but {'names' if 'label' in inputs else 'lacks'} a label input")
    return inputs, outputs["logits"]


def _feed(inputs: dict, images: np.ndarray, labels: np.ndarray | None) -> dict:
    feed = {inputs["image"]: np.ascontiguousarray(images, dtype=np.float32)}
    if "label" in inputs:
        feed[inputs["label"]] = np.ascontiguousarray(labels, dtype=np.int32)
    return feed


def onnx_logits_fn(path: str, entry: dict, spec: ModelSpec, num_threads: int | None = None) -> LogitsFn:
    """An onnxruntime CPU session as a logits function (any batch size)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ServeError("the onnx backend needs onnxruntime: pip install -r requirements-serve.txt") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise on a device
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        raise ServeError(f"cannot load {path} with onnxruntime: {str(e).splitlines()[0]}") from None
    inputs, output = _names(entry, spec, path)
    found_inputs = {i.name: i for i in session.get_inputs()}
    found_outputs = {o.name: o for o in session.get_outputs()}
    _check_names(path, "input", inputs, list(found_inputs))
    _check_names(path, "output", {"logits": output}, list(found_outputs))
    _check_tensor(path, "image", found_inputs[inputs["image"]].shape, spec.shape)
    _check_tensor(path, "logits", found_outputs[output].shape, spec.shape + (spec.levels,))

    def logits_fn(images, labels):
        return session.run([output], _feed(inputs, images, labels))[0]

    return logits_fn


def tflite_logits_fn(path: str, entry: dict, spec: ModelSpec, num_threads: int | None = None) -> LogitsFn:
    """A LiteRT interpreter as a logits function; it re-allocates only when the batch size changes."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ServeError("the tflite backend needs ai-edge-litert: pip install ai-edge-litert numpy") from None
    try:
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    except Exception as e:  # LiteRT raises ValueError or RuntimeError for a damaged flatbuffer
        raise ServeError(f"cannot load {path} with LiteRT: {str(e).splitlines()[0]}") from None
    inputs, output = _names(entry, spec, path)
    details = {d["name"]: d for d in interpreter.get_input_details()}
    outputs = {d["name"]: d for d in interpreter.get_output_details()}
    _check_names(path, "input", inputs, list(details))
    _check_names(path, "output", {"logits": output}, list(outputs))
    _check_tensor(path, "image", list(details[inputs["image"]]["shape_signature"]), spec.shape)
    _check_tensor(path, "logits", list(outputs[output]["shape_signature"]), spec.shape + (spec.levels,))
    if details[inputs["image"]]["shape_signature"][0] != -1:
        raise ServeError(f"{path} has a fixed batch size; re-export it (the exporter keeps the batch axis dynamic)")
    output_index = outputs[output]["index"]
    allocated = [None]  # the batch size the interpreter's buffers are sized for

    def logits_fn(images, labels):
        feed = _feed(inputs, images, labels)
        batch = len(images)
        if allocated[0] != batch:
            for name, value in feed.items():
                interpreter.resize_tensor_input(details[name]["index"], value.shape)
            interpreter.allocate_tensors()
            allocated[0] = batch
        for name, value in feed.items():
            interpreter.set_tensor(details[name]["index"], value)
        interpreter.invoke()
        # get_tensor copies; the interpreter reuses its output buffer on the next invoke.
        return interpreter.get_tensor(output_index)

    return logits_fn


LOADERS = {"onnx": onnx_logits_fn, "tflite": tflite_logits_fn}

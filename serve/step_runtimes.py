"""Step functions for serve.cached from exported step models: ONNX Runtime, LiteRT or folded numpy weights (no TensorFlow)."""
from __future__ import annotations

import zipfile

import numpy as np

from serve.cached import StepFn, numpy_step_fn
from serve.metadata import METADATA_FILE, ModelSpec, ServeError, checked_path
from serve.sampling import SamplingError

LABEL = "label"
LOGITS = "logits"
# Sampler.load backend -> the metadata's step artifact. Quantized TFLite variants have none on purpose: their
# users asked for the quantized model, and the float32 step model would silently sample a different one.
STEP_ARTIFACTS = {"onnx": "onnx", "tflite": "tflite", "numpy": "numpy"}
LAYOUT_KEYS = ("num_layers", "kernel_size", "filters", "levels")


def _feeds(windows, labels, conditional: bool) -> dict:
    feeds = {f"window_{index}": np.ascontiguousarray(window, np.float32) for index, window in enumerate(windows)}
    if conditional:
        if labels is None:
            raise SamplingError("this step model is class-conditional: it needs labels")
        feeds[LABEL] = np.ascontiguousarray(labels, np.int32)
    return feeds


def _feature_names(names) -> list[str]:
    return sorted((n for n in names if n.startswith("features_")), key=lambda n: int(n.split("_")[1]))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def onnx_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported step model (.onnx) with onnxruntime (CPU); inputs window_l/label, outputs features_l/logits."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ServeError("the onnx backend needs onnxruntime: pip install -r requirements-serve.txt") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        raise ServeError(f"cannot load {path} with onnxruntime: {_first_line(e)}") from None
    conditional = any(i.name == LABEL for i in session.get_inputs())
    names = _feature_names(o.name for o in session.get_outputs()) + [LOGITS]

    def step(windows, labels):
        *features, logits = session.run(names, _feeds(windows, labels, conditional))
        return features, logits

    step.inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    step.outputs = [o.name for o in session.get_outputs()]
    return step


def tflite_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported step model (.tflite) with ai_edge_litert's signature runner (resizes to each batch size)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ServeError("the tflite backend needs ai-edge-litert: pip install ai-edge-litert numpy") from None
    try:
        interpreter = Interpreter(model_path=path, num_threads=threads)
        runner = interpreter.get_signature_runner()
        signature = next(iter(interpreter.get_signature_list().values()))
    except Exception as e:  # LiteRT raises ValueError or RuntimeError for a damaged flatbuffer
        raise ServeError(f"cannot load {path} with LiteRT: {_first_line(e)}") from None
    conditional = LABEL in signature["inputs"]
    names = _feature_names(signature["outputs"])

    def step(windows, labels):
        out = runner(**_feeds(windows, labels, conditional))
        return [out[n] for n in names], out[LOGITS]

    step.inputs = {name: list(d["shape_signature"]) for name, d in runner.get_input_details().items()}
    step.outputs = list(signature["outputs"])
    return step


def npz_step_fn(path: str, threads: int | None = None) -> StepFn:
    """The pure-numpy step function over step_params.npz (pixelcnn_tf.cached.fold_step_params, saved)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            params = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ServeError(f"cannot read {path} as numpy step parameters: {_first_line(e)}") from None
    missing = [name for name in ("kernel_0", "bias_0", "head_kernel", "head_bias") if name not in params]
    if missing:
        raise ServeError(f"{path} lacks step parameters {', '.join(missing)}")
    step = numpy_step_fn(params)
    step.num_layers = sum(1 for name in params if name.startswith("kernel_"))
    step.head_shape = tuple(params["head_kernel"].shape)
    return step


LOADERS = {"onnx": onnx_step_fn, "tflite": tflite_step_fn, "npz": npz_step_fn}


def step_artifact(meta: dict, backend: str) -> str | None:
    """The name of the export's step artifact that backend samples with, or None (gated, quantized, older export)."""
    step = meta.get("step")
    name = STEP_ARTIFACTS.get(backend)
    if not isinstance(step, dict) or name is None or name not in (step.get("artifacts") or {}):
        return None
    return name


def check_layout(layout, spec: ModelSpec, where: str) -> dict:
    if not isinstance(layout, dict) or any(not isinstance(layout.get(key), int) or layout[key] < 1 for key in LAYOUT_KEYS):
        raise ServeError(f"{where}: the step layout must give positive integers {', '.join(LAYOUT_KEYS)}, got {layout!r}")
    if layout["levels"] != spec.levels:
        raise ServeError(f"{where}: the step layout has {layout['levels']} levels, the model {spec.levels}")
    return {key: layout[key] for key in LAYOUT_KEYS}


def _check_tensors(step: StepFn, entry: dict, layout: dict, spec: ModelSpec, path: str) -> None:
    """The runtime's tensor names must be the metadata's, and each window the layout's (rows, kernel, depth)."""
    found = sorted(step.inputs), sorted(step.outputs)
    if found != (sorted(entry.get("inputs") or []), sorted(entry.get("outputs") or [])):
        raise ServeError(f"{path}: tensors {found[0]} -> {found[1]} are not the ones {METADATA_FILE} names: from another export?")
    k, rows = layout["kernel_size"], layout["kernel_size"] // 2 + 1
    wanted = {f"window_{n}": [rows, k, spec.channels if n == 0 else layout["filters"]] for n in range(layout["num_layers"])}
    if (LABEL in step.inputs) != bool(spec.num_classes) or set(step.inputs) - {LABEL} != set(wanted):
        raise ServeError(f"{path}: inputs {sorted(step.inputs)} do not fit a {layout['num_layers']}-layer model with num_classes={spec.num_classes}")
    for name, shape in wanted.items():
        if list(step.inputs[name][1:]) != shape:
            raise ServeError(f"{path}: input {name} has shape {step.inputs[name]}, the layout implies (batch, {', '.join(map(str, shape))})")


def load_step_fn(meta: dict, export_dir: str, backend: str, spec: ModelSpec, num_threads: int | None = None) -> tuple[StepFn, dict]:
    """(step_fn, layout) for backend from the export's "step" entry, each file checked against its size and sha256."""
    name = step_artifact(meta, backend)
    if name is None:
        raise ServeError(f"export {export_dir} has no step model for backend {backend!r}; use sampler='naive'")
    step = meta["step"]
    layout = check_layout(step.get("layout"), spec, f"{export_dir}/{METADATA_FILE}")
    entry = step["artifacts"][name]
    if entry.get("kind") not in LOADERS:
        raise ServeError(f"{export_dir}/{METADATA_FILE}: unknown step artifact kind {entry.get('kind')!r}")
    path = checked_path(entry, export_dir, f"step {name}")
    step_fn = LOADERS[entry["kind"]](path, num_threads)
    if entry["kind"] != "npz":
        _check_tensors(step_fn, entry, layout, spec, path)
    elif step_fn.num_layers != layout["num_layers"] or step_fn.head_shape != (layout["filters"], spec.channels * spec.levels):
        raise ServeError(f"{path}: {step_fn.num_layers} layers and a {step_fn.head_shape} head do not fit the step layout {layout}")
    return step_fn, layout

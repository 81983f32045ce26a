"""Step functions for cached sampling from exported step models: ONNX Runtime, LiteRT or folded numpy weights (no TensorFlow)."""
from __future__ import annotations

import zipfile

import numpy as np

from serve.cached import StepFn, numpy_step_fn
from serve.gated_cached import GatedStep, numpy_gated_step, step_from_runners
from serve.metadata import METADATA_FILE, ModelSpec, ServeError, checked_path
from serve.sampling import SamplingError

LABEL = "label"
LOGITS = "logits"
# Sampler.load backend -> the metadata's step artifact. Quantized TFLite variants have none on purpose: their
# users asked for the quantized model, and the float32 step model would silently sample a different one.
STEP_ARTIFACTS = {"onnx": "onnx", "tflite": "tflite", "numpy": "numpy"}
LAYOUT_KEYS = ("num_layers", "kernel_size", "filters", "levels")
ARCHITECTURES = ("pixelcnn", "gated")
GATED_PARTS = ("pixel", "row")  # a gated step artifact is two models: one per sub-pixel, one per finished row


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


def onnx_runner(path: str, threads: int | None = None):
    """run(feeds dict) -> outputs dict over an .onnx file with onnxruntime (CPU); .inputs {name: shape}, .outputs."""
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
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict) -> dict:
        return dict(zip(names, session.run(names, feeds)))

    run.inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    run.outputs = names
    return run


def tflite_runner(path: str, threads: int | None = None):
    """run(feeds dict) -> outputs dict over a .tflite file with ai_edge_litert's signature runner (any batch size)."""
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

    def run(feeds: dict) -> dict:
        return runner(**feeds)

    run.inputs = {name: list(d["shape_signature"]) for name, d in runner.get_input_details().items()}
    run.outputs = list(signature["outputs"])
    return run


def seed_step(run) -> StepFn:
    """The seed architecture's StepFn over a runner (feeds dict -> outputs dict, with .inputs and .outputs)."""
    conditional = LABEL in run.inputs
    names = _feature_names(run.outputs)

    def step(windows, labels):
        out = run(_feeds(windows, labels, conditional))
        return [out[n] for n in names], out[LOGITS]

    step.inputs, step.outputs = run.inputs, run.outputs
    return step


def onnx_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported seed step model (.onnx) with onnxruntime: inputs window_l/label, outputs features_l/logits."""
    return seed_step(onnx_runner(path, threads))


def tflite_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported seed step model (.tflite) with LiteRT (resizes to each batch size)."""
    return seed_step(tflite_runner(path, threads))


def read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ServeError(f"cannot read {path} as numpy step parameters: {_first_line(e)}") from None


def npz_step_fn(path: str, threads: int | None = None) -> StepFn:
    """The pure-numpy step function over step_params.npz (pixelcnn_tf.cached.fold_step_params, saved)."""
    params = read_npz(path)
    missing = [name for name in ("kernel_0", "bias_0", "head_kernel", "head_bias") if name not in params]
    if missing:
        raise ServeError(f"{path} lacks step parameters {', '.join(missing)}")
    step = numpy_step_fn(params)
    step.num_layers = sum(1 for name in params if name.startswith("kernel_"))
    step.head_shape = tuple(params["head_kernel"].shape)
    return step


LOADERS = {"onnx": onnx_step_fn, "tflite": tflite_step_fn, "npz": npz_step_fn}
RUNNERS = {"onnx": onnx_runner, "tflite": tflite_runner}


def step_artifact(meta: dict, backend: str) -> str | None:
    """The name of the export's step artifact that backend samples with, or None (quantized, older export)."""
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
    architecture = layout.get("architecture", "pixelcnn")  # exports before the gated step models had no key
    if architecture not in ARCHITECTURES:
        raise ServeError(f"{where}: unknown step architecture {architecture!r}; this serve knows {', '.join(ARCHITECTURES)}")
    return {key: layout[key] for key in LAYOUT_KEYS} | {"architecture": architecture}


def expected_inputs(layout: dict, spec: ModelSpec, part: str) -> dict[str, list[int]]:
    """Input name -> shape after the batch axis, for the seed's step model or the gated 'pixel' / 'row' step."""
    k, f, layers = layout["kernel_size"], layout["filters"], range(layout["num_layers"])
    r = k // 2
    if part == "step":
        return {f"window_{n}": [r + 1, k, spec.channels if n == 0 else f] for n in layers}
    if part == "pixel":
        return {f"window_{n}": [r + 1, spec.channels if n == 0 else f] for n in layers} | {f"above_{n}": [2 * f] for n in layers}
    return {f"band_{n}": [r + 1, spec.width + 2 * r, spec.channels] if n == 0 else [r, spec.width + 2 * r, f] for n in layers}


def _check_tensors(run, entry: dict, wanted: dict, spec: ModelSpec, path: str) -> None:
    """The runtime's tensor names must be the metadata's, and each input the layout's shape."""
    found = sorted(run.inputs), sorted(run.outputs)
    if found != (sorted(entry.get("inputs") or []), sorted(entry.get("outputs") or [])):
        raise ServeError(f"{path}: tensors {found[0]} -> {found[1]} are not the ones {METADATA_FILE} names: from another export?")
    if (LABEL in run.inputs) != bool(spec.num_classes) or set(run.inputs) - {LABEL} != set(wanted):
        raise ServeError(f"{path}: inputs {sorted(run.inputs)} do not fit the step layout with num_classes={spec.num_classes}")
    for name, shape in wanted.items():
        if list(run.inputs[name][1:]) != shape:
            raise ServeError(f"{path}: input {name} has shape {run.inputs[name]}, the layout implies (batch, {', '.join(map(str, shape))})")


def _gated_step(entry: dict, export_dir: str, name: str, layout: dict, spec: ModelSpec, num_threads) -> GatedStep:
    """The pixel and row step models of a gated export (or its npz), each file checked."""
    if entry["kind"] == "npz":
        path = checked_path(entry, export_dir, f"step {name}")
        params = read_npz(path)
        layers = sum(1 for key in params if key.startswith("v_kernel_"))
        head = tuple(params["head_kernel"].shape) if "head_kernel" in params else None
        if layers != layout["num_layers"] or head != (layout["filters"], spec.channels * spec.levels):
            raise ServeError(f"{path}: {layers} gated layers and a {head} head do not fit the step layout {layout}")
        return numpy_gated_step(params)
    runs = {}
    for part in GATED_PARTS:
        part_entry = (entry.get("parts") or {}).get(part)
        if not isinstance(part_entry, dict):
            raise ServeError(f"{export_dir}/{METADATA_FILE}: the gated step {name} artifact lacks its {part!r} model")
        path = checked_path(part_entry, export_dir, f"step {name} {part}")
        runs[part] = RUNNERS[entry["kind"]](path, num_threads)
        _check_tensors(runs[part], part_entry, expected_inputs(layout, spec, part), spec, path)
    return step_from_runners(runs["pixel"], runs["row"], num_layers=layout["num_layers"], conditional=bool(spec.num_classes))


def load_step_fn(meta: dict, export_dir: str, backend: str, spec: ModelSpec, num_threads: int | None = None):
    """(step, layout) for backend from the export's "step" entry, each file checked against its size and sha256.

    step is a StepFn for the seed architecture and a serve.gated_cached.GatedStep for the gated one.
    """
    name = step_artifact(meta, backend)
    if name is None:
        raise ServeError(f"export {export_dir} has no step model for backend {backend!r}; use sampler='naive'")
    step = meta["step"]
    layout = check_layout(step.get("layout"), spec, f"{export_dir}/{METADATA_FILE}")
    entry = step["artifacts"][name]
    if entry.get("kind") not in LOADERS:
        raise ServeError(f"{export_dir}/{METADATA_FILE}: unknown step artifact kind {entry.get('kind')!r}")
    if layout["architecture"] == "gated":
        return _gated_step(entry, export_dir, name, layout, spec, num_threads), layout
    path = checked_path(entry, export_dir, f"step {name}")
    step_fn = LOADERS[entry["kind"]](path, num_threads)
    if entry["kind"] != "npz":
        _check_tensors(step_fn, entry, expected_inputs(layout, spec, "step"), spec, path)
    elif step_fn.num_layers != layout["num_layers"] or step_fn.head_shape != (layout["filters"], spec.channels * spec.levels):
        raise ServeError(f"{path}: {step_fn.num_layers} layers and a {step_fn.head_shape} head do not fit the step layout {layout}")
    return step_fn, layout

"""One runtime layer: ONNX Runtime sessions and LiteRT interpreters as named-tensor runners, for full and step models."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from serve.metadata import ServeError
from serve.names import LABEL
from serve.sampling import SamplingError

# Threading, chosen by measurement (bench/threads.py, docs/benchmarks.md): a model that does a lot per call (a full
# model, a whole-row step) gets one intra-op thread per core; a per-sub-pixel step gets 1 (serve/cached.py's table
# says which part is which), because waking workers costs more than its few small matmuls and, on shared cores,
# made it up to 2x slower. Idle workers never spin: spinning bought at most ~10% and often cost time, at up to 2x CPU.
ALL_CORES = 0


@dataclass(frozen=True)
class Runner:
    """A loaded model: runner({input name: array}) -> {output name: array}, any batch size."""

    call: Callable[[dict], dict]
    inputs: dict  # name -> shape, batch axis first (None, -1 or a string: dynamic)
    outputs: dict  # name -> shape, likewise

    def __call__(self, feeds: dict) -> dict:
        return self.call(feeds)


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def onnx_runner(path: str, threads: int = ALL_CORES, spinning: bool = False) -> Runner:
    """An onnxruntime CPU session. threads: intra-op threads (0: one per core); spinning: let idle workers
    busy-wait between calls (onnxruntime's default; off here, see above)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ServeError("the onnx backend needs onnxruntime: pip install -r requirements-serve.txt") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise on a device
    options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        raise ServeError(f"cannot load {path} with onnxruntime: {first_line(e)}") from None
    names = [o.name for o in session.get_outputs()]

    def call(feeds: dict) -> dict:
        return dict(zip(names, session.run(names, feeds)))

    return Runner(call, {i.name: list(i.shape) for i in session.get_inputs()}, {o.name: list(o.shape) for o in session.get_outputs()})


def tflite_runner(path: str, threads: int = ALL_CORES) -> Runner:
    """A LiteRT interpreter's signature runner (it resizes to each batch size). threads: 0: one per core."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ServeError("the tflite backend needs ai-edge-litert: pip install ai-edge-litert numpy") from None
    try:
        interpreter = Interpreter(model_path=path, num_threads=int(threads) or os.cpu_count() or 1)
        runner = interpreter.get_signature_runner()
    except Exception as e:  # LiteRT raises ValueError or RuntimeError for a damaged flatbuffer
        raise ServeError(f"cannot load {path} with LiteRT: {first_line(e)}") from None
    shapes = lambda details: {name: list(d["shape_signature"]) for name, d in details.items()}  # noqa: E731
    return Runner(lambda feeds: runner(**feeds), shapes(runner.get_input_details()), shapes(runner.get_output_details()))


def feeds(arrays: dict, labels, conditional: bool, label_name: str = LABEL) -> dict:
    """Named float32 inputs, plus the int32 label exactly when the model is class-conditional."""
    named = {name: np.ascontiguousarray(value, np.float32) for name, value in arrays.items()}
    if conditional:
        if labels is None:
            raise SamplingError("this model is class-conditional: it needs labels")
        named[label_name] = np.ascontiguousarray(labels, np.int32)
    return named


def _dynamic(size) -> bool:
    return not isinstance(size, (int, np.integer)) or size < 0


def check_io(runner: Runner, where: str, inputs: dict, outputs: dict) -> None:
    """The runner's tensors must be exactly these names, each of this shape after the batch axis (None: any)."""
    for role, wanted, found in (("inputs", inputs, runner.inputs), ("outputs", outputs, runner.outputs)):
        if sorted(found) != sorted(wanted):
            raise ServeError(f"{where}: {role} {sorted(found)} are not the {sorted(wanted)} the metadata implies: from another export?")
        for name, shape in wanted.items():
            have = found[name]
            if shape is None:
                continue
            if len(have) != len(shape) + 1 or not _dynamic(have[0]) or any(
                not _dynamic(h) and h != w for h, w in zip(have[1:], shape)
            ):
                raise ServeError(f"{where}: {name} has shape {list(have)}, the metadata implies (batch, {', '.join(map(str, shape))}): "
                                 "the metadata belongs to another model")

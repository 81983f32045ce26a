"""Step functions for serve.cached from exported step models: ONNX Runtime and LiteRT (no TensorFlow)."""
from __future__ import annotations

import numpy as np

from serve.cached import StepFn
from serve.sampling import SamplingError

LABEL = "label"
LOGITS = "logits"


def _feeds(windows, labels, conditional: bool) -> dict:
    feeds = {f"window_{index}": np.ascontiguousarray(window, np.float32) for index, window in enumerate(windows)}
    if conditional:
        if labels is None:
            raise SamplingError("this step model is class-conditional: it needs labels")
        feeds[LABEL] = np.ascontiguousarray(labels, np.int32)
    return feeds


def _feature_names(names) -> list[str]:
    return sorted((n for n in names if n.startswith("features_")), key=lambda n: int(n.split("_")[1]))


def onnx_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported step.onnx with onnxruntime (CPU); inputs window_l/label, outputs features_l/logits."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    conditional = any(i.name == LABEL for i in session.get_inputs())
    names = _feature_names(o.name for o in session.get_outputs()) + [LOGITS]

    def step(windows, labels):
        *features, logits = session.run(names, _feeds(windows, labels, conditional))
        return features, logits

    return step


def tflite_step_fn(path: str, threads: int | None = None) -> StepFn:
    """Run an exported step.tflite with ai_edge_litert's signature runner (resizes to each batch size)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner()
    signature = next(iter(interpreter.get_signature_list().values()))
    conditional = LABEL in signature["inputs"]
    names = _feature_names(signature["outputs"])

    def step(windows, labels):
        out = runner(**_feeds(windows, labels, conditional))
        return [out[n] for n in names], out[LOGITS]

    return step

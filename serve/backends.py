"""The one backend table: every name export, serve, bench, generate.py and evaluate know, with its files and runtime."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Importable without numpy (generate.py's flag check lists these names before anything heavy loads); the runner
# factories live in serve/runtime.py and are imported on first use.


@dataclass(frozen=True)
class Backend:
    """One backend: what --backend NAME and Sampler.load(backend=NAME) run, and what an export writes for it."""

    name: str
    kind: str  # metadata.json's "kind" of its files: the file format (onnx, tflite, npz, saved_model)
    runtime: str  # the library that runs it, as metadata.json records it
    suffix: str  # its files' suffix: model.onnx, step/step.onnx, sampler.onnx ('': a folder)
    artifact: str | None  # metadata.json's "artifacts" key of its full model (None: none in an export)
    step: bool  # has step models: cached sampling (an export's step/<part><suffix>, or Keras's own)
    graph: bool  # has the sampler graph (sampler<suffix>, or TensorFlow's own for a checkpoint)
    tensorflow: bool  # runs in TensorFlow: generate.py and evaluate offer it, serve never loads it
    quantization: str | None = None  # a quantized TFLite variant (written with --tflite-quantize)
    # Export parity: max |Δlogit| vs Keras. SavedModel runs the same TF kernels as Keras, ONNX and numpy the same
    # float32 math in another library: all agree to rounding (~1e-6 on logits of size ~10), so 1e-4 catches any real
    # graph difference. TFLite fuses BatchNorm into the conv and runs XNNPACK's reordered sums: 1e-3. Quantized
    # variants change logits by design (0.01-1): their NLL change is reported instead (None).
    tolerance: float | None = None
    # The sampler graph's cache writes: TFLite has a builtin DYNAMIC_UPDATE_SLICE (XLA's op in TensorFlow);
    # tf2onnx maps no dynamic-update op, so ONNX's graph is converted from the same graph with ScatterND writes.
    graph_update: str | None = None
    factory: str | None = None  # the serve.runtime function that opens its files (None: serve runs no runtime for it)

    @property
    def runner(self) -> Callable | None:
        """The runner factory (path, threads) -> serve.runtime.Runner for this backend's files, or None."""
        from serve import runtime

        return getattr(runtime, self.factory) if self.factory else None

    def file(self, stem: str) -> str:
        """Its file of an export for stem (model, sampler, a step part): model.onnx, model_int8.tflite, ..."""
        return f"{stem}_{self.quantization}{self.suffix}" if self.quantization else f"{stem}{self.suffix}"


_ROWS = (
    Backend("keras", "keras", "tensorflow", ".keras", None, step=True, graph=True, tensorflow=True),
    Backend("savedmodel", "saved_model", "tensorflow", "", "saved_model", step=False, graph=False, tensorflow=True,
            tolerance=1e-4),
    Backend("onnx", "onnx", "onnxruntime", ".onnx", "onnx", step=True, graph=True, tensorflow=False, tolerance=1e-4,
            graph_update="scatter_nd", factory="onnx_runner"),
    Backend("tflite", "tflite", "litert", ".tflite", "tflite", step=True, graph=True, tensorflow=False, tolerance=1e-3,
            graph_update="dynamic_update_slice", factory="tflite_runner"),
    *(Backend(f"tflite_{q}", "tflite", "litert", ".tflite", f"tflite_{q}", step=False, graph=False, tensorflow=False,
              quantization=q, factory="tflite_runner") for q in ("float16", "dynamic", "int8")),
    Backend("numpy", "npz", "numpy", ".npz", None, step=True, graph=False, tensorflow=False, tolerance=1e-4),
)
BACKENDS: dict[str, Backend] = {row.name: row for row in _ROWS}
NAMES = tuple(BACKENDS)
CHECKPOINT = "keras"  # the one backend of a training run (its model.keras); the others run an export's files
EXPORT_DEFAULT = "onnx"  # an export's default (generate.py, evaluate, Sampler.load)
TENSORFLOW = tuple(name for name, row in BACKENDS.items() if row.tensorflow)  # generate.py/evaluate only
SERVED = tuple(name for name, row in BACKENDS.items() if not row.tensorflow)  # serve.Sampler.load
FULL = tuple(name for name, row in BACKENDS.items() if row.artifact or row.tensorflow)  # full model: naive, nll()
QUANTIZATIONS = tuple(row.quantization for row in _ROWS if row.quantization)  # export --tflite-quantize
# What an export writes per kind: the full model of each artifact row, step models and the sampler graph.
STEP_EXPORTS = tuple(name for name in SERVED if BACKENDS[name].step)  # step/: onnx, tflite, numpy
GRAPH_EXPORTS = tuple(name for name in SERVED if BACKENDS[name].graph)  # sampler.onnx, sampler.tflite
ARTIFACTS: dict[str, Backend] = {row.artifact: row for row in _ROWS if row.artifact}  # artifacts key -> row
# metadata.json's "kind" -> its unquantized backend (the row whose runtime, runner and tolerance a file of that kind has)
KINDS: dict[str, Backend] = {row.kind: row for row in _ROWS if not row.quantization}


"""Load an export's step models (metadata.json "step": a layout and artifacts of named parts) for cached sampling."""
from __future__ import annotations

import zipfile

import numpy as np

from serve.architectures import ARCHITECTURES
from serve.cached import LAYOUT_KEYS
from serve.metadata import METADATA_FILE, ModelSpec, ServeError, checked_path
from serve.names import LABEL
from serve.runtime import RUNTIMES, check_io, first_line

# Backends with a step artifact. Quantized TFLite variants have none on purpose: their users asked for the
# quantized model, and the float32 step model would silently sample a different one.
STEP_BACKENDS = ("onnx", "tflite", "numpy")
NUMPY_KIND = "npz"  # the numpy artifact: the folded weights, one part
NUMPY_PART = "params"


def step_artifact(meta: dict, backend: str) -> dict | None:
    """The export's step artifact entry that backend samples with, or None (quantized, no step model)."""
    step = meta.get("step")
    if backend not in STEP_BACKENDS or not isinstance(step, dict):
        return None
    return (step.get("artifacts") or {}).get(backend)


def check_layout(layout, spec: ModelSpec, where: str) -> dict:
    if not isinstance(layout, dict) or any(not isinstance(layout.get(key), int) or layout[key] < 1 for key in LAYOUT_KEYS):
        raise ServeError(f"{where}: the step layout must give positive integers {', '.join(LAYOUT_KEYS)}, got {layout!r}")
    if layout["levels"] != spec.levels:
        raise ServeError(f"{where}: the step layout has {layout['levels']} levels, the model {spec.levels}")
    if layout.get("architecture") not in ARCHITECTURES:
        raise ServeError(f"{where}: unknown step architecture {layout.get('architecture')!r}; this serve knows {', '.join(ARCHITECTURES)}")
    return {key: layout[key] for key in LAYOUT_KEYS + ("architecture",)}


def read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ServeError(f"cannot read {path} as numpy step parameters: {first_line(e)}") from None


def _parts(entry: dict, names, where: str) -> dict:
    parts = entry.get("parts")
    if not isinstance(parts, dict) or sorted(parts) != sorted(names) or not all(isinstance(p, dict) for p in parts.values()):
        found = sorted(parts) if isinstance(parts, dict) else parts
        raise ServeError(f"{where}: the step artifact must name the parts {', '.join(names)}, it names {found!r}")
    return parts


def load_step(meta: dict, export_dir: str, backend: str, spec: ModelSpec, threads: int | None = None):
    """(step, layout) for backend from the export's "step" entry, each file checked against its size and sha256."""
    entry = step_artifact(meta, backend)
    if entry is None:
        raise ServeError(f"export {export_dir} has no step model for backend {backend!r}; use sampler='naive'")
    where = f"{export_dir}/{METADATA_FILE}"
    layout = check_layout(meta["step"].get("layout"), spec, where)
    architecture = ARCHITECTURES[layout["architecture"]]
    kind = entry.get("kind")
    if kind == NUMPY_KIND:
        path = checked_path(_parts(entry, [NUMPY_PART], where)[NUMPY_PART], export_dir, f"step {backend}")
        params = read_npz(path)
        head = tuple(params["head_kernel"].shape) if "head_kernel" in params else None
        if architecture.param_layers(params) != layout["num_layers"] or head != (layout["filters"], spec.distribution.features):
            raise ServeError(f"{path}: {architecture.param_layers(params)} layers and a {head} head do not fit the step layout {layout}")
        return architecture.numpy_step(params), layout
    if kind not in RUNTIMES:
        raise ServeError(f"{where}: unknown step artifact kind {kind!r}")
    parts = _parts(entry, architecture.parts, where)
    inputs, outputs = architecture.part_inputs(layout, spec), architecture.part_outputs(layout["num_layers"])
    label = {LABEL: []} if spec.num_classes else {}
    runners = {}
    for part, part_entry in parts.items():
        path = checked_path(part_entry, export_dir, f"step {backend} {part}")
        runners[part] = RUNTIMES[kind](path, architecture.threads[part] if threads is None else threads)
        if sorted(runners[part].inputs) != sorted(part_entry.get("inputs") or []):
            raise ServeError(f"{path}: inputs {sorted(runners[part].inputs)} are not the ones {METADATA_FILE} names: from another export?")
        check_io(runners[part], path, inputs[part] | label, dict.fromkeys(outputs[part]))
    return architecture.from_runners(runners, layout["num_layers"], bool(spec.num_classes)), layout

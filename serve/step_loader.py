"""Load an export's step models (the manifest's "step": a layout and artifacts of named parts) for cached sampling."""
from __future__ import annotations

import zipfile

import numpy as np

from serve.architectures import ARCHITECTURES
from serve.backends import BACKENDS, KINDS
from serve.manifest import Manifest, StepArtifact
from serve.metadata import METADATA_FILE, ModelSpec, ServeError, checked_path
from serve.names import LABEL
from serve.runtime import check_io, first_line

NUMPY_PART = "params"  # the numpy step artifact's one part: the folded weights (step/step_params.npz)


def step_artifact(manifest: Manifest, backend: str) -> StepArtifact | None:
    """The export's step artifact that backend samples with, or None. Quantized TFLite variants have no step model on
    purpose (serve.backends): their users asked for the quantized model, and the float32 step would sample another."""
    return manifest.step_artifact(backend) if backend in BACKENDS and BACKENDS[backend].step else None


def read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ServeError(f"cannot read {path} as numpy step parameters: {first_line(e)}") from None


def _parts(entry: StepArtifact, names, where: str) -> dict:
    if sorted(entry.parts) != sorted(names):
        raise ServeError(f"{where}: the step artifact must name the parts {', '.join(names)}, it names {sorted(entry.parts)!r}")
    return entry.parts


def load_step(manifest: Manifest, export_dir: str, backend: str, spec: ModelSpec, threads: int | None = None):
    """(step, layout dict) for backend from the export's "step" entry, each file checked against its size and sha256."""
    entry = step_artifact(manifest, backend)
    if entry is None:
        raise ServeError(f"export {export_dir} has no step model for backend {backend!r}; use sampler='naive'")
    where = f"{export_dir}/{METADATA_FILE}"
    layout = manifest.step.layout.as_dict()
    architecture = ARCHITECTURES[layout["architecture"]]
    runner = KINDS[entry.kind].runner
    if runner is None:  # the numpy backend: folded weights, no runtime
        path = checked_path(_parts(entry, [NUMPY_PART], where)[NUMPY_PART], export_dir, f"step {backend}")
        params = read_npz(path)
        head = tuple(params["head_kernel"].shape) if "head_kernel" in params else None
        if architecture.param_layers(params) != layout["num_layers"] or head != (layout["filters"], spec.distribution.features):
            raise ServeError(f"{path}: {architecture.param_layers(params)} layers and a {head} head do not fit the step layout {layout}")
        return architecture.numpy_step(params), layout
    parts = _parts(entry, architecture.parts, where)
    inputs, outputs = architecture.part_inputs(layout, spec), architecture.part_outputs(layout["num_layers"])
    label = {LABEL: []} if spec.num_classes else {}
    runners = {}
    for part, part_entry in parts.items():
        path = checked_path(part_entry, export_dir, f"step {backend} {part}")
        runners[part] = runner(path, architecture.threads[part] if threads is None else threads)
        if sorted(runners[part].inputs) != sorted(part_entry.inputs or []):
            raise ServeError(f"{path}: inputs {sorted(runners[part].inputs)} are not the ones {METADATA_FILE} names: from another export?")
        check_io(runners[part], path, inputs[part] | label, dict.fromkeys(outputs[part]))
    return architecture.from_runners(runners, layout["num_layers"], bool(spec.num_classes)), layout

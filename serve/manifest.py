"""metadata.json as one typed Manifest: its schema and version, written once (write_manifest), read and checked once."""
from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from serve.backends import ARTIFACTS, BACKENDS, KINDS
from serve.metadata import METADATA_FILE, ModelSpec, ServeError
from serve.names import ARCHITECTURE_NAMES

FORMAT = "pixelcnn-tf-export"
FORMAT_VERSION = 2  # 2: step models as named parts, TFLite signature tensor names, run-relative source
REEXPORT = "python -m export --checkpoint RUN --out DIR"
KEEP_NULL = {"null": True}  # a field written as null when None (others are left out when None)


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """A file of the export, relative to its folder; bytes and sha256 let serve refuse a damaged or swapped one."""

    path: str
    bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class Artifact(FileEntry):
    """A full model: image (and label) in, logits out; inputs/outputs map roles (image, label, logits) to tensor names."""

    kind: str  # serve.backends row kind: onnx, tflite, saved_model
    runtime: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    opset: int | None = None
    quantization: str | None = None
    signature: str | None = None
    signatures: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class StepPart(FileEntry):
    """One step-model file (a part such as step, pixel, row) or the numpy weights (arrays: their names)."""

    inputs: list[str] | None = None
    outputs: list[str] | None = None
    arrays: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class StepArtifact:
    kind: str  # onnx, tflite or npz
    runtime: str
    parts: dict[str, StepPart]
    opset: int | None = None
    quantization: str | None = None
    signature: str | None = None


@dataclass(frozen=True, kw_only=True)
class StepLayout:
    """The step models' cache layout (serve.cached's keyword arguments)."""

    architecture: str
    num_layers: int
    kernel_size: int
    filters: int
    levels: int

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class Step:
    """Cached sampling's one-position models (export/step.py), per backend name."""

    layout: StepLayout
    artifacts: dict[str, StepArtifact]


@dataclass(frozen=True, kw_only=True)
class GraphFile(FileEntry):
    kind: str
    runtime: str
    opset: int | None = None


@dataclass(frozen=True, kw_only=True)
class SamplerGraph:
    """The sampler graph's contract (tensor name -> description) and its files per backend name."""

    inputs: dict[str, str]
    output: dict[str, str]
    signature: str
    artifacts: dict[str, GraphFile]


@dataclass(frozen=True, kw_only=True)
class Source:
    """Provenance: the run's folder name (not a path of the training machine) and its model file's digest."""

    run: str
    model_file: str
    model_sha256: str
    weights: str | None = None  # "raw": the run's raw weights, not the averaged ones its model file holds (--ema-decay)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """An export's metadata.json. The descriptions (channel_order ... output) are for people; code reads the rest."""

    height: int
    width: int
    channels: int
    levels: int
    num_classes: int
    artifacts: dict[str, Artifact]
    # The output distribution (serve/distributions/) the "logits" head parameterises; absent: softmax (exports made
    # before distributions were plug-ins).
    distribution: str | None = None
    mixtures: int | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    class_names: list[str] | None = None  # label id -> the dataset's class name (exports before: ids only)
    source: Source | None = None
    pixelcnn_tf_version: str | None = None
    channel_order: str | None = None
    sampling_order: str | None = None
    input_scaling: str | None = None
    output: str | None = None
    label_input: str | None = field(default=None, metadata=KEEP_NULL)
    step: Step | None = field(default=None, metadata=KEEP_NULL)  # null: the architecture/kernel has no step model
    sampler_graph: SamplerGraph | None = field(default=None, metadata=KEEP_NULL)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def describe(cls, model_config: dict, **rest) -> "Manifest":
        """A new manifest for model_config (a ModelConfig as a dict), with its descriptions for people filled in."""
        h, w, c, levels, classes = (model_config[key] for key in ("height", "width", "channels", "levels", "num_classes"))
        output, mixtures = model_config.get("output", "softmax"), model_config.get("mixtures")
        head = (f"float32 logits (batch, {h}, {w}, {c}, {levels}); softmax over the last axis" if output == "softmax" else
                f"float32 head (batch, {h}, {w}, F): the {output} parameters of each pixel (docs/distributions.md)")
        return cls(
            height=h, width=w, channels=c, levels=levels, num_classes=classes, model_config=model_config,
            distribution=output, mixtures=mixtures,
            channel_order="RGB" if c == 3 else "L",
            sampling_order="raster (rows top to bottom, columns left to right), then channels R -> G -> B",
            input_scaling=f"image: float32 (batch, {h}, {w}, {c}) of level indices 0..{levels - 1}; "
            "the graph rescales them to [-1, 1] itself",
            label_input=f"int32 (batch,) class id in 0..{classes - 1}" if classes else None,
            output=head, **rest)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.height, self.width, self.channels, self.levels, self.num_classes,
                         self.distribution or "softmax", self.mixtures)

    def step_artifact(self, name: str) -> StepArtifact | None:
        return self.step.artifacts.get(name) if self.step else None

    def graph_file(self, name: str) -> GraphFile | None:
        return self.sampler_graph.artifacts.get(name) if self.sampler_graph else None

    def to_dict(self) -> dict:
        return _dump(self)


def _dump(value):
    if is_dataclass(value):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)
                if getattr(value, f.name) is not None or f.metadata.get("null")}
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    return value


def _kind(value) -> str:
    return type(value).__name__ if value is not None else "null"


def _build(cls, value, where: str):
    """A dataclass from parsed JSON, every field's type checked; the first problem is one ServeError line."""
    if not isinstance(value, dict):
        raise ServeError(f"{where} must be an object, got {_kind(value)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ServeError(f"{where} lacks {f.name}")
    return cls(**kwargs)


def _convert(tp, value, where: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [arg for arg in args if arg is not type(None)]
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if is_dataclass(tp):
        return _build(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ServeError(f"{where} must be an object, got {_kind(value)}")
        return {key: _convert(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ServeError(f"{where} must be a list, got {_kind(value)}")
        return [_convert(args[0], item, f"{where}[{n}]") for n, item in enumerate(value)]
    if tp is Any:
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ServeError(f"{where} must be {'an integer' if tp is int else 'a string'}, got {value!r}")
    return value


def from_dict(meta, where: str = METADATA_FILE) -> Manifest:
    """The Manifest of parsed metadata.json, checked: format and version first, then every type, then the model."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ServeError(f"{where} is not pixelcnn-tf export metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ServeError(f"{where} has format_version {meta.get('format_version')!r}; this serve reads {FORMAT_VERSION}: "
                         f"re-export the checkpoint with `{REEXPORT}`")
    manifest = _build(Manifest, meta, where)
    spec = manifest.spec
    if min(spec.height, spec.width) < 1 or spec.channels not in (1, 3) or not 2 <= spec.levels <= 256 or spec.num_classes < 0:
        raise ServeError(f"{where} describes an impossible model: {spec}")
    names = manifest.class_names
    if names is not None and (len(names) != spec.num_classes or not all(isinstance(n, str) and n for n in names)):
        raise ServeError(f"{where}: class_names must be {spec.num_classes} non-empty strings, got {names!r:.200}")
    from serve.distributions import DistributionError  # numpy: only once a manifest is really read

    try:
        spec.distribution
    except DistributionError as e:
        raise ServeError(f"{where}: {e}") from None
    if not manifest.artifacts:
        raise ServeError(f"{where} lists no artifacts")
    # Every file's kind is one serve.backends knows, and the kind of the backend its key names.
    entries = [("artifacts", name, entry, ARTIFACTS.get(name)) for name, entry in manifest.artifacts.items()]
    for key, section in (("step.artifacts", manifest.step), ("sampler_graph.artifacts", manifest.sampler_graph)):
        entries += [(key, name, entry, BACKENDS.get(name)) for name, entry in (section.artifacts if section else {}).items()]
    for key, name, entry, row in entries:
        if entry.kind not in KINDS or (row and row.kind != entry.kind):
            expected = row.kind if row else " or ".join(KINDS)
            raise ServeError(f"{where}: {key}.{name} has kind {entry.kind!r}, not {expected}")
    if manifest.step:
        layout = manifest.step.layout
        if min(layout.num_layers, layout.kernel_size, layout.filters, layout.levels) < 1:
            raise ServeError(f"{where}: the step layout must give positive integers, got {layout.as_dict()}")
        if layout.levels != spec.levels:
            raise ServeError(f"{where}: the step layout has {layout.levels} levels, the model {spec.levels}")
        if layout.architecture not in ARCHITECTURE_NAMES:
            raise ServeError(f"{where}: unknown step architecture {layout.architecture!r}; this serve knows {', '.join(ARCHITECTURE_NAMES)}")
    return manifest


def read_manifest(export_dir: str) -> Manifest:
    """Parse and check export_dir/metadata.json (the files it lists are checked when loaded: checked_path)."""
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.isdir(export_dir):
        raise ServeError(f"export directory {export_dir} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ServeError(f"no {METADATA_FILE} in {export_dir}: not an export directory (make one with `python -m export`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServeError(f"cannot read {path}: {e}") from None
    return from_dict(meta, path)


def write_manifest(directory: str, manifest: Manifest, write_text=None) -> str:
    """The one writer of metadata.json: sorted keys, checked by the reader first, synced and renamed into place.

    write_text(path, text): the exporter's own atomic writer (pixelcnn_tf.files, with its disk-full handling and
    fault points) instead of the one here."""
    from_dict(manifest.to_dict(), "the manifest being written")  # what serve will refuse is never written
    path = os.path.join(directory, METADATA_FILE)
    if write_text is not None:
        write_text(path, json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
        return path
    tmp = os.path.join(directory, f".{METADATA_FILE}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return path

"""The export directory's metadata.json: its layout, and the checks that it describes the files beside it."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

METADATA_FILE = "metadata.json"
FORMAT = "pixelcnn-tf-export"
FORMAT_VERSION = 2  # 2: step models as named parts, TFLite signature tensor names, run-relative source
# Artifact kind -> the runtime that executes it; serve runs the first two, the TensorFlow side the last.
RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert", "saved_model": "tensorflow", "npz": "numpy"}


class ServeError(ValueError):
    """An export directory that cannot be served as asked: missing, damaged, or of another model."""


@dataclass(frozen=True)
class ModelSpec:
    """What a sampler must know of a model: the image grid, the levels, the class count and the output distribution."""

    height: int
    width: int
    channels: int
    levels: int
    num_classes: int = 0
    output: str = "softmax"
    mixtures: int | None = None

    @property
    def distribution(self):
        """The output distribution (serve.distributions.Distribution) over this model's channels and levels."""
        from serve.distributions import build  # numpy: flag checks that import serve.names never need it

        return build(self.output, channels=self.channels, levels=self.levels, mixtures=self.mixtures)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def dims(self) -> int:
        """Sub-pixels per image: one naive sampling step each."""
        return self.height * self.width * self.channels


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_export_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, METADATA_FILE))


def read_metadata(export_dir: str) -> dict:
    """Parse and sanity-check metadata.json; every problem is one ServeError line."""
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.isdir(export_dir):
        raise ServeError(f"export directory {export_dir} does not exist")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ServeError(f"no {METADATA_FILE} in {export_dir}: not an export directory (make one with `python -m export`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServeError(f"cannot read {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ServeError(f"{path} is not pixelcnn-tf export metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ServeError(f"{path} has format_version {meta.get('format_version')!r}; this serve reads {FORMAT_VERSION}: "
                         "re-export the checkpoint with `python -m export`")
    spec_of(meta, path)
    if not isinstance(meta.get("artifacts"), dict) or not meta["artifacts"]:
        raise ServeError(f"{path} lists no artifacts")
    return meta


def spec_of(meta: dict, where: str = METADATA_FILE) -> ModelSpec:
    try:
        spec = ModelSpec(*(int(meta[key]) for key in ("height", "width", "channels", "levels", "num_classes")))
    except (KeyError, TypeError, ValueError) as e:
        raise ServeError(f"{where} lacks a valid image description ({e})") from None
    if min(spec.height, spec.width) < 1 or spec.channels not in (1, 3) or not 2 <= spec.levels <= 256 or spec.num_classes < 0:
        raise ServeError(f"{where} describes an impossible model: {spec}")
    # Exports before output distributions were plug-ins are softmax ones and say nothing of it.
    spec = ModelSpec(*spec.shape, spec.levels, spec.num_classes, meta.get("distribution", "softmax"), meta.get("mixtures"))
    from serve.distributions import DistributionError

    try:
        spec.distribution
    except DistributionError as e:
        raise ServeError(f"{where}: {e}") from None
    return spec


def artifact(meta: dict, export_dir: str, name: str) -> tuple[dict, str]:
    """(entry, path) of a named artifact, checked to exist with the recorded size and sha256."""
    entries = meta["artifacts"]
    if name not in entries:
        raise ServeError(f"export {export_dir} has no {name!r} artifact; it has {', '.join(sorted(entries))}")
    return entries[name], checked_path(entries[name], export_dir, name)


def checked_path(entry: dict, export_dir: str, name: str) -> str:
    """The path of a metadata file entry, checked to exist with the recorded size and sha256."""
    path = os.path.join(export_dir, entry.get("path", ""))
    if not entry.get("path") or not os.path.exists(path):
        raise ServeError(f"export {export_dir} is missing {entry.get('path') or name} (listed in {METADATA_FILE})")
    if os.path.isfile(path):
        # Size first: cheap, and catches truncation; the digest catches a same-size swap or damage.
        if "bytes" in entry and os.path.getsize(path) != entry["bytes"]:
            raise ServeError(f"{path} has {os.path.getsize(path)} bytes, {METADATA_FILE} says {entry['bytes']}: damaged or from another export")
        if "sha256" in entry and file_sha256(path) != entry["sha256"]:
            raise ServeError(f"{path} does not match the sha256 in {METADATA_FILE}: damaged or from another export")
    return path

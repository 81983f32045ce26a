"""What serve knows of a model (ModelSpec), its error type, and the check that a file of an export is the one listed."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

METADATA_FILE = "metadata.json"  # its schema: serve/manifest.py


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


def checked_path(entry, export_dir: str, name: str) -> str:
    """The path of a manifest file entry (serve.manifest.FileEntry), checked to exist with the recorded size and sha256."""
    path = os.path.join(export_dir, entry.path)
    if not entry.path or not os.path.exists(path):
        raise ServeError(f"export {export_dir} is missing {entry.path or name} (listed in {METADATA_FILE})")
    if os.path.isfile(path):
        # Size first: cheap, and catches truncation; the digest catches a same-size swap or damage.
        if entry.bytes is not None and os.path.getsize(path) != entry.bytes:
            raise ServeError(f"{path} has {os.path.getsize(path)} bytes, {METADATA_FILE} says {entry.bytes}: damaged or from another export")
        if entry.sha256 is not None and file_sha256(path) != entry.sha256:
            raise ServeError(f"{path} does not match the sha256 in {METADATA_FILE}: damaged or from another export")
    return path

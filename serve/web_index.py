"""The page's model picker index: which exports `python -m serve.web` serves, each described from its manifest."""
from __future__ import annotations

import os

from serve.manifest import read_manifest
from serve.metadata import ServeError, checked_path, is_export_dir

PAGE_BACKEND = "onnx"  # onnxruntime-web runs the export's sampler.onnx
INDEX_FILE = "index.json"  # served at /exports/index.json; entries' urls are relative to it


def find_exports(paths: list[str]) -> list[str]:
    """Export folders: each path that is one, and the export sub-folders (sorted) of a path that holds exports."""
    found, seen = [], set()
    for path in paths:
        if not os.path.isdir(path):
            raise ServeError(f"export directory {path} does not exist")
        inside = [path] if is_export_dir(path) else sorted(
            os.path.join(path, name) for name in os.listdir(path) if is_export_dir(os.path.join(path, name)))
        if not inside:
            raise ServeError(f"no metadata.json in {path} nor in any folder inside it: not an export directory (make one with `python -m export`)")
        for folder in inside:  # the same export named twice is listed once
            if os.path.realpath(folder) not in seen:
                seen.add(os.path.realpath(folder))
                found.append(folder)
    return found


def check_page_export(export_dir: str):
    """The manifest of an export the page can run (it has a sampler.onnx of the listed size and digest); else ServeError."""
    manifest = read_manifest(export_dir)
    entry = manifest.graph_file(PAGE_BACKEND)
    if entry is None:
        raise ServeError(f"export {export_dir} has no sampler graph (sampler.onnx), which the page runs; re-export it with `python -m export`")
    checked_path(entry, export_dir, "sampler graph onnx")  # the page checks it too, but only after the download
    return manifest


def describe(name: str, export_dir: str) -> dict:
    """One picker entry: what a visitor chooses a model by, read through serve.manifest."""
    m = check_page_export(export_dir)
    return {"name": name, "url": f"{name}/", "height": m.height, "width": m.width, "channels": m.channels,
            "levels": m.levels, "num_classes": m.num_classes, "distribution": m.distribution or "softmax",
            "mixtures": m.mixtures, "architecture": m.model_config.get("architecture"), "dataset": m.dataset,
            "sampler_bytes": m.graph_file(PAGE_BACKEND).bytes}


def unique_names(folders: list[str]) -> list[str]:
    """URL-safe names from the folders' base names; a repeated name (or the index's own) gets -2, -3, ..."""
    names: list[str] = []
    for folder in folders:
        base = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in os.path.basename(os.path.normpath(folder)))
        base = base.strip(".") or "export"  # never "." or ".." in a URL path
        name, k = base, 2
        while name in names or name == INDEX_FILE:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def build_index(paths: list[str]) -> tuple[dict[str, str], dict]:
    """({name: folder}, the index document) of every export found in paths; the first is the page's default."""
    folders = find_exports(paths)
    names = unique_names(folders)
    return dict(zip(names, folders)), {"exports": [describe(n, f) for n, f in zip(names, folders)]}

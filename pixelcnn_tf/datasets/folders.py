"""An image folder (PATH/{train,test}/<class>/*) checked with Pillow before TensorFlow loads: files, labels, size, channels."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from pixelcnn_tf.errors import UserError

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")
GREY_MODES = {"1", "L", "LA"}  # stored grey: read as one channel when every image of both splits is
COLOUR_MODES = {"P", "PA", "RGB", "RGBA"}  # read as RGB (alpha dropped, a palette expanded)
SCAN_VERSION = 1  # bump when what a scan records changes: older cached scans are then ignored
_SCANS: dict = {}  # (root, fingerprint) -> FolderScan: train.py asks several times per run


@dataclass(frozen=True)
class FolderScan:
    """What the readers need: per split the files (relative paths) and label ids, plus the classes and the image shape."""

    root: str
    classes: tuple[str, ...]  # sorted train class folder names; ("",) for a folder without class subfolders
    files: dict  # split -> [relative path, ...]
    labels: dict  # split -> [class id, ...]
    height: int | None  # None: the images differ in size (only readable with an image size)
    width: int | None
    channels: int
    mixed: str = ""  # when the sizes differ: which two files, e.g. "train/a.png is 32x32, train/b.png 40x30"

    @property
    def labelled(self) -> bool:
        return self.classes != ("",)


def cache_dir() -> str:
    """PIXELCNN_CACHE_DIR, else $XDG_CACHE_HOME/pixelcnn_tf, else ~/.cache/pixelcnn_tf (outside any checkout)."""
    explicit = os.environ.get("PIXELCNN_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pixelcnn_tf")


def _images_under(folder: str, prefix: str, stamps: dict) -> list[str]:
    """Image files below folder (recursively, hidden entries skipped), sorted, as prefix/relative paths.

    Each file's (size, mtime) goes into stamps: the scan cache's key. (os.scandir: 60,000 files in a fraction of a second.)
    """
    found = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            relative = f"{prefix}/{entry.name}"
            if entry.is_dir():
                found += _images_under(entry.path, relative, stamps)
            elif entry.name.lower().endswith(EXTENSIONS):
                stat = entry.stat()
                stamps[relative] = (stat.st_size, stat.st_mtime_ns)
                found.append(relative)
    return found


def _list_split(root: str, split: str, stamps: dict) -> dict[str, list[str]]:
    """class name -> image paths relative to root ("" -> all images when the split has no class subfolders)."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise UserError(f"image folder {root} has no {split}/ folder (expected {split}/<class>/*.png|jpg or {split}/*.png|jpg)")
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    classes = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
    if not classes:
        images = _images_under(folder, split, stamps)
        if not images:
            raise UserError(f"{folder} holds no PNG or JPEG images")
        return {"": images}
    loose = [e for e in entries if e.lower().endswith(EXTENSIONS)]
    if loose:
        raise UserError(f"{os.path.join(folder, loose[0])} lies beside the class folders of {folder}; move it into one")
    listing = {}
    for name in classes:
        images = _images_under(os.path.join(folder, name), f"{split}/{name}", stamps)
        if not images:
            raise UserError(f"class folder {os.path.join(folder, name)} holds no PNG or JPEG images")
        listing[name] = images
    return listing


def _inspect(path: str) -> tuple[int, int, bool]:
    """(width, height, grey) of an image, fully decoded so a truncated or damaged file is found now."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()  # decodes every byte: a truncated JPEG or PNG raises here, not in the middle of training
            mode, size, kind = picture.mode, picture.size, picture.format
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None
    if kind not in ("PNG", "JPEG"):
        raise UserError(f"image {path} is a {kind} file, not PNG or JPEG")
    if mode not in GREY_MODES | COLOUR_MODES:
        raise UserError(f"image {path} has colour mode {mode}; use 8-bit grey or RGB(A) images")
    return size[0], size[1], mode in GREY_MODES


def _fingerprint(stamps: dict) -> str:
    text = "".join(f"{relative}\0{size}\0{mtime}\n" for relative, (size, mtime) in sorted(stamps.items()))
    return hashlib.sha256(f"{SCAN_VERSION}\n{text}".encode()).hexdigest()


def _scan_cache_file(root: str) -> str:
    return os.path.join(cache_dir(), "scans", hashlib.sha256(root.encode()).hexdigest()[:20] + ".json")


def _read_cached(path: str, fingerprint: str):
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        return cached["inspected"] if cached.get("fingerprint") == fingerprint else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or one from another version: scan again


def _write_cached(path: str, fingerprint: str, inspected: dict) -> None:
    from pixelcnn_tf.files import write_json_atomic

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path, {"fingerprint": fingerprint, "inspected": inspected})
    except (OSError, UserError):
        pass  # a read-only cache folder costs the next run a rescan, nothing more


def scan_folder(root: str) -> FolderScan:
    """Check an image folder and list it; every refusal is one UserError line naming the folder or file.

    Decoding every image with Pillow costs a few seconds per 60,000 small files, so the result is cached under
    cache_dir() keyed by the files' paths, sizes and modification times: any change rescans.
    """
    if not root:
        raise UserError("--dataset folder needs --data-dir PATH (a folder holding train/ and test/)")
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"image folder {root} does not exist" if not os.path.exists(root) else f"{root} is not a folder")
    stamps: dict = {}
    listing = {split: _list_split(root, split, stamps) for split in SPLITS}
    train_classes, test_classes = sorted(listing["train"]), sorted(listing["test"])
    if (train_classes == [""]) != (test_classes == [""]):
        with_classes = "train" if test_classes == [""] else "test"
        raise UserError(f"{root}: {with_classes}/ has class folders but the other split has none; give both or neither")
    unknown = sorted(set(test_classes) - set(train_classes))
    if unknown:
        raise UserError(f"class {unknown[0]!r} is in {root}/test but not in {root}/train")
    fingerprint = _fingerprint(stamps)
    if (root, fingerprint) in _SCANS:
        return _SCANS[root, fingerprint]
    cache_file = _scan_cache_file(root)
    inspected = _read_cached(cache_file, fingerprint)
    if inspected is None:
        inspected = {}
        for split in SPLITS:
            for paths in listing[split].values():
                for relative in paths:
                    inspected[relative] = _inspect(os.path.join(root, relative))
        _write_cached(cache_file, fingerprint, inspected)
    sizes = {}
    for relative, (width, height, _) in inspected.items():
        sizes.setdefault((width, height), relative)
    (width, height), first = next(iter(sizes.items()))
    mixed = ""
    if len(sizes) > 1:
        (other_w, other_h), other = list(sizes.items())[1]
        mixed = f"{first} is {width}x{height}, {other} {other_w}x{other_h}"
        width = height = None
    channels = 1 if all(grey for _, _, grey in inspected.values()) else 3
    files, labels = {}, {}
    for split in SPLITS:
        files[split] = [p for name in sorted(listing[split]) for p in listing[split][name]]
        labels[split] = [train_classes.index(name) for name in sorted(listing[split]) for _ in listing[split][name]]
    scan = _SCANS[root, fingerprint] = FolderScan(root, tuple(train_classes), files, labels, height, width, channels, mixed)
    return scan


def folder_shape(scan: FolderScan, image_size: int | None) -> tuple[int, int, int]:
    """(height, width, channels) the reader yields: the images' own size, or image_size x image_size."""
    if image_size is not None:
        if image_size < 1:
            raise UserError(f"--image-size must be positive, got {image_size}")
        return image_size, image_size, scan.channels
    if scan.height is None:
        raise UserError(
            f"images in {scan.root} differ in size ({scan.mixed}); "
            f"pass --image-size N to centre-crop and resize them all to N x N"
        )
    return scan.height, scan.width, scan.channels


def split_files(scan: FolderScan, split: str) -> tuple[list[str], list[int]]:
    """(absolute paths, class ids) of a split in reading order: a fixed shuffle (seed 0) of the sorted listing.

    Folders list one class after another; without this, --train-examples/--test-examples slices and the training
    shuffle buffer (10,000 images) would see only the first classes. The order is the same in every run.
    """
    import numpy as np

    order = np.random.default_rng(0).permutation(len(scan.files[split]))
    paths = [os.path.join(scan.root, scan.files[split][i]) for i in order]
    return paths, [scan.labels[split][i] for i in order]

"""The shipped CIFAR-10 JPEG copy: its archive extracted once, atomically, into the user's cache folder."""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import time
import zlib

from pixelcnn_tf import faults
from pixelcnn_tf.datasets.folders import cache_dir
from pixelcnn_tf.errors import UserError
from serve.metadata import file_sha256

ARCHIVE = "cifar10_jpeg.tar.gz"
TOP = "cifar10_jpeg"  # the archive's one top folder, holding train/ and test/
# Beside the checkout, as on the machines this project is built on (../shared/datasets/README.md).
DEFAULT_ARCHIVE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", ARCHIVE))
CAVEAT = "CIFAR-10 (JPEG q75 copy): not comparable with published CIFAR-10 figures"


def archive_path(data_dir: str | None) -> str:
    """--data-dir names the archive or the folder holding it; default ../shared/datasets/cifar10_jpeg.tar.gz."""
    path = data_dir or DEFAULT_ARCHIVE
    if os.path.isdir(path):
        path = os.path.join(path, ARCHIVE)
    if not os.path.isfile(path):
        raise UserError(f"the CIFAR-10 JPEG archive {path} does not exist; point --data-dir at {ARCHIVE} or its folder")
    return os.path.abspath(path)


def _remove_abandoned(parent: str) -> None:
    """Temporary folders of extractions that were killed (their process is gone) are removed, never read."""
    for name in os.listdir(parent):
        if not name.startswith(".extracting-"):
            continue
        try:
            pid = int(name.split("-")[2])
            os.kill(pid, 0)
            continue  # still extracting (another process): leave it alone
        except (IndexError, ValueError, ProcessLookupError):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except PermissionError:
            continue


def extracted_root(data_dir: str | None = None) -> str:
    """The folder holding train/ and test/ of the extracted archive, extracting it first if needed.

    The cache folder is named after the archive's sha256, so another archive never reuses it. Extraction writes a
    temporary folder and renames it into place only once every file is written: a kill leaves no folder that a
    later run trusts (the rename is atomic; the abandoned temporary folder is removed by the next run).
    """
    archive = archive_path(data_dir)
    parent = os.path.join(cache_dir(), "datasets")
    final = os.path.join(parent, f"cifar10_jpeg-{file_sha256(archive)[:16]}")
    root = os.path.join(final, TOP)
    if os.path.isdir(root):
        return root
    try:
        os.makedirs(parent, exist_ok=True)
        _remove_abandoned(parent)
        work = tempfile.mkdtemp(prefix=f".extracting-{os.getpid()}-", dir=parent)
    except OSError as e:
        raise UserError(f"cannot create the dataset cache folder {parent}: {e.strerror or e} (set PIXELCNN_CACHE_DIR)") from None
    started = time.perf_counter()
    print(f"extracting {archive} into {final} (once)", file=sys.stderr)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")  # "data": no absolute paths, links out of the folder or devices
        if not os.path.isdir(os.path.join(work, TOP, "train")):
            raise UserError(f"{archive} holds no {TOP}/train folder: not the CIFAR-10 JPEG archive")
        faults.point("extracted")  # every file written, not yet renamed into place (tests kill here)
        os.replace(work, final)  # atomic; if another process renamed its copy there first, this fails and theirs wins
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)  # Ctrl-C too; a kill -9 leaves it to _remove_abandoned
        if isinstance(e, OSError) and os.path.isdir(root):
            return root
        if isinstance(e, OSError):
            raise UserError(f"cannot extract {archive} into {parent}: {e.strerror or e}") from None
        if isinstance(e, (tarfile.TarError, EOFError, zlib.error)):
            raise UserError(f"{archive} is not a readable .tar.gz archive: {e}") from None
        raise
    print(f"extracted in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return root

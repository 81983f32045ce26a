"""Atomic file writes: a temporary name in the same folder, then a rename, so a kill never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile

from pixelcnn_tf import faults
from pixelcnn_tf.errors import UserError


def temporary_name(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp")


@contextlib.contextmanager
def replacing(path: str, tmp: str | None = None, epoch: int | None = None):
    """Yield a temporary path to write; on success it is synced and renamed over path.

    Any OSError (disk full, read-only, a folder in the way) removes the temporary and becomes one UserError line.
    """
    tmp = tmp or temporary_name(path)
    name = os.path.basename(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the rename must never publish a file whose bytes are not on disk yet
        faults.point(f"write:{name}", epoch)
        os.replace(tmp, path)
        faults.point(f"replaced:{name}", epoch)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str, epoch: int | None = None) -> None:
    with replacing(path, epoch=epoch) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json_atomic(path: str, value, epoch: int | None = None) -> None:
    """JSON with sorted keys and a trailing newline, written atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n", epoch)


def check_writable_folder(folder: str, what: str) -> None:
    """Refuse a folder that is missing, a file, or not writable (read-only mount, /proc, permissions).

    Probed by creating and removing a temporary file: os.access says yes to root even on a read-only mount.
    """
    if not os.path.isdir(folder):
        raise UserError(f"{what} {folder} does not exist" if not os.path.lexists(folder) else f"{what} {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    except OSError as e:
        raise UserError(f"{what} {folder} is not writable: {e.strerror or e}") from None
    os.close(fd)
    os.remove(probe)


def check_output_file(path: str, flag: str) -> None:
    """An output file's path: not a folder, in a writable folder."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder; name a file")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), f"{flag} folder")

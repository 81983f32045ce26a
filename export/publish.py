"""An export's destination: checked before any work, built in a locked temporary folder beside it, renamed into place.

A killed export leaves its `.NAME.tmp-*` folder behind; the next export to NAME removes the ones whose lock no
live process holds (each working export keeps an flock on the .lock inside its own temporary folder).
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import tempfile

from pixelcnn_tf.errors import UserError
from pixelcnn_tf.files import check_writable_folder
from serve.metadata import is_export_dir

LOCK_FILE = ".lock"


def check_destination(out: str, overwrite: bool) -> None:
    """Refuse before any work: a read-only or file ancestor, or an existing --out (unless an export to overwrite).

    Missing parent folders are fine: make_parents creates them once the checkpoint is checked too.
    """
    existing = os.path.dirname(out)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    check_writable_folder(existing, "folder for --out")
    if os.path.lexists(out):
        if not overwrite:
            raise UserError(f"{out} already exists; pass --overwrite to replace it")
        # Never delete something that is not one of our exports (a typo like --out . must not rm -rf).
        if not os.path.isdir(out) or not is_export_dir(out):
            raise UserError(f"{out} exists and is not an export directory; refusing to replace it")


def make_parents(out: str) -> None:
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder for --out {out}: {e.strerror or e}") from None


def remove_stale(out: str) -> list[str]:
    """Remove the temporary folders of killed exports to out (none that a live export holds); returns them."""
    removed = []
    prefix = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}")
    for folder in glob.glob(glob.escape(prefix) + ".tmp-*") + glob.glob(glob.escape(prefix) + ".old-*"):
        lock_path = os.path.join(folder, LOCK_FILE)
        try:
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder)  # flock held: no live export owns it
                removed.append(folder)
        except BlockingIOError:
            continue  # a live export is working in it
        except OSError:
            continue  # not ours to judge (permissions): leave it
    return removed


class WorkFolder:
    """The temporary folder an export is built in, locked for its lifetime; removed unless published."""

    def __init__(self, out: str):
        try:
            self.path = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=os.path.dirname(out))
            self._lock = open(os.path.join(self.path, LOCK_FILE), "a")
        except OSError as e:
            raise UserError(f"cannot create a folder beside {out}: {e.strerror or e}") from None
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.chmod(self.path, 0o755)  # mkdtemp's 0700 would make the published export private to this user

    def publish(self, out: str, overwrite: bool) -> None:
        """Rename the finished folder to out; an export being replaced moves aside first, then goes."""
        if not os.path.lexists(out):
            os.rename(self.path, out)
        else:
            check_destination(out, overwrite)  # it may have appeared while we worked
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
            os.rename(out, os.path.join(old, "export"))
            os.rename(self.path, out)
            shutil.rmtree(old, ignore_errors=True)
        # Removed only once renamed: while the folder is a .tmp-*, its lock file is what keeps remove_stale off it.
        os.remove(os.path.join(out, LOCK_FILE))

    def close(self) -> None:
        self._lock.close()
        if os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

"""An --overwrite's old run, kept in RUN/.overwritten until the new run's first commit: moved, settled, and found.

train.py --overwrite moves the finished run into ASIDE (model.keras first) and deletes it only after the new run's
first epoch commits; until then the old run is the folder's. A kill in between leaves ASIDE behind: whoever opens the
folder next settles it under the folder's lock (the new run if it committed, else the old one back in place), and
a reader that finds the lock held by a live --overwrite reads the old run where it is.
TensorFlow-free, like run_folder.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time

from pixelcnn_tf import faults
from pixelcnn_tf.config import CONFIG_FILE
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.run.losses import TABLE_FILES

MODEL_FILE = "model.keras"
LOCK_FILE = ".lock"  # flock'ed by the one process that writes the folder (run_folder.RunFolder)
BOARD_DIR = "tensorboard"  # TensorBoard event files (pixelcnn_tf.run.board): `tensorboard --logdir models` shows every run
ASIDE = ".overwritten"  # the finished run an --overwrite replaces, kept until the new run's first epoch commits
ASIDE_DONE = ".complete"  # in ASIDE: every file of the old run is in it
OLD_RUN = (MODEL_FILE, CONFIG_FILE) + TABLE_FILES + (BOARD_DIR,)  # moved aside in this order
MOVE_WAIT = 10.0  # seconds a reader waits for a live --overwrite to finish moving the old run aside (a few renames)


def move_aside(path: str) -> None:
    """Move the old run into ASIDE, model.keras first (from then on ASIDE holds the committed run), then mark it
    complete: only after the mark does the folder's top level hold files of the new run."""
    aside = os.path.join(path, ASIDE)
    os.makedirs(aside, exist_ok=True)
    for name in OLD_RUN:
        if os.path.lexists(os.path.join(path, name)):
            os.rename(os.path.join(path, name), os.path.join(aside, name))
            faults.point(f"aside:{name}")
    open(os.path.join(aside, ASIDE_DONE), "w").close()


def settle_aside(path: str) -> None:
    """Under the lock, after a killed --overwrite: keep the new run if it committed an epoch, else restore the old.

    Each step can be killed and redone: the new run's files go before the mark, the mark before the old files
    come back, and model.keras comes back last.
    """
    aside = os.path.join(path, ASIDE)
    if not os.path.isdir(aside):
        return
    if not os.path.exists(os.path.join(path, MODEL_FILE)):
        if os.path.exists(os.path.join(aside, ASIDE_DONE)):
            for name in OLD_RUN:
                remove(os.path.join(path, name))  # the new run's uncommitted files
            os.remove(os.path.join(aside, ASIDE_DONE))
        for name in reversed(OLD_RUN):
            if os.path.lexists(os.path.join(aside, name)):
                os.rename(os.path.join(aside, name), os.path.join(path, name))
    remove(aside)


def has_aside(path: str) -> bool:
    return os.path.isdir(os.path.join(path, ASIDE))


def holds_run(path: str) -> bool:
    """A run folder with a committed model.keras, in place or aside (a killed or live --overwrite's old run)."""
    return any(os.path.isfile(os.path.join(folder, MODEL_FILE)) for folder in (path, os.path.join(path, ASIDE)))


def readable_run(path: str) -> str:
    """Where a reader (generate, export, evaluate) finds the folder's complete run; path itself unless it holds ASIDE.

    No process holds the folder's lock: settle it under the lock, as the next train.py would, and read it as usual.
    A live --overwrite holds it and its new run has not committed: the old run is read in place, in ASIDE.
    """
    if not has_aside(path):
        return path
    try:
        lock = open(os.path.join(path, LOCK_FILE), "a")
    except OSError:  # a folder this user cannot write: nothing to settle, read it as it is
        return _in_place(path)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _in_place(path)
    else:
        settle_aside(path)
        return path
    finally:
        lock.close()


def _in_place(path: str) -> str:
    """The complete run of a folder whose ASIDE another process is moving into (or out of): wait out the renames."""
    aside = os.path.join(path, ASIDE)
    deadline = time.monotonic() + MOVE_WAIT
    while True:
        if os.path.isfile(os.path.join(path, MODEL_FILE)) or not os.path.isdir(aside):
            return path  # the old run still in place (or back), or the new run committed
        if os.path.exists(os.path.join(aside, ASIDE_DONE)):
            return aside  # the whole old run, untouched until the new run commits
        if time.monotonic() > deadline:
            raise UserError(f"{path} is being overwritten and its old run is still moving aside; try again in a moment")
        time.sleep(0.05)


def run_name(run_dir: str) -> str:
    """The run folder's name, also for its old run read in place in ASIDE."""
    folder = os.path.normpath(os.path.abspath(run_dir))
    if os.path.basename(folder) == ASIDE:
        folder = os.path.dirname(folder)
    return os.path.basename(folder)


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)

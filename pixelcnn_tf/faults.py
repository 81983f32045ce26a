"""Test-only fault injection: PIXELCNN_TF_FAULT=kill@POINT[:EPOCH] or enospc@POINT[:EPOCH] at a named write point."""
from __future__ import annotations

import errno
import json
import os
import signal

ENV = "PIXELCNN_TF_FAULT"
TASK_ENV = "PIXELCNN_TF_FAULT_TASK"  # with several workers: only the worker of this TF_CONFIG task index faults


def point(name: str, epoch: int | None = None) -> None:
    """Do the fault the environment names if it names this point (and epoch): SIGKILL, or a disk-full OSError.

    Points are 'write:FILE' (the temporary holds the new content, not yet renamed), 'replaced:FILE' (renamed
    into place) and 'epoch' (an epoch's training has begun). Unset in normal use: one dictionary lookup.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return
    task = os.environ.get(TASK_ENV)
    if task and task != str(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index")):
        return
    action, _, where = spec.partition("@")
    target, _, at_epoch = where.rpartition(":")
    if not at_epoch.isdigit():
        target, at_epoch = where, ""
    if target != name or (at_epoch and epoch is not None and int(at_epoch) != epoch):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)

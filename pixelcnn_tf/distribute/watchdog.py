"""A separate process that ends a training stuck waiting for its peers: one error line, not a hang.

TensorFlow waits for absent workers (cluster start-up, the first collective) inside C++ calls that hold the
GIL, so no thread or signal handler of the waiting process can run; this process, started with fork+exec, can.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time


@contextlib.contextmanager
def deadline(seconds: float, message: str, cleanup: dict | None = None, prog: str = "train.py"):
    """If the block runs longer than seconds: print `prog: error: message`, then SIGKILL this process.

    Its exit status is then 137 (128 + SIGKILL), not 2: a process stuck in C++ holding the GIL can run no handler.

    cleanup {"lock": path, "folders": [...]}: what a run that committed nothing removes (RunFolder.abandon's work),
    done by the watchdog once this process is dead and its lock released.
    """
    spec = json.dumps({"pid": os.getpid(), "seconds": seconds, "message": f"{prog}: error: {message}", "cleanup": cleanup})
    watchdog = subprocess.Popen([sys.executable, "-m", "pixelcnn_tf.distribute.watchdog", spec], preexec_fn=die_with_parent,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


def die_with_parent(signal_number: int = signal.SIGKILL) -> None:
    """In a child process: get signal_number when the parent dies (Linux PR_SET_PDEATHSIG; 0 turns it off)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal_number)
    except (OSError, AttributeError):
        pass


def _watch(spec: dict) -> int:
    parent = spec["pid"]
    time.sleep(spec["seconds"])
    if os.getppid() != parent:  # the training ended meanwhile
        return 0
    die_with_parent(0)
    print(spec["message"], file=sys.stderr, flush=True)  # first: the caller's shell returns once the training is dead
    os.kill(parent, signal.SIGKILL)
    while os.getppid() == parent:  # reparented once the training is dead (its lock released)
        time.sleep(0.05)
    cleanup = spec.get("cleanup") or {}
    if cleanup.get("lock"):
        with contextlib.suppress(OSError):
            os.remove(cleanup["lock"])
    for folder in reversed(cleanup.get("folders", [])):
        try:
            os.rmdir(folder)
        except OSError:
            break
    return 2


if __name__ == "__main__":
    sys.exit(_watch(json.loads(sys.argv[1])))

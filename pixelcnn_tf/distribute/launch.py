"""Try multi-worker training on one machine: `python -m pixelcnn_tf.distribute.launch --workers 2 -- <train.py flags>`.

Starts one train.py per worker with its TF_CONFIG (free ports on 127.0.0.1 only) and a share of the CPU threads,
streams the chief's output, and stops every worker as soon as one fails. Exit code: 0 when all succeed, else the
first failure's (128 + signal for a killed worker).
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from pixelcnn_tf.distribute.watchdog import die_with_parent
from pixelcnn_tf.errors import ArgumentParser, UserError, run_cli

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "train.py")
LOOPBACK = "127.0.0.1"
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for the workers still running after a failure


def free_ports(count: int) -> list[int]:
    """Ports the kernel has free on the loopback address (held together, so no two are the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def thread_env(threads: int) -> dict:
    """Environment variables that hold a TensorFlow process to `threads` CPU threads (its own and oneDNN's pools).

    Two inter-op threads at least: a ring all-reduce waits on one while the step's other ops need another.
    """
    return dict(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(max(2, threads)), OMP_NUM_THREADS=str(threads))


def worker_env(addresses: list[str], index: int, threads: int) -> dict:
    """The environment of one worker: its TF_CONFIG and its share of the CPU."""
    return dict(os.environ, TF_CONFIG=tf_config(addresses, index), **thread_env(threads))


def _keep_tail(stream, tail: collections.deque) -> None:
    for line in stream:
        tail.append(line)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def check_train_args(train_args: list[str]) -> None:
    """train.py's own flag and config checks, here (no TensorFlow): a bad flag is one line before any worker starts,
    not one line per worker."""
    spec = importlib.util.spec_from_file_location("train_cli", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build_config(module.parse_args(train_args))


def launch(workers: int, train_args: list[str], threads: int | None = None) -> int:
    """Run the workers to the end; the chief (worker 0) writes to our stdout/stderr, the others' stderr is kept."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    check_train_args(train_args)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    addresses = [f"{LOOPBACK}:{port}" for port in free_ports(workers)]
    processes, tails = [], []
    try:
        for index in range(workers):
            chief = index == 0
            tail: collections.deque = collections.deque(maxlen=20)
            process = subprocess.Popen(
                [sys.executable, TRAIN, *train_args], env=worker_env(addresses, index, threads),
                stdout=None if chief else subprocess.DEVNULL, stderr=None if chief else subprocess.PIPE, text=True,
                preexec_fn=die_with_parent,  # no worker outlives the launcher, waiting for its peers
            )
            if not chief:
                threading.Thread(target=_keep_tail, args=(process.stderr, tail), daemon=True).start()
            processes.append(process)
            tails.append(tail)
        return _wait(processes, tails)
    finally:
        _stop(processes)


def _wait(processes, tails) -> int:
    while True:
        codes = [process.poll() for process in processes]
        failed = [index for index, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            index = failed[0]
            if index:  # the chief's own output is already on the terminal
                sys.stderr.write("".join(tails[index]))
            if codes[index] != 2:  # 2: bad input, which the worker's own one line explains
                print(f"launch: worker {index} exited with {exit_code(codes[index])}; stopping the others", file=sys.stderr)
            return exit_code(codes[index])
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def _stop(processes) -> None:
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = ArgumentParser(prog="launch", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes on this machine (default 2)")
    parser.add_argument("--threads", type=int, help="CPU threads per worker (default: the CPUs shared out evenly)")
    args = parser.parse_args(own)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup that stops the workers
    return run_cli(lambda: launch(args.workers, train_args, args.threads), "launch")


if __name__ == "__main__":
    sys.exit(main())

"""This process's place in a tf.distribute cluster, read from TF_CONFIG and checked before TensorFlow is imported."""
from __future__ import annotations

import errno
import json
import os
import socket
from dataclasses import dataclass

from pixelcnn_tf.config import STRATEGIES
from pixelcnn_tf.errors import UserError

WORKER_TYPES = ("chief", "worker")  # the task types MultiWorkerMirroredStrategy trains with


@dataclass(frozen=True)
class Task:
    """One process of a cluster: its type and index, the cluster's size, and whether it writes the run's files."""

    type: str = "worker"
    index: int = 0
    workers: int = 1
    addresses: tuple[str, ...] = ()
    has_chief: bool = False
    address: str = ""  # this task's own host:port

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(address for address in self.addresses if address != self.address)

    @property
    def is_chief(self) -> bool:
        """The chief writes the run folder: task 'chief', or worker 0 of a cluster without one (Keras' rule)."""
        return self.type == "chief" or (self.type == "worker" and self.index == 0 and not self.has_chief)


def _address_ok(address) -> bool:
    host, _, port = str(address).rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def read_task(raw: str | None = None) -> Task | None:
    """The Task TF_CONFIG describes (None when it is unset); any mistake in it is one UserError line."""
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    if not raw or not raw.strip():
        return None
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise UserError(f"TF_CONFIG is not JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise UserError('TF_CONFIG has no "cluster": expected {"cluster": {"worker": ["host:port", ...]}, "task": {...}}')
    task = spec.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UserError('TF_CONFIG has no "task" with "type" and "index", e.g. "task": {"type": "worker", "index": 0}')
    cluster = spec["cluster"]
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise UserError(f'TF_CONFIG cluster "{kind}" must be a non-empty list of "host:port" addresses')
        bad = [address for address in addresses if not _address_ok(address)]
        if bad:
            raise UserError(f'TF_CONFIG cluster "{kind}" address {bad[0]!r} is not "host:port"')
    kind, index = task["type"], task["index"]
    if kind not in WORKER_TYPES:
        raise UserError(f"TF_CONFIG task type {kind!r} does not train; expected one of {', '.join(WORKER_TYPES)}")
    if kind not in cluster:
        raise UserError(f'TF_CONFIG task type {kind!r} is not in its cluster ({", ".join(sorted(cluster))})')
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise UserError(f"TF_CONFIG task index {index!r} is out of range: cluster {kind!r} has {len(cluster[kind])} task(s)")
    if len(cluster.get("chief", [])) > 1:
        raise UserError("TF_CONFIG cluster has more than one chief")
    extra = sorted(set(cluster) - set(WORKER_TYPES) - {"evaluator", "ps"})
    if extra:
        raise UserError(f"TF_CONFIG cluster has an unknown task type {extra[0]!r}")
    if "ps" in cluster:
        raise UserError("TF_CONFIG names parameter servers; train.py trains with MultiWorkerMirroredStrategy (chief/worker only)")
    addresses = tuple(cluster.get("chief", []) + cluster.get("worker", []))
    return Task(kind, index, len(addresses), addresses, "chief" in cluster, cluster[kind][index])


def check_own_port(task: Task | None) -> None:
    """Refuse a TF_CONFIG whose address for this task has a port another process holds, before TensorFlow's gRPC
    server fails on it with a page of traceback. TensorFlow binds every interface, so the probe does too."""
    if task is None or task.workers < 2:
        return
    port = int(task.address.rpartition(":")[2])
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("", port))
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            raise UserError(f"TF_CONFIG gives this task {task.address}, but port {port} cannot be used here: "
                            f"{e.strerror}; pick a free port") from None
    finally:
        probe.close()


def local_tpu() -> bool:
    """A TPU VM's chips show as /dev/accel* (v2-v4) or /dev/vfio (v5+); Colab/GCE name theirs in TPU_NAME."""
    return bool(os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")


def resolve_strategy(name: str, task: Task | None, tpu: str | None = None) -> str:
    """The strategy to build: 'auto' becomes 'multiworker' under TF_CONFIG (GPU counting waits for TensorFlow)."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "auto" and task is not None:
        return "multiworker"
    if name == "multiworker" and task is None:
        raise UserError('--strategy multiworker needs TF_CONFIG (e.g. {"cluster": {"worker": [...]}, "task": {...}}); '
                        "try `python -m pixelcnn_tf.distribute.launch --workers 2 -- ...` on one machine")
    if name in ("one", "mirrored", "tpu") and task is not None and task.workers > 1:
        raise UserError(f"--strategy {name} trains in one process, but TF_CONFIG describes {task.workers}; use multiworker")
    if name == "tpu" and not tpu and not local_tpu():
        raise UserError("--strategy tpu: no TPU on this machine (no /dev/accel*, no TPU_NAME); pass --tpu NAME_OR_ADDRESS")
    if tpu and name != "tpu":
        raise UserError(f"--tpu {tpu} needs --strategy tpu")
    return name

"""The tf.distribute strategy train.py runs under: one device, MirroredStrategy, MultiWorkerMirroredStrategy or TPU."""
from __future__ import annotations

import tensorflow as tf

from pixelcnn_tf.errors import UserError, first_line


def _tpu_strategy(tpu: str | None) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        if tpu not in (None, "", "local"):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # the resolver raises ValueError, RuntimeError, NotFoundError... for "no TPU here"
        raise UserError(f"no TPU {'at ' + repr(tpu) if tpu else 'found'} ({first_line(e)}); pass --tpu NAME_OR_ADDRESS on a TPU VM") from None


def make_strategy(name: str = "one", *, tpu: str | None = None, devices: list[str] | None = None) -> tf.distribute.Strategy:
    """A strategy by name (cluster.resolve_strategy settles 'auto' under TF_CONFIG first).

    auto: MirroredStrategy over several GPUs, else the default one-device strategy. multiworker: the cluster of
    TF_CONFIG, reduced by ring all-reduce on CPU (NCCL where every worker has GPUs).
    """
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        gpus = tf.config.list_physical_devices("GPU")
        implementation = tf.distribute.experimental.CommunicationImplementation
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementation.NCCL if gpus else implementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        return _tpu_strategy(tpu)
    if name == "mirrored" or (name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()

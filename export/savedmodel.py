"""An export's SavedModel as a serve.Sampler: the TensorFlow backend that serve itself never imports."""
from __future__ import annotations

import tensorflow as tf

from pixelcnn_tf.errors import UserError
from serve import Sampler, ServeError
from serve.backends import BACKENDS
from serve.manifest import Artifact, read_manifest
from serve.metadata import checked_path
from serve.names import IMAGE, LABEL, LOGITS
from serve.sampling import LogitsFn


def savedmodel_logits_fn(path: str, entry: Artifact) -> LogitsFn:
    """The serving signature of an exported SavedModel, fed by the tensor names its metadata entry records."""
    try:
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures[entry.signature or "serving_default"]
    except Exception as e:  # TF raises many types for a damaged or foreign SavedModel
        raise UserError(f"cannot load SavedModel {path}: {str(e).strip().splitlines()[0]}") from None
    inputs, output = entry.inputs, entry.outputs[LOGITS]

    def logits_fn(images, labels):
        feed = {inputs[IMAGE]: tf.constant(images, tf.float32)}
        if LABEL in inputs:
            feed[inputs[LABEL]] = tf.constant(labels, tf.int32)
        return signature(**feed)[output].numpy()

    logits_fn.loaded = loaded  # a signature's variables are freed with the object tf.saved_model.load returned
    return logits_fn


def savedmodel_sampler(export_dir: str) -> Sampler:
    """A serve.Sampler over an export's SavedModel."""
    row = BACKENDS["savedmodel"]
    manifest, name = read_manifest(export_dir), row.artifact
    if name not in manifest.artifacts:
        raise ServeError(f"export {export_dir} has no {name!r} artifact; it has {', '.join(sorted(manifest.artifacts))}")
    entry = manifest.artifacts[name]
    path = checked_path(entry, export_dir, name)
    return Sampler(savedmodel_logits_fn(path, entry), manifest.spec, row.name, manifest)

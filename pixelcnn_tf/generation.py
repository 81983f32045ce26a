"""TensorFlow-side sampling: wrap a Keras model or an exported SavedModel as a logits function for the numpy loop."""
from __future__ import annotations

import tensorflow as tf

from serve import ModelSpec, Sampler
from serve.metadata import artifact, read_metadata, spec_of
from serve.sampling import LogitsFn


def keras_logits_fn(model, conditional: bool) -> LogitsFn:
    """A compiled (tf.function) forward pass in inference mode, any batch size."""
    height, width, channels = model.input["image"].shape[1:]
    image_spec = tf.TensorSpec((None, height, width, channels), tf.float32)
    if conditional:

        @tf.function(input_signature=[image_spec, tf.TensorSpec((None,), tf.int32)])
        def forward(images, labels):
            return model({"image": images, "label": labels}, training=False)

        return lambda images, labels: forward(images, labels).numpy()

    @tf.function(input_signature=[image_spec])
    def forward_unconditional(images):
        return model({"image": images}, training=False)

    return lambda images, labels: forward_unconditional(images).numpy()


def savedmodel_logits_fn(path: str, entry: dict) -> LogitsFn:
    """The serving signature of an exported SavedModel, fed by the tensor names its metadata entry records."""
    from pixelcnn_tf.errors import UserError

    try:
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures[entry.get("signature", "serving_default")]
    except Exception as e:  # TF raises many types for a damaged or foreign SavedModel
        raise UserError(f"cannot load SavedModel {path}: {str(e).strip().splitlines()[0]}") from None
    inputs, output = entry["inputs"], entry["outputs"]["logits"]

    def logits_fn(images, labels):
        feed = {inputs["image"]: tf.constant(images, tf.float32)}
        if "label" in inputs:
            feed[inputs["label"]] = tf.constant(labels, tf.int32)
        return signature(**feed)[output].numpy()

    logits_fn.loaded = loaded  # a signature's variables are freed with the object tf.saved_model.load returned
    return logits_fn


def keras_sampler(model, config) -> Sampler:
    """A serve.Sampler over a Keras model and its ModelConfig."""
    spec = ModelSpec(config.height, config.width, config.channels, config.levels, config.num_classes)
    return Sampler(keras_logits_fn(model, conditional=bool(config.num_classes)), spec, "keras")


def savedmodel_sampler(export_dir: str) -> Sampler:
    """A serve.Sampler over an export's SavedModel: the TensorFlow backend that serve itself never imports."""
    meta = read_metadata(export_dir)
    entry, path = artifact(meta, export_dir, "saved_model")
    return Sampler(savedmodel_logits_fn(path, entry), spec_of(meta), "savedmodel", meta)

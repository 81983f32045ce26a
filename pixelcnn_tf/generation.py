"""Keras-side sampling: wrap a loaded model as a logits function for the shared numpy sampling loop."""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

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


def write_png(grid: np.ndarray, path: str) -> None:
    """Write a uint8 picture atomically (temporary name in the same folder, then rename)."""
    from PIL import Image

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        from pixelcnn_tf.errors import UserError

        raise UserError(f"output folder {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)

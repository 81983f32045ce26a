"""What every output distribution implements in TensorFlow (loss, per-level log-probs), and its Keras loss."""
from __future__ import annotations

import keras
import tensorflow as tf

from serve.distributions import Distribution, build


class TFDistribution:
    """The TensorFlow side of a serve.distributions.Distribution `spec` (the same shapes, names and maths)."""

    def __init__(self, spec: Distribution):
        self.spec = spec

    def log_weights(self, head, c: int, earlier):
        """Unnormalised log-probabilities (..., levels) of sub-pixel c given earlier (..., >=c) level values."""
        raise NotImplementedError

    def log_probs(self, head, c: int, earlier):
        """log P(x_c = l | x_<c = earlier) for every level l, normalised: (..., levels)."""
        return tf.nn.log_softmax(self.log_weights(head, c, earlier), axis=-1)

    def nll_per_image(self, head, images):
        """Negative log-likelihood in nats of each image (N, H, W, C) under head (N, H, W, *head_shape): (N,)."""
        raise NotImplementedError

    def loss(self) -> keras.losses.Loss:
        return DistributionLoss(self.spec.name, self.spec.channels, self.spec.levels, self.spec.mixtures)


@keras.saving.register_keras_serializable(package="pixelcnn_tf")
class DistributionLoss(keras.losses.Loss):
    """Per image: its NLL divided by its sub-pixels. Keras averages that over the batch, so the loss and val_loss
    stay in nats per sub-pixel, as SparseCategoricalCrossentropy's mean was (what losses.epoch_row expects)."""

    def __init__(self, output: str, channels: int, levels: int, mixtures: int | None = None, name=None, **kwargs):
        super().__init__(name=name or f"{output}_nll", **kwargs)
        self.settings = dict(output=output, channels=channels, levels=levels, mixtures=mixtures)
        from pixelcnn_tf.distributions import tf_distribution  # the registry imports this module

        self.distribution = tf_distribution(build(output, channels=channels, levels=levels, mixtures=mixtures))

    def call(self, y_true, y_pred):
        dims = tf.cast(tf.reduce_prod(tf.shape(y_true)[1:]), y_pred.dtype)
        return self.distribution.nll_per_image(y_pred, y_true) / dims

    def get_config(self):
        return {**super().get_config(), **self.settings}

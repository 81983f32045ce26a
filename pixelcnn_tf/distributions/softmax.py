"""The softmax output in TensorFlow: sparse cross-entropy over (channels, levels) logits per pixel."""
from __future__ import annotations

import keras
import tensorflow as tf

from pixelcnn_tf.distributions.base import TFDistribution


class SoftmaxTF(TFDistribution):
    def loss(self):
        # Keras's own: the mean over sub-pixels is the per-image NLL over the sub-pixels, as DistributionLoss's.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def log_weights(self, head, c, earlier):
        return head[..., c, :]

    def nll_per_image(self, head, images):
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(images, tf.int32), logits=head)
        return tf.reduce_sum(nll, axis=[1, 2, 3])

"""The logistic mixture in TensorFlow: serve.distributions.logistic_mixture's maths run over TensorFlow ops."""
from __future__ import annotations

import tensorflow as tf

from pixelcnn_tf.distributions.arrays import TensorFlowOps
from pixelcnn_tf.distributions.base import TFDistribution
from serve.distributions import logistic_mixture as maths


class LogisticMixtureTF(TFDistribution):
    def _args(self):
        return self.spec.channels, self.spec.mixtures, self.spec.levels

    def log_weights(self, head, c, earlier):
        return maths.conditional_log_probs(TensorFlowOps, head, c, earlier, *self._args())

    def log_probs(self, head, c, earlier):
        return self.log_weights(head, c, earlier)  # exact log-probabilities already

    def pixel_log_probs(self, head, values):
        return maths.pixel_log_probs(TensorFlowOps, head, values, *self._args())

    def nll_per_image(self, head, images):
        return -tf.reduce_sum(self.pixel_log_probs(head, images), axis=[1, 2])

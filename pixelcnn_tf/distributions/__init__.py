"""Output distributions on the training side: validation without TensorFlow, the TensorFlow parts on demand."""
from __future__ import annotations

from pixelcnn_tf.errors import UserError
from serve import distributions as serving
from serve.distributions import DEFAULT, RECORDS, Distribution, DistributionError


def check_output(name, *, channels: int, levels: int, mixtures: int | None = None) -> Distribution:
    """The output distribution a config asks for, or UserError in one line: CLIs call this before TensorFlow."""
    try:
        return serving.build(name, channels=channels, levels=levels, mixtures=mixtures)
    except DistributionError as e:
        raise UserError(str(e)) from None


def tf_distribution(spec: Distribution):
    """The TensorFlow side (loss, per-level log-probs) of a built spec; imports TensorFlow."""
    from pixelcnn_tf.distributions.logistic_mixture import LogisticMixtureTF
    from pixelcnn_tf.distributions.softmax import SoftmaxTF

    classes = {"softmax": SoftmaxTF, "logistic_mixture": LogisticMixtureTF}
    assert set(classes) == set(RECORDS), "every output distribution needs its TensorFlow side here"
    return classes[spec.name](spec)


def build(name, *, channels: int, levels: int, mixtures: int | None = None):
    """check_output then tf_distribution: the TensorFlow side of the named output distribution."""
    return tf_distribution(check_output(name, channels=channels, levels=levels, mixtures=mixtures))


__all__ = ["DEFAULT", "RECORDS", "build", "check_output", "tf_distribution"]

"""The seed PixelCNN (van den Oord et al. 2016, arXiv 1601.06759): masked convolutions, BatchNorm and ReLU."""
from __future__ import annotations

from pixelcnn_tf.architectures.record import Architecture


def parameter_count(m) -> int:
    classes = m.num_classes * m.filters * m.num_layers  # one label bias per layer
    return m.num_layers * m.kernel_size**2 * m.filters**2 + m.filters * m.channels * m.levels + classes


RECORD = Architecture(
    name="pixelcnn",
    package=__name__,
    parameter_count=parameter_count,
    maps_per_layer=6,  # conv, BatchNorm, ReLU and their gradients
    xla_parts=("step",),
)

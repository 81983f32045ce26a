"""The Gated PixelCNN (van den Oord et al. 2016, arXiv 1606.05328): vertical and horizontal stacks, no blind spot."""
from __future__ import annotations

from pixelcnn_tf.architectures.record import Architecture

NETWORK = {"architecture": "gated", "levels": 2, "num_layers": 6, "kernel_size": 5, "filters": 32}


def parameter_count(m) -> int:
    f, r = m.filters, m.kernel_size // 2
    per_layer = 2 * f * f * ((r + 1) * m.kernel_size + (r + 1) + 2) + 2 * f * f  # v, h, link (2F outputs); skip, h_out
    classes = m.num_classes * f * m.num_layers * 4  # label biases of both stacks, 2F wide each
    return m.num_layers * per_layer + f * m.channels * m.levels + classes


RECORD = Architecture(
    name="gated",
    package=__name__,
    parameter_count=parameter_count,
    maps_per_layer=24,  # the 2F-wide stacks, gate, skip and link, with gradients
    xla_parts=("pixel",),
    cpu_train_xla=("float32",),
    presets={
        # Sized for a 2-core AVX2 CPU: ~20-25 min an epoch, ~2 h in all; the learning rate decays (cosine) over
        # those 5 epochs. The first shipped model (85.94 nats) was trained with exactly this.
        "gated_mnist": {"model": NETWORK, "epochs": 5, "batch_size": 64, "lr_schedule": "cosine"},
        # The recipe of the shipped pretrained/gated_mnist, chosen by measurement (docs/recipes.md): the same network
        # at twice the learning rate, with weight averaging, for 11 epochs: 78 min on a 2-core AVX-512 BF16 CPU, 82.94 nats.
        "gated_mnist_ema": {"model": NETWORK, "epochs": 11, "batch_size": 64, "learning_rate": 2e-3,
                            "lr_schedule": "cosine", "ema_decay": 0.999},
        # The recipe of the shipped pretrained/gated_cifar (with --conditional), chosen by measurement at equal wall
        # time (docs/recipes.md): the logistic mixture beat softmax, 32 filters beat 48 (more images in the time).
        "gated_cifar": {"model": NETWORK | {"filters": 32, "levels": 256, "output": "logistic_mixture", "mixtures": 10},
                        "dataset": "cifar10_jpeg", "epochs": 5, "batch_size": 64, "learning_rate": 2e-3,
                        "lr_schedule": "cosine", "ema_decay": 0.999, "test_examples": 2000},
    },
)

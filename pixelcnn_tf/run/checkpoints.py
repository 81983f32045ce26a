"""Save and load checkpoints: models/<run>/model.keras with config.json beside it."""
from __future__ import annotations

import os

import keras

from pixelcnn_tf.architectures import register_layers
from pixelcnn_tf.config import CONFIG_FILE, TrainConfig
from pixelcnn_tf.errors import UserError, first_line
from pixelcnn_tf.run.folder import (  # noqa: F401
    MODEL_FILE,
    check_averaged,
    find_run_dir,
    inspect_checkpoint,
    is_run_dir,
    write_checkpoint,
)


def save_model(model: keras.Model, run_dir: str) -> str:
    """Save model.keras atomically (no epoch stamp: for models made outside a training run)."""
    path = os.path.join(run_dir, MODEL_FILE)
    write_checkpoint(model, path, None)
    return path


def check_matches(model: keras.Model, config: TrainConfig, where: str) -> None:
    """The loaded network must be the one config.model builds: same inputs, outputs and every weight's shape.

    Checkpoints stamped by training were already compared key by key (run_folder.check_model_matches); this
    also covers older, stamp-less ones.
    """
    from pixelcnn_tf.model import build_model

    m = config.model
    image_shape = tuple(model.input["image"].shape[1:]) if isinstance(model.input, dict) else None
    expected_image = (m.height, m.width, m.channels)
    output_shape = tuple(model.output.shape[1:])
    expected_output = (m.height, m.width, m.channels, m.levels)
    conditional = isinstance(model.input, dict) and "label" in model.input
    if image_shape != expected_image or output_shape != expected_output or conditional != bool(m.num_classes):
        raise UserError(
            f"checkpoint {where} does not match its {CONFIG_FILE}: model takes {image_shape} "
            f"and gives {output_shape}{' with labels' if conditional else ''}, config says {expected_image} "
            f"-> {expected_output}{' with labels' if m.num_classes else ''}"
        )
    weights = {w.path: tuple(w.shape) for w in model.weights}
    expected = {w.path: tuple(w.shape) for w in build_model(m).weights}
    if weights != expected:
        differing = sorted(set(weights.items()) ^ set(expected.items()))
        raise UserError(
            f"checkpoint {where} does not match its {CONFIG_FILE} ({m.architecture}, {m.num_layers} layers, "
            f"{m.filters} filters, kernel {m.kernel_size}): weight {differing[0][0]} differs"
        )


def load_checkpoint(path: str | None, default_root: str = "models", raw: bool = False) -> tuple[keras.Model, TrainConfig, str]:
    """Load (model, config, run_dir); the config must describe the stored model.

    A run trained with --ema-decay stores the averaged weights as its weights; raw=True gives the weights training
    last stepped to instead (kept in the optimizer's state), to measure what the averaging gains.
    """
    register_layers()  # every architecture's serializable layers, for deserialization

    run_dir, config, stamp = inspect_checkpoint(path, default_root)
    if raw:
        check_averaged(config, run_dir)
    model_path = os.path.join(run_dir, MODEL_FILE)
    try:
        model = keras.models.load_model(model_path, compile=raw)
    except Exception as e:  # keras raises many types for a damaged or foreign file
        raise UserError(f"cannot load {model_path}, it may be damaged: {first_line(e)}") from None
    if stamp is None:
        check_matches(model, config, run_dir)
    if raw:
        from pixelcnn_tf.run.averaging import raw_weights_model

        model = raw_weights_model(model)
    return model, config, run_dir


def float32_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The model with float32 compute: a mixed-precision checkpoint would put bf16/fp16 ops in every artifact and
    round every NLL it scores."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    from pixelcnn_tf.model import build_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = build_model(config.model)
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone

"""Find, save and load checkpoints: models/<run>/model.keras with config.json beside it."""
from __future__ import annotations

import os

import keras

from pixelcnn_tf.config import CONFIG_FILE, TrainConfig, load_config
from pixelcnn_tf.errors import UserError

MODEL_FILE = "model.keras"


def is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MODEL_FILE)) and os.path.isfile(os.path.join(path, CONFIG_FILE))


def find_run_dir(path: str | None, default_root: str = "models") -> str:
    """A run directory from a run dir, a model.keras file, or a folder of runs (newest wins)."""
    target = path or default_root
    if os.path.isfile(target):
        if not target.endswith(".keras"):
            raise UserError(f"{target} is not a .keras checkpoint")
        target = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(target):
        raise UserError(f"checkpoint {target} does not exist; train one with `python train.py` or pass --checkpoint")
    if is_run_dir(target):
        return target
    runs = [os.path.join(target, name) for name in os.listdir(target)]
    runs = [run for run in runs if is_run_dir(run)]
    if not runs:
        raise UserError(f"no checkpoint ({MODEL_FILE} + {CONFIG_FILE}) in {target}; train one with `python train.py`")
    return max(runs, key=lambda run: os.path.getmtime(os.path.join(run, MODEL_FILE)))


def save_model(model: keras.Model, run_dir: str) -> str:
    """Save atomically: write a temporary file, then rename over model.keras."""
    path = os.path.join(run_dir, MODEL_FILE)
    tmp = os.path.join(run_dir, "model.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def check_matches(model: keras.Model, config: TrainConfig, where: str) -> None:
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


def load_checkpoint(path: str | None, default_root: str = "models") -> tuple[keras.Model, TrainConfig, str]:
    """Load (model, config, run_dir); the config must describe the stored model."""
    import pixelcnn_tf.layers  # noqa: F401  registers MaskedConv2D for deserialization
    import pixelcnn_tf.gated  # noqa: F401  registers the gated layers for deserialization

    run_dir = find_run_dir(path, default_root)
    config = load_config(run_dir)
    model_path = os.path.join(run_dir, MODEL_FILE)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as e:  # keras raises many types for a damaged or foreign file
        raise UserError(f"cannot load {model_path}: {str(e).splitlines()[0]}") from None
    check_matches(model, config, run_dir)
    return model, config, run_dir

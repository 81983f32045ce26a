"""Read the seed project's INI configs (config_train.txt, config_generate.txt) strictly: unknown keys are errors."""
from __future__ import annotations

import configparser

from pixelcnn_tf.errors import UserError


def yes_no(raw: str) -> bool:
    """An INI boolean: yes/no, true/false, on/off, 1/0."""
    value = configparser.ConfigParser.BOOLEAN_STATES.get(raw.lower())
    if value is None:
        raise ValueError(raw)
    return value


yes_no.__name__ = "boolean (yes/no)"

# section -> key -> (destination, type). Destinations with a dot go into the model config.
TRAIN_KEYS = {
    "data": {
        "path": ("data_dir", str),
        "data_name": ("dataset", str),
        "batch_size": ("batch_size", int),
        "image_size": ("image_size", int),  # beyond the seed's keys: folder datasets resized to N x N
    },
    "network": {
        "no_layers": ("model.num_layers", int),
        "kernel": ("model.kernel_size", int),
        "channels": ("model.filters", int),
        "epochs": ("epochs", int),
        "save_path": ("save_path", str),
        # Additions beyond the seed's keys.
        "levels": ("model.levels", int),
        "architecture": ("model.architecture", str),
        "output": ("model.output", str),
        "mixtures": ("model.mixtures", int),
        "learning_rate": ("learning_rate", float),
        "lr_schedule": ("lr_schedule", str),
        "ema_decay": ("ema_decay", float),
        "strategy": ("strategy", str),
        "tpu": ("tpu", str),
        "tensorboard": ("tensorboard", yes_no),
    },
}

GENERATE_KEYS = {
    "model": {"load_path": ("load_path", str)},
    "images": {"no_images": ("num_images", int), "images_size": ("image_size", int)},
}


def _read(path: str, schema: dict) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory") from None
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise UserError(f"{path} is not a valid INI file: {str(e).splitlines()[0]}") from None
    values = {}
    for section in parser.sections():
        if section not in schema:
            raise UserError(f"{path}: unknown section [{section}]; expected {', '.join(f'[{s}]' for s in schema)}")
        for key, raw in parser.items(section):
            if key not in schema[section]:
                raise UserError(f"{path}: unknown key {key!r} in [{section}]; expected one of {', '.join(schema[section])}")
            destination, kind = schema[section][key]
            raw = raw.strip()
            if raw == "":
                continue  # an empty value keeps the default
            try:
                values[destination] = kind(raw)
            except ValueError:
                raise UserError(f"{path}: [{section}] {key} = {raw!r} is not a valid {kind.__name__}") from None
    return values


def read_train_ini(path: str) -> dict:
    """Overrides for TrainConfig as a nested dict ({'model': {...}, 'epochs': ...})."""
    overrides: dict = {"model": {}}
    for destination, value in _read(path, TRAIN_KEYS).items():
        if destination.startswith("model."):
            overrides["model"][destination.split(".", 1)[1]] = value
        else:
            overrides[destination] = value
    return overrides


def read_generate_ini(path: str) -> dict:
    """{'load_path', 'num_images', 'image_size'} as far as the file sets them."""
    return _read(path, GENERATE_KEYS)

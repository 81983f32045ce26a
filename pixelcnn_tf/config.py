"""Typed configs for the model and a training run, saved as JSON beside every checkpoint."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

from pixelcnn_tf.errors import UserError
from pixelcnn_tf.files import write_json_atomic
from serve.names import ARCHITECTURE_NAMES as ARCHITECTURES  # the contract; pixelcnn_tf/architectures/ holds the table
from serve.names import OUTPUT_NAMES

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
CONFIG_FILE = "config.json"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network: shapes, depth, width, levels and the output distribution."""

    architecture: str = "pixelcnn"
    height: int = 28
    width: int = 28
    channels: int = 1  # image channels (1 grey, 3 RGB); masks order them R -> G -> B
    levels: int = 256  # values per sub-pixel: 256 is 8-bit, 2 is binarized
    num_layers: int = 8
    kernel_size: int = 7
    filters: int = 64
    num_classes: int = 0  # 0: unconditional; >0: a label input biases every layer
    output: str = "softmax"  # the output distribution (serve/distributions/): softmax or logistic_mixture
    mixtures: int | None = None  # logistic_mixture: its components per pixel

    def validate(self, output: bool = True) -> "ModelConfig":
        """Every setting checked, in one line each; output=False leaves the output distribution's own checks (they
        import numpy) to the caller, so train.py refuses other bad flags without it."""
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
        if not 2 <= self.levels <= 256:
            raise UserError(f"levels must be in 2..256, got {self.levels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise UserError(f"kernel_size must be a positive odd number, got {self.kernel_size}")
        if self.channels not in (1, 3):
            raise UserError(f"channels must be 1 or 3, got {self.channels}")
        if self.num_layers < 1:
            raise UserError(f"num_layers must be at least 1, got {self.num_layers}")
        if self.filters < self.channels:
            raise UserError(f"filters ({self.filters}) must be at least the image channels ({self.channels})")
        if self.num_classes < 0:
            raise UserError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.height < 1 or self.width < 1:
            raise UserError(f"image size must be positive, got {self.height}x{self.width}")
        if self.output not in OUTPUT_NAMES:
            raise UserError(f"unknown output distribution {self.output!r}; choose one of {', '.join(OUTPUT_NAMES)}")
        if output:
            self.distribution  # levels, mixtures and channels the distribution accepts (one line otherwise)
        return self

    @property
    def distribution(self):
        """The output distribution (serve.distributions.Distribution) bound to this model's channels and levels."""
        from serve.distributions import DistributionError, build  # numpy: after the name checks above

        try:
            return build(self.output, channels=self.channels, levels=self.levels, mixtures=self.mixtures)
        except DistributionError as e:
            raise UserError(str(e)) from None

    @property
    def mask_channels(self) -> int:
        """Channel groups of the masks: the image channels when the output orders sub-pixels by masks (softmax),
        1 when the masks are pixel-level and the distribution couples a pixel's channels itself (a mixture)."""
        return self.channels if self.distribution.channel_masks else 1

    @property
    def dims(self) -> int:
        """Sub-pixels per image: the 'dimensions' in bits/dim."""
        return self.height * self.width * self.channels


@dataclass
class TrainConfig:
    """A training run: the model plus data, optimisation and where to write."""

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: str = "mnist"
    data_dir: str | None = None  # tfds: the TFDS data directory; folder: the image folder; cifar10_jpeg: its archive
    image_size: int | None = None  # folder datasets: centre-crop and resize every image to N x N
    batch_size: int = 144
    epochs: int = 25
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # "cosine": decay to 5% of learning_rate over all epochs (better final NLL)
    ema_decay: float = 0.0  # > 0: test, save and export an exponential moving average of the weights (Polyak)
    save_path: str = "models"
    run_name: str | None = None
    precision: str = "auto"
    seed: int = 0
    train_examples: int | None = None  # use only the first N training images (quick runs, tests)
    test_examples: int | None = None
    strategy: str = "auto"  # tf.distribute: auto | one | mirrored | multiworker (TF_CONFIG) | tpu
    tpu: str | None = None  # TPU name or grpc:// address for strategy tpu ("local" on a TPU VM)
    tensorboard: bool = True  # event files in <run>/tensorboard: losses, learning rate, images/s, samples
    connect_timeout: float = 120.0  # seconds a worker waits for its peers (or a TPU) before one error line

    def validate(self) -> "TrainConfig":
        self.model.validate(output=False)
        if self.batch_size < 1:
            raise UserError(f"batch_size must be positive, got {self.batch_size}")
        if self.epochs < 1:
            raise UserError(f"epochs must be positive, got {self.epochs}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise UserError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not 0.0 <= self.ema_decay < 1.0 or isinstance(self.ema_decay, bool):
            raise UserError(f"ema_decay must be in [0, 1) (0: no weight averaging), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.run_name is not None:
            check_run_name(self.run_name)
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not (self.connect_timeout > 0 and math.isfinite(self.connect_timeout)):
            raise UserError(f"connect_timeout must be a positive number of seconds, got {self.connect_timeout}")
        for name in ("train_examples", "test_examples", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be positive, got {value}")
        self.model.distribution  # last: the output distribution's checks import numpy
        return self

    @property
    def run_dir(self) -> str:
        m = self.model
        output = "" if m.output == "softmax" else f"_{m.output}{m.mixtures or ''}"
        name = self.run_name or f"{self.dataset}_{m.architecture}_L{m.levels}{output}"
        return os.path.join(self.save_path, name)


def check_run_name(name: str) -> None:
    """A run name is one folder name inside save_path: no separators, no '..', not absolute."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise UserError(f"run name {name!r} must be a single folder name (no '/', not '.' or '..'), kept inside the save path")


def apply_overrides(config: TrainConfig, overrides: dict) -> TrainConfig:
    """Set fields from a nested dict ({"model": {...}, "epochs": 3}), rejecting unknown names."""
    for key, value in overrides.items():
        if key == "model":
            model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
            for model_key, model_value in value.items():
                if model_key not in model_fields:
                    raise UserError(f"unknown model setting {model_key!r}")
                setattr(config.model, model_key, model_value)
        elif key in {f.name for f in dataclasses.fields(TrainConfig)}:
            setattr(config, key, value)
        else:
            raise UserError(f"unknown training setting {key!r}")
    return config


def to_dict(config: TrainConfig | ModelConfig) -> dict:
    return dataclasses.asdict(config)


def model_config_from_dict(data: dict) -> ModelConfig:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"unknown model setting {unknown[0]!r} in config")
    return ModelConfig(**data).validate()


def train_config_from_dict(data: dict) -> TrainConfig:
    data = dict(data)
    model = model_config_from_dict(data.pop("model", {}))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"unknown training setting {unknown[0]!r} in config")
    return TrainConfig(model=model, **data).validate()


def save_config(config: TrainConfig, directory: str) -> str:
    """Write config.json atomically into directory and return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CONFIG_FILE)
    write_json_atomic(path, to_dict(config))
    return path


def load_config(directory: str) -> TrainConfig:
    path = os.path.join(directory, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f"no {CONFIG_FILE} in {directory}: not a checkpoint directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model", {}), dict):
        raise UserError(f"{path} does not hold a training config")
    try:
        return train_config_from_dict(data)
    except TypeError as e:
        raise UserError(f"{path} does not hold a valid training config: {e}") from None

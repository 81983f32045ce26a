"""Train a PixelCNN: `python train.py [config/config_train.txt] [--preset quick] [--epochs N] ...`."""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pixelcnn_tf.config import ARCHITECTURES, LR_SCHEDULES, PRECISIONS, STRATEGIES, apply_overrides  # noqa: E402
from pixelcnn_tf.errors import ArgumentParser, UserError, import_tensorflow_quietly, run_cli  # noqa: E402
from pixelcnn_tf.presets import PRESETS, preset  # noqa: E402
from serve.names import OUTPUT_NAMES  # noqa: E402

# flag -> (destination in TrainConfig, type); "model." destinations go into the model config.
FLAGS = {
    "--dataset": ("dataset", str),
    "--data-dir": ("data_dir", str),
    "--image-size": ("image_size", int),
    "--batch-size": ("batch_size", int),
    "--epochs": ("epochs", int),
    "--learning-rate": ("learning_rate", float),
    "--lr-schedule": ("lr_schedule", str),
    "--ema-decay": ("ema_decay", float),
    "--save-path": ("save_path", str),
    "--run-name": ("run_name", str),
    "--precision": ("precision", str),
    "--seed": ("seed", int),
    "--train-examples": ("train_examples", int),
    "--test-examples": ("test_examples", int),
    "--strategy": ("strategy", str),
    "--tpu": ("tpu", str),
    "--connect-timeout": ("connect_timeout", float),
    "--architecture": ("model.architecture", str),
    "--levels": ("model.levels", int),
    "--num-layers": ("model.num_layers", int),
    "--kernel-size": ("model.kernel_size", int),
    "--filters": ("model.filters", int),
    "--output": ("model.output", str),
    "--mixtures": ("model.mixtures", int),
}


def parse_args(argv):
    parser = ArgumentParser(prog="train.py", description="Train a PixelCNN on a tensorflow-datasets image set or a folder of images.")
    parser.add_argument("config", nargs="?", help="seed-style INI file, e.g. config/config_train.txt")
    parser.add_argument("--preset", default="seed", choices=sorted(PRESETS), help="starting configuration (default: seed)")
    parser.add_argument("--conditional", action="store_true", help="condition on the dataset's class labels")
    parser.add_argument(
        "--overwrite", action="store_true", help="start the run afresh even if its folder holds epochs (default: continue it)"
    )
    parser.add_argument(
        "--tensorboard", action=argparse.BooleanOptionalAction, default=None,
        help="TensorBoard event files in <run>/tensorboard (default: on; `tensorboard --logdir models`)",
    )
    for flag, (destination, kind) in FLAGS.items():
        extra = {}
        if flag == "--precision":
            extra["choices"] = PRECISIONS
        if flag == "--architecture":
            extra["choices"] = ARCHITECTURES
        if flag == "--lr-schedule":
            extra["choices"] = LR_SCHEDULES
        if flag == "--strategy":
            extra["choices"] = STRATEGIES
        if flag == "--output":
            extra["choices"] = OUTPUT_NAMES
            extra["help"] = "the output distribution (default softmax; logistic_mixture takes --mixtures K): docs/distributions.md"
        parser.add_argument(flag, type=kind, dest=destination.replace(".", "__"), metavar=kind.__name__.upper(), **extra)
    return parser.parse_args(argv)


def build_config(args):
    """The TrainConfig of the arguments, validated (no TensorFlow needed)."""
    from pixelcnn_tf.datasets.catalog import dataset_spec
    from pixelcnn_tf.ini import read_train_ini
    from pixelcnn_tf.run.footprint import check_fits

    config = preset(args.preset)
    if args.config:
        apply_overrides(config, read_train_ini(args.config))
    flags = {"model": {}}
    for destination, _ in FLAGS.values():
        value = getattr(args, destination.replace(".", "__"))
        if value is None:
            continue
        if destination.startswith("model."):
            flags["model"][destination.split(".", 1)[1]] = value
        else:
            flags[destination] = value
    if args.tensorboard is not None:
        flags["tensorboard"] = args.tensorboard
    apply_overrides(config, flags)
    config.validate()  # a bad --image-size is refused before a folder is scanned
    if config.dataset == "folder" and config.data_dir:
        config.data_dir = os.path.abspath(config.data_dir)  # config.json must find it from any working directory
    spec = dataset_spec(config.dataset, config.data_dir, config.image_size)
    config.model.height, config.model.width, config.model.channels = spec.height, spec.width, spec.channels
    if args.conditional and spec.num_classes < 2:
        raise UserError(f"--conditional needs class folders ({config.data_dir}/train/<class>/), and this folder has none")
    config.model.num_classes = spec.num_classes if args.conditional else 0
    config.validate()
    check_fits(config)
    return config


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (bad input: one error line on stderr and 2)."""
    return run_cli(lambda: _main(argv), "train.py")


def _main(argv) -> int:
    from pixelcnn_tf.distribute.cluster import check_own_port, read_task, resolve_strategy
    from pixelcnn_tf.run.folder import RunFolder

    args = parse_args(argv)
    config = build_config(args)
    task = read_task()  # TF_CONFIG: this process's place in a multi-worker cluster (None: one process)
    resolve_strategy(config.strategy, task, config.tpu)
    check_own_port(task)
    # Every check of the folder (and its lock) before TensorFlow: bad input is answered in well under a second.
    # Only the chief writes the run folder; the other workers read which epoch to resume at from it.
    run = RunFolder.open(config, args.overwrite, worker=bool(task and not task.is_chief))
    if run.complete:
        run.close()
        print(
            f"{config.run_dir} is complete: {run.epochs_done} epoch(s), --epochs {config.epochs}; nothing to do "
            f"(a larger --epochs continues it, --overwrite starts it again)"
        )
        return 0
    try:
        import_tensorflow_quietly()
        from pixelcnn_tf.run.training import train
    except BaseException:
        run.abandon()
        raise
    start = f"continuing from epoch {run.epochs_done}" if run.epochs_done else "training"
    print(f"{start}: {config.model.architecture} on {config.dataset} -> {config.run_dir}")
    try:
        history = train(config, run=run)
    finally:
        run.close()
    epochs_run = len(history.history.get("loss", []))
    print(f"done: {epochs_run} epoch(s) this run, {run.epochs_done} in all; checkpoint, config and loss tables in {config.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

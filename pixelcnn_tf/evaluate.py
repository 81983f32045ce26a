"""Exact NLL of a checkpoint or export over a data split: `python -m pixelcnn_tf.evaluate --checkpoint RUN|EXPORT`."""
from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pixelcnn_tf.errors import ArgumentParser, UserError, first_line, import_tensorflow_quietly, run_cli  # noqa: E402
from pixelcnn_tf.files import check_output_file, write_json_atomic  # noqa: E402
from pixelcnn_tf.run.folder import check_averaged, inspect_checkpoint  # noqa: E402
from serve.backends import BACKENDS, CHECKPOINT, EXPORT_DEFAULT, NAMES  # noqa: E402
from serve.manifest import read_manifest  # noqa: E402
from serve.metadata import is_export_dir  # noqa: E402


def parse_args(argv):
    parser = ArgumentParser(
        prog="python -m pixelcnn_tf.evaluate", description="Score a PixelCNN checkpoint or export: nats/image and bits/dim."
    )
    parser.add_argument("--checkpoint", help="run directory, its model.keras, a folder of runs (newest), or an export directory; default: models/")
    parser.add_argument("--backend", choices=NAMES, metavar="|".join(NAMES),
                        help=f"{CHECKPOINT} for a training run; for an export directory: {EXPORT_DEFAULT} (default) or "
                        "another it has files for (serve.Sampler.nll; keras = savedmodel there)")
    parser.add_argument("--split", default="test", help="tfds split, e.g. test, train, test[:1000] (default: test)")
    parser.add_argument("--batch-size", type=int, default=144, help="images per forward pass (default 144)")
    parser.add_argument("--examples", type=int, help="score only the first N images of the split (default: all)")
    parser.add_argument("--data-dir", help="TFDS data directory (default: the run's, then TFDS_DATA_DIR); an export of a "
                        "binarized MNIST model reads --split test from data/ instead (no TensorFlow)")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument(
        "--weights", choices=("saved", "raw"), default="saved",
        help="saved: the checkpoint's weights (the average, for a run with --ema-decay); raw: that run's un-averaged weights",
    )
    return parser.parse_args(argv)


def per_image_nll_fn(model, model_config):
    """A compiled inference-mode pass giving each image's NLL in nats under the model's output distribution, float64
    from the head on."""
    import tensorflow as tf

    from pixelcnn_tf.distributions import tf_distribution

    output = tf_distribution(model_config.distribution)
    conditional = bool(model_config.num_classes)

    def nll(inputs, targets):
        return output.nll_per_image(tf.cast(model(inputs, training=False), tf.float64), targets)

    height, width, channels = model.input["image"].shape[1:]
    inputs_spec = {"image": tf.TensorSpec((None, height, width, channels), tf.float32)}
    if conditional:
        inputs_spec["label"] = tf.TensorSpec((None,), tf.int32)
    targets_spec = tf.TensorSpec((None, height, width, channels), tf.int32)
    return tf.function(nll, input_signature=[inputs_spec, targets_spec])


def check_options(split: str, batch_size: int, examples: int | None) -> None:
    if batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    if examples is not None and examples < 1:
        raise UserError(f"--examples must be positive, got {examples}")
    if not split.strip():
        raise UserError("--split must not be empty")


def evaluate(model, config, *, split: str = "test", batch_size: int = 144, examples: int | None = None, data_dir=None) -> dict:
    """Score a loaded model on a split: the sum of exact per-image NLLs, divided once at the end."""
    import tensorflow as tf

    from pixelcnn_tf.datasets import pipeline as data

    check_options(split, batch_size, examples)
    m = config.model
    conditional = bool(m.num_classes)
    pairs = data.load_split(config.dataset, split, levels=m.levels, data_dir=data_dir or config.data_dir, take=examples,
                             image_size=config.image_size)
    batches = data.fit_dataset(pairs, batch_size=batch_size, conditional=conditional)
    nll = per_image_nll_fn(model, m)
    started = time.perf_counter()
    per_image = []
    try:
        for inputs, targets in batches:
            per_image.extend(nll(inputs, targets).numpy().tolist())
    except tf.errors.DataLossError as e:
        raise data.damaged(e, config.dataset) from None
    return summary(per_image, config.dataset, split, m.levels, m.dims, started)


def evaluate_export(export_dir: str, backend: str = EXPORT_DEFAULT, *, split: str = "test", batch_size: int = 144,
                    examples: int | None = None, data_dir=None) -> dict:
    """Score an export through serve.Sampler.nll (onnxruntime, LiteRT or numpy): the same per-image sums as evaluate().

    The binarized MNIST test split comes from the shipped file (pixelcnn_tf.datasets.binarized_mnist, no TensorFlow); any
    other split or dataset through tfds and tf.data, as evaluate() reads it.
    """
    from pixelcnn_tf.datasets import binarized_mnist
    from serve import Sampler, ServeError

    check_options(split, batch_size, examples)
    row = BACKENDS[backend]
    try:
        if row.tensorflow:  # an export's SavedModel, as generate.py runs it (keras = savedmodel)
            import_tensorflow_quietly()
            from export.savedmodel import savedmodel_sampler

            sampler = savedmodel_sampler(export_dir)
        else:
            # naive: the full model only (no sampler graph to load); numpy has none and scores with its step model.
            sampler = Sampler.load(export_dir, backend, sampler="naive" if row.artifact else None)
    except ServeError as e:
        raise UserError(str(e)) from None
    dataset, spec = sampler.manifest.dataset or "mnist", sampler.spec
    conditional = bool(spec.num_classes)
    if binarized_mnist.covers(dataset, spec.levels, split):
        images, labels = binarized_mnist.load(examples)
        started = time.perf_counter()
        per_image = sampler.nll(images, labels if conditional else None, batch_size).tolist()
    else:
        started, per_image = _score_through_tensorflow(sampler, dataset, split, batch_size, examples, data_dir)
    return summary(per_image, dataset, split, spec.levels, spec.dims, started)


def _score_through_tensorflow(sampler, dataset: str, split: str, batch_size: int, examples, data_dir):
    from pixelcnn_tf.datasets.binarized_mnist import SHIPPED

    spec = sampler.spec
    try:
        import_tensorflow_quietly()
    except ImportError as e:
        raise UserError(
            f"scoring {dataset} ({spec.levels} levels, split {split!r}) reads it with TensorFlow (tfds, tf.data), which "
            f"cannot be imported here ({first_line(e)}); install it (pip install -r requirements.txt) - without it, "
            f"evaluate scores binarized MNIST's --split test (shipped in {SHIPPED})"
        ) from None
    import tensorflow as tf

    from pixelcnn_tf.datasets import pipeline as data

    pairs = data.load_split(dataset, split, levels=spec.levels, data_dir=data_dir, take=examples).batch(batch_size)
    started = time.perf_counter()
    per_image = []
    try:
        for images, labels in pairs.as_numpy_iterator():
            per_image.extend(sampler.nll(images, labels if spec.num_classes else None, batch_size).tolist())
    except tf.errors.DataLossError as e:
        raise data.damaged(e, dataset) from None
    return started, per_image


def summary(per_image: list[float], dataset: str, split: str, levels: int, dims: int, started: float) -> dict:
    if not per_image:
        raise UserError(f"split {split!r} of {dataset} holds no images")
    total = math.fsum(per_image)  # exact sum of the float64 per-image values, whatever the batching
    nats = total / len(per_image)
    return {
        "dataset": dataset,
        "split": split,
        "examples": len(per_image),
        "levels": levels,
        "dims": dims,
        "total_nats": total,
        "nats_per_image": nats,
        "bits_per_dim": nats / (dims * math.log(2.0)),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _main(argv) -> int:
    args = parse_args(argv)
    # Everything that needs no TensorFlow first: bad input is answered in well under a second.
    check_options(args.split, args.batch_size, args.examples)
    if args.out:
        check_output_file(args.out, "--out")
    if args.checkpoint and is_export_dir(args.checkpoint):
        result = _score_export(args)
    else:
        result = _score_checkpoint(args)
    print(
        f"{result['dataset']} {result['split']} ({result['examples']} images): "
        f"{result['nats_per_image']:.3f} nats/image, {result['bits_per_dim']:.4f} bits/dim"
    )
    if args.out:
        write_json_atomic(args.out, result)
    return 0


def _score_checkpoint(args) -> dict:
    if args.backend not in (None, CHECKPOINT):
        raise UserError(f"--backend {args.backend} scores an export directory (one with metadata.json); "
                        f"{args.checkpoint or 'models'} is a training run, scored with keras")
    run_dir, config, _ = inspect_checkpoint(args.checkpoint)
    raw = args.weights == "raw"
    if raw:
        check_averaged(config, run_dir)

    import_tensorflow_quietly()
    from pixelcnn_tf.run.checkpoints import float32_model, load_checkpoint

    model, config, run_dir = load_checkpoint(args.checkpoint, raw=raw)
    model = float32_model(model, config)  # a mixed-precision run is scored in float32, as its exports compute
    result = {"checkpoint": run_dir, "architecture": config.model.architecture, "weights": args.weights}
    return result | evaluate(model, config, split=args.split, batch_size=args.batch_size, examples=args.examples,
                             data_dir=args.data_dir)


def _score_export(args) -> dict:
    if args.weights == "raw":
        raise UserError(f"--weights raw needs the training run: the export {args.checkpoint} holds only its shipped weights")
    backend = args.backend or EXPORT_DEFAULT
    result = evaluate_export(args.checkpoint, backend, split=args.split, batch_size=args.batch_size,
                             examples=args.examples, data_dir=args.data_dir)
    architecture = read_manifest(args.checkpoint).model_config.get("architecture")
    return {"checkpoint": args.checkpoint, "architecture": architecture, "backend": backend, "weights": "saved"} | result


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (bad input: one error line on stderr and 2)."""
    return run_cli(lambda: _main(argv), "python -m pixelcnn_tf.evaluate")


if __name__ == "__main__":
    sys.exit(main())

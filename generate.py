"""Sample images from a trained PixelCNN into a grid PNG: `python generate.py [config/config_generate.txt] [--seed N] ...`."""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pixelcnn_tf.errors import ArgumentParser, UserError, import_tensorflow_quietly, run_cli  # noqa: E402


# Shipped with the repository, so a fresh clone can sample before training anything.
PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "gated_mnist")
TENSORFLOW_BACKENDS = ("keras", "savedmodel")
BACKENDS = TENSORFLOW_BACKENDS + ("onnx", "tflite", "tflite_float16", "tflite_dynamic", "tflite_int8", "numpy")


def parse_args(argv):
    parser = ArgumentParser(prog="generate.py", description="Sample a grid of images from a PixelCNN checkpoint or export directory.")
    parser.add_argument("config", nargs="?", help="seed-style INI file, e.g. config/config_generate.txt")
    parser.add_argument("--checkpoint", help="run directory, its model.keras, a folder of runs (newest), or an export directory; default: models/")
    parser.add_argument("--num-images", type=int, help="how many images (default 144: a 12x12 grid)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: all at once)")
    parser.add_argument("--label", help="class to draw for a conditional model: an id, or 'all' for one class per row")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="keras (a checkpoint; default there), or for an export directory: onnx (default there), tflite, "
        "a quantized tflite_float16/tflite_dynamic/tflite_int8, numpy (the step model, cached only) or savedmodel "
        "(keras = savedmodel there)",
    )
    parser.add_argument(
        "--sampler",
        choices=("cached", "naive"),
        default="cached",
        help="cached (default): one step-model call per sub-pixel, the same images as naive (one full forward pass per "
        "sub-pixel) much faster; falls back to naive, with a note, where there is no step model (savedmodel, quantized tflite)",
    )
    parser.add_argument("--out", default="sample.png", help="output PNG (default sample.png)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def resolve_labels(label: str | None, num_images: int, num_classes: int, columns: int):
    """--label N -> N for every image; --label all -> class r on grid row r (cycling)."""
    import numpy as np

    if label is None:
        return None
    if not num_classes:
        raise UserError("--label given, but this model is not class-conditional")
    if label == "all":
        return (np.arange(num_images) // columns % num_classes).astype(np.int32)
    try:
        value = int(label)
    except ValueError:
        raise UserError(f"--label must be a class id or 'all', got {label!r}") from None
    if not 0 <= value < num_classes:
        raise UserError(f"--label must be in 0..{num_classes - 1}, got {value}")
    return np.full(num_images, value, dtype=np.int32)


def check_output_path(path: str) -> None:
    from pixelcnn_tf.files import check_output_file

    if not path.lower().endswith(".png"):
        raise UserError(f"--out must name a .png file, got {path}")
    check_output_file(path, "--out")


def load_sampler(path: str | None, backend: str | None, sampler: str = "naive"):
    """(Sampler, source, note) for a checkpoint (keras) or an export directory (savedmodel, onnx, tflite, numpy...).

    sampler 'cached' falls back to naive where the model or backend has no step model; note then says so (else None).
    """
    from serve import Sampler
    from serve.metadata import is_export_dir, read_metadata
    from serve.step_loader import step_artifact

    fallback = None
    if not (path and is_export_dir(path)):
        from pixelcnn_tf.run_folder import inspect_checkpoint

        backend = backend or "keras"
        if backend != "keras":
            raise UserError(
                f"--backend {backend} needs an export directory (one with metadata.json), and {path or 'models'} is none; "
                f"make one with `python -m export --checkpoint {path or 'models'} --out exports/NAME`"
            )
        inspect_checkpoint(path)  # a missing, damaged or mismatched checkpoint is refused before TensorFlow loads
        import_tensorflow_quietly()
        from pixelcnn_tf.checkpoints import load_checkpoint
        from pixelcnn_tf.generation import keras_sampler

        model, config, run_dir = load_checkpoint(path)
        return keras_sampler(model, config.model, sampler), run_dir, None
    backend = backend or "onnx"
    if backend in TENSORFLOW_BACKENDS:
        import_tensorflow_quietly()
        # An export holds no .keras file: both TensorFlow backends run its SavedModel's serving signature.
        from pixelcnn_tf.generation import savedmodel_sampler

        if sampler == "cached":
            fallback = f"--backend {backend} of an export has no step model (onnx, tflite and numpy have)"
        return savedmodel_sampler(path), path, _note(fallback)
    if sampler == "cached" and not step_artifact(read_metadata(path), backend):
        fallback, sampler = f"{path} has no step model for --backend {backend}", "naive"
    return Sampler.load(path, backend, sampler=sampler), path, _note(fallback)


def default_source(default_root: str = "models") -> str | None:
    """No --checkpoint: the newest run under models/, else the shipped pretrained export (None: neither)."""
    has_runs = os.path.isdir(default_root) and any(
        os.path.isfile(os.path.join(default_root, name, "model.keras")) for name in os.listdir(default_root)
    )
    if not has_runs and os.path.isfile(os.path.join(PRETRAINED, "metadata.json")):
        print(f"generate.py: note: no trained run under {default_root}/; sampling the shipped {PRETRAINED}", file=sys.stderr)
        return PRETRAINED
    return None


def _note(reason: str | None) -> str | None:
    return f"generate.py: note: {reason}; sampling naively (the same images, slower)" if reason else None


def _main(argv) -> int:
    import math

    args = parse_args(argv)
    if args.backend == "numpy":
        # The cached numpy step is many small matmuls: one BLAS thread is ~10x faster than several.
        # Only effective before numpy is first imported, which the CLI has not done yet.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    settings = {"load_path": None, "num_images": 144, "image_size": None}
    if args.config:
        from pixelcnn_tf.ini import read_generate_ini

        settings.update(read_generate_ini(args.config))
    checkpoint = args.checkpoint or settings["load_path"] or default_source()
    num_images = args.num_images if args.num_images is not None else settings["num_images"]
    if num_images < 1:
        raise UserError(f"--num-images must be positive, got {num_images}")
    check_output_path(args.out)
    if args.label is not None and args.label != "all" and not args.label.strip().lstrip("-").isdigit():
        raise UserError(f"--label must be a class id or 'all', got {args.label!r}")

    from serve import SamplingError, ServeError
    from serve.sampling import check_request, check_seed, to_grid

    from pixelcnn_tf.png import write_png

    try:
        check_request(num_images, args.temperature, args.batch_size)  # before minutes of model loading
        check_seed(args.seed)
        sampler, source, note = load_sampler(checkpoint, args.backend, args.sampler)
    except (SamplingError, ServeError) as e:
        raise UserError(str(e)) from None
    if note:
        print(note, file=sys.stderr)
    m = sampler.spec
    if settings["image_size"] is not None and settings["image_size"] != m.height:
        raise UserError(f"images_size = {settings['image_size']} but the checkpoint draws {m.height}x{m.width} images")
    columns = math.ceil(math.sqrt(num_images))
    labels = resolve_labels(args.label, num_images, m.num_classes, columns)
    if m.num_classes and labels is None:
        raise UserError(f"this model is class-conditional: pass --label 0..{m.num_classes - 1} or --label all")

    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=num_images * m.dims, unit="sub-px", desc="sampling", file=sys.stderr)
        progress = bar.update
    try:
        images = sampler.sample(
            num_images,
            seed=args.seed,
            temperature=args.temperature,
            labels=labels,
            batch_size=args.batch_size,
            progress=progress,
        )
    except SamplingError as e:
        raise UserError(str(e)) from None
    finally:
        if progress:
            bar.close()
    write_png(to_grid(images, m.levels, columns), args.out)
    print(f"wrote {num_images} samples from {source} ({sampler.backend}) with {sampler.sampler} sampling to {args.out}")
    return 0


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (bad input: one error line on stderr and 2)."""
    return run_cli(lambda: _main(argv), "generate.py")


if __name__ == "__main__":
    sys.exit(main())

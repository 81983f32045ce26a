"""Sample images from a trained PixelCNN into a grid PNG: `python generate.py [config/config_generate.txt] [--seed N] ...`."""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pixelcnn_tf.errors import ArgumentParser, UserError, import_tensorflow_quietly, run_cli  # noqa: E402
from serve.backends import BACKENDS, CHECKPOINT, EXPORT_DEFAULT, NAMES, STEP_EXPORTS, TENSORFLOW  # noqa: E402

# Shipped with the repository, so a fresh clone can sample before training anything.
PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "gated_mnist")


def parse_args(argv):
    parser = ArgumentParser(prog="generate.py", description="Sample a grid of images from a PixelCNN checkpoint or export directory.")
    parser.add_argument("config", nargs="?", help="seed-style INI file, e.g. config/config_generate.txt")
    parser.add_argument("--checkpoint", help="run directory, its model.keras, a folder of runs (newest), or an export directory; default: models/")
    parser.add_argument("--num-images", type=int, help="how many images (default 144: a 12x12 grid)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: all at once)")
    parser.add_argument("--label", help="class to draw for a conditional model: an id, a class name the model knows "
                        "(e.g. cat), or 'all' for one class per row")
    parser.add_argument(
        "--backend",
        choices=NAMES,
        help=f"{CHECKPOINT} (a checkpoint; default there), or for an export directory: {EXPORT_DEFAULT} (default "
        f"there) or any of {', '.join(NAMES)} it has files for (serve/backends.py; {' = '.join(TENSORFLOW)} there)",
    )
    parser.add_argument(
        "--sampler",
        choices=("graph", "cached", "naive"),
        help="graph: the exported sampler graph, one runtime call per batch; cached: one step-model call per sub-pixel; "
        "naive: one full forward pass per sub-pixel. All draw the same images. Default: the fastest the export has "
        "(graph, else cached, else naive); cached for a checkpoint. A missing one falls back, with a note",
    )
    parser.add_argument("--complete", metavar="PNG|JPEG|test",
                        help="complete images instead of sampling: a PNG of one image or a grid of them, any other picture "
                        "(centre-cropped and resized to the model's size), or 'test' for --num-images test images "
                        "(default 8); the grid shows each kept part, its completions and the original")
    parser.add_argument("--keep-rows", type=int, help="with --complete: rows kept from the top (default half the image)")
    parser.add_argument("--completions", type=int, default=4, help="with --complete: completions per image (default 4)")
    parser.add_argument("--animate", metavar="GIF", help="also write a GIF of the grid being drawn in raster order")
    parser.add_argument("--animate-rows", type=int, default=2, help="rows drawn between two GIF frames (default 2)")
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
        raise UserError(f"--label must be a class id, a class name of the model or 'all', got {label!r}") from None
    if not 0 <= value < num_classes:
        raise UserError(f"--label must be in 0..{num_classes - 1}, got {value}")
    return np.full(num_images, value, dtype=np.int32)


def check_output_path(path: str) -> None:
    from pixelcnn_tf.files import check_output_file

    if not path.lower().endswith(".png"):
        raise UserError(f"--out must name a .png file, got {path}")
    check_output_file(path, "--out")


def load_sampler(path: str | None, backend: str | None, sampler: str | None = "naive", precheck=None):
    """(Sampler, source, note) for a checkpoint (keras) or an export directory (savedmodel, onnx, tflite, numpy...).

    sampler 'graph' falls back to cached and 'cached' to naive where the export lacks them; note then says so (else
    None). sampler None: the fastest the export has (cached for a checkpoint). precheck(height, num_classes,
    class_names) runs on the model's config.json or metadata.json before TensorFlow or any model loads (class_names:
    a function, called only for a --label that names a class).
    """
    from serve import Sampler
    from serve.manifest import read_manifest
    from serve.metadata import is_export_dir
    from serve.step_loader import step_artifact

    fallback = None
    if not (path and is_export_dir(path)):
        from pixelcnn_tf.run.folder import inspect_checkpoint

        backend = backend or CHECKPOINT
        # A missing, damaged or mismatched checkpoint is refused before TensorFlow loads; so are flags the model refuses.
        run_dir, config, _ = inspect_checkpoint(path)
        if backend != CHECKPOINT:
            name = os.path.basename(os.path.normpath(run_dir))
            raise UserError(
                f"--backend {backend} needs an export directory (one with metadata.json), and {run_dir} is a training run; "
                f"make one with `python -m export --checkpoint {run_dir} --out exports/{name}`, then pass --checkpoint exports/{name}"
            )
        if precheck:
            from pixelcnn_tf.datasets.catalog import known_class_names

            precheck(config.model.height, config.model.num_classes, lambda: known_class_names(config))
        import_tensorflow_quietly()
        from pixelcnn_tf.generation import keras_sampler
        from pixelcnn_tf.run.checkpoints import load_checkpoint

        model, config, run_dir = load_checkpoint(path)
        keras = keras_sampler(model, config.model, sampler or "cached")
        # What --complete test reads: the run's own dataset (an export's manifest names only the dataset).
        keras.run_data = {"dataset": config.dataset, "data_dir": config.data_dir, "image_size": config.image_size}
        return keras, run_dir, None
    backend = backend or EXPORT_DEFAULT
    manifest = read_manifest(path)
    if precheck:
        precheck(manifest.height, manifest.num_classes, lambda: tuple(manifest.class_names or ()))
    if BACKENDS[backend].tensorflow:
        import_tensorflow_quietly()
        # An export holds no .keras file: both TensorFlow backends run its SavedModel's serving signature.
        from export.savedmodel import savedmodel_sampler

        if sampler != "naive":
            fallback = f"--backend {backend} of an export has no step model ({', '.join(STEP_EXPORTS)} have)"
        return savedmodel_sampler(path), path, _note(fallback)
    if sampler is None:  # the fastest there is; without a step model either, a note says it samples naively
        sampler = "graph" if manifest.graph_file(backend) else "cached"
    if sampler == "graph" and not manifest.graph_file(backend):
        fallback, sampler = f"{path} has no sampler graph for --backend {backend}", "cached"
    if sampler == "cached" and not step_artifact(manifest, backend):
        fallback, sampler = f"{path} has no step model for --backend {backend}" if not fallback else fallback, "naive"
    return Sampler.load(path, backend, sampler=sampler), path, _note(fallback, sampler)


def default_source(default_root: str = "models") -> str | None:
    """No --checkpoint: the newest run under models/, else the shipped pretrained export (None: neither)."""
    from pixelcnn_tf.run.aside import holds_run

    # holds_run: a run an --overwrite was killed in still holds its old run (aside), and it is sampled, not skipped.
    has_runs = os.path.isdir(default_root) and any(holds_run(os.path.join(default_root, name)) for name in os.listdir(default_root))
    if not has_runs and os.path.isfile(os.path.join(PRETRAINED, "metadata.json")):
        print(f"generate.py: note: no trained run under {default_root}/; sampling the shipped {PRETRAINED}", file=sys.stderr)
        return PRETRAINED
    return None


def _note(reason: str | None, sampler: str = "naive") -> str | None:
    how = "naively" if sampler == "naive" else f"with the {sampler} sampler"
    return f"generate.py: note: {reason}; sampling {how} (the same images, slower)" if reason else None


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
    num_images = args.num_images if args.num_images is not None else 8 if args.complete else settings["num_images"]
    if num_images < 1:
        raise UserError(f"--num-images must be positive, got {num_images}")
    check_modes(args)
    check_output_path(args.out)

    from pixelcnn_tf.png import write_png
    from serve import SamplingError, ServeError
    from serve.sampling import check_request, check_seed, to_grid

    try:
        check_request(num_images, args.temperature, args.batch_size)  # before minutes of model loading
        check_seed(args.seed)
        sampler, source, note = load_sampler(checkpoint, args.backend, args.sampler,
                                             lambda *model: check_against_model(args, settings, *model))
    except (SamplingError, ServeError) as e:
        raise UserError(str(e)) from None
    if note:
        print(note, file=sys.stderr)
    m = sampler.spec
    originals, test_labels = load_originals(args.complete, sampler, num_images) if args.complete else (None, None)
    count = num_images if originals is None else len(originals)
    columns = math.ceil(math.sqrt(count))
    labels = resolve_labels(args.label, count, m.num_classes, columns)
    labels = test_labels if labels is None and args.complete == "test" else labels
    if m.num_classes and labels is None:
        raise UserError(f"this model is class-conditional: pass --label 0..{m.num_classes - 1} or --label all")

    total = count * (args.completions if args.complete else 1)
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total * m.dims, unit="sub-px", desc="completing" if args.complete else "sampling", file=sys.stderr)
        progress = bar.update
    try:
        if args.complete:
            keep = m.height // 2 if args.keep_rows is None else args.keep_rows
            images = sampler.complete(originals, keep, args.completions, seed=args.seed, temperature=args.temperature,
                                      labels=labels, batch_size=args.batch_size, progress=progress)
        else:
            images = sampler.sample(num_images, seed=args.seed, temperature=args.temperature, labels=labels,
                                    batch_size=args.batch_size, progress=progress)
    except SamplingError as e:
        raise UserError(str(e)) from None
    finally:
        if progress:
            bar.close()
    if args.complete:
        from pixelcnn_tf.figures import completion_grid

        write_png(completion_grid(originals, images, keep, m.levels), args.out)
        print(f"wrote {args.completions} completions of {count} images (top {keep} rows kept) from {source} "
              f"({sampler.backend}) with {sampler.sampler} sampling to {args.out}")
        return 0
    write_png(to_grid(images, m.levels, columns), args.out)
    if args.animate:
        from pixelcnn_tf.figures import sampling_frames, write_gif

        write_gif(sampling_frames(images, m.levels, columns, args.animate_rows), args.animate)
        print(f"wrote the raster-order animation to {args.animate}")
    print(f"wrote {num_images} samples from {source} ({sampler.backend}) with {sampler.sampler} sampling to {args.out}")
    return 0


def check_against_model(args, settings: dict, height: int, num_classes: int, class_names=tuple) -> None:
    """The flags that depend on the model, checked from its config.json or metadata.json before it loads; a class
    name in --label becomes its id (class_names() gives the model's names)."""
    if num_classes and args.label not in (None, "all") and not args.label.lstrip("-").isdigit():
        names = class_names()
        if args.label in names:
            args.label = str(names.index(args.label))
        elif names:
            raise UserError(f"--label {args.label!r} is not a class of this model; its classes: {', '.join(names)} "
                            f"(or ids 0..{num_classes - 1}, or all)")
    if settings["image_size"] is not None and settings["image_size"] != height:
        raise UserError(f"images_size = {settings['image_size']} but the checkpoint draws images {height} pixels high")
    if args.keep_rows is not None and args.keep_rows > height:
        raise UserError(f"--keep-rows must be at most the image height {height}, got {args.keep_rows}")
    resolve_labels(args.label, 1, num_classes, 1)
    if num_classes and args.label is None and args.complete != "test":
        raise UserError(f"this model is class-conditional: pass --label 0..{num_classes - 1} or --label all")


def check_modes(args) -> None:
    """The completion and animation flags: consistent, and their files writable, before any model loads."""
    if args.complete is None and args.keep_rows is not None:
        raise UserError("--keep-rows needs --complete")
    if args.complete and args.animate:
        raise UserError("--animate shows sampling from scratch; it does not combine with --complete")
    if args.completions < 1 or args.animate_rows < 1:
        raise UserError("--completions and --animate-rows must be positive")
    if args.keep_rows is not None and args.keep_rows < 0:
        raise UserError(f"--keep-rows must be at least 0, got {args.keep_rows}")
    if args.complete and args.complete != "test" and not os.path.isfile(args.complete):
        raise UserError(f"--complete {args.complete}: no such file (give a PNG or JPEG, or 'test' for test images)")
    if args.animate:
        if not args.animate.lower().endswith(".gif"):
            raise UserError(f"--animate must name a .gif file, got {args.animate}")
        directory = os.path.dirname(os.path.abspath(args.animate))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise UserError(f"output folder {directory} for --animate does not exist or is not writable")


def load_originals(source: str, sampler, count: int):
    """(images, labels or None) to complete: the first count test images of the model's dataset, or a PNG's tiles."""
    m = sampler.spec
    if source != "test":
        from pixelcnn_tf.figures import read_png_images

        images, note = read_png_images(source, m.shape, m.levels)
        if note:
            print(f"generate.py: note: {note}", file=sys.stderr)
        return images, None
    # An export's manifest names its dataset only; a checkpoint's sampler carries its run's (load_sampler).
    meta = {"dataset": sampler.manifest.dataset} if sampler.manifest else sampler.run_data
    dataset = meta.get("dataset") or "mnist"
    if dataset == "folder" and not meta.get("data_dir"):  # an export does not record the training machine's folder
        raise UserError("--complete test: this export was trained on an image folder; give --complete PICTURE.png|jpg")
    import_tensorflow_quietly()
    from pixelcnn_tf.datasets import pipeline as data

    images, labels = data.load_arrays(dataset, "test", levels=m.levels, count=count, data_dir=meta.get("data_dir"),
                                      image_size=meta.get("image_size"))
    if images.shape[1:] != m.shape:
        raise UserError(f"{dataset} test images are {images.shape[1:]}, but the model draws {m.shape}")
    return images.astype("uint8"), (labels.astype("int32") if m.num_classes else None)


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (bad input: one error line on stderr and 2)."""
    return run_cli(lambda: _main(argv), "generate.py")


if __name__ == "__main__":
    sys.exit(main())

"""CLI: `python -m export --checkpoint models/<run> --out exports/<name> [--tflite-quantize float16,int8]`."""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from export.publish import check_destination, make_parents  # noqa: E402
from pixelcnn_tf.errors import ArgumentParser, import_tensorflow_quietly, run_cli  # noqa: E402
from pixelcnn_tf.run.folder import check_averaged, inspect_checkpoint  # noqa: E402
from serve.backends import QUANTIZATIONS  # noqa: E402  (the tflite_<q> rows: write_tflite's variants)

PROG = "python -m export"


def quantizations(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUANTIZATIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown quantization {', '.join(unknown) or repr(text)}; choose from {', '.join(QUANTIZATIONS)}")
    return names


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def parse_args(argv):
    parser = ArgumentParser(prog=PROG, description="Export a PixelCNN checkpoint for TensorFlow-free sampling.")
    parser.add_argument("--checkpoint", help="run directory, its model.keras, or a folder of runs (newest); default: models/")
    parser.add_argument("--out", required=True, help="export directory to create, with missing parent folders (must not exist, unless --overwrite)")
    parser.add_argument("--tflite-quantize", type=quantizations, action="append", default=[], metavar="|".join(QUANTIZATIONS),
                        help="also write quantized TFLite variants; repeatable or a comma list")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export at --out")
    parser.add_argument("--parity-images", type=positive, default=16, help="test images in the parity check (default 16)")
    parser.add_argument("--calibration-images", type=positive, default=128, help="training images for int8 calibration (default 128)")
    parser.add_argument("--weights", choices=["averaged", "raw"], default="averaged",
                        help="a run trained with --ema-decay: export its averaged weights (default) or the raw ones")
    return parser.parse_args(argv)


def _main(argv) -> int:
    args = parse_args(argv)
    quantize = list(dict.fromkeys(name for names in args.tflite_quantize for name in names))
    # Everything that needs no TensorFlow first: bad input is answered in well under a second.
    check_destination(os.path.abspath(args.out), args.overwrite)
    run_dir, config, _ = inspect_checkpoint(args.checkpoint)
    if args.weights == "raw":
        check_averaged(config, run_dir)
    make_parents(os.path.abspath(args.out))  # e.g. exports/ on a fresh clone

    import_tensorflow_quietly()
    from export.artifacts import ExportFailed
    from export.build import export_checkpoint

    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        export_checkpoint(args.checkpoint, args.out, quantize, args.overwrite, args.parity_images, args.calibration_images, log,
                          raw=args.weights == "raw")
    except ExportFailed as e:
        print(f"{PROG}: error: {e}; nothing written to {args.out}", file=sys.stderr)
        return 1
    print(f"exported {args.out}")
    return 0


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (bad input: one error line and 2; failed conversion or parity: 1)."""
    return run_cli(lambda: _main(argv), PROG)


if __name__ == "__main__":
    sys.exit(main())

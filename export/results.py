"""Record a shipped model's results.json: recipe, curve, wall time, machine, whole-split NLL with and without averaging.

`python -m export.results --checkpoint models/<run> --export pretrained/<name> --recipe "python train.py ..."`
"""
from __future__ import annotations

import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pixelcnn_tf.config import to_dict  # noqa: E402
from pixelcnn_tf.errors import ArgumentParser, UserError, import_tensorflow_quietly, run_cli  # noqa: E402
from pixelcnn_tf.files import write_json_atomic  # noqa: E402
from pixelcnn_tf.run.folder import inspect_checkpoint  # noqa: E402
from pixelcnn_tf.run.losses import read_rows  # noqa: E402

SLICE = 1000  # the first test images a test re-measures through the exports (the whole split is too slow for CI)
# How a figure on each dataset is labelled wherever it is reported (the JPEG copy is not the published CIFAR-10).
LABELS = {"mnist": "binarized MNIST", "cifar10_jpeg": "CIFAR-10 (JPEG q75 copy)", "cifar10": "CIFAR-10"}
EVALUATE = "python -m pixelcnn_tf.evaluate --checkpoint {run} [--weights raw] [--examples 1000]"


def machine() -> str:
    """The CPU the figures were measured on: model, cores and whether bf16 is native (it decides the precision)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = "AVX-512 BF16" if "avx512_bf16" in info else ("AVX-512" if "avx512f" in info else "AVX2, no AVX-512")
    return f"{os.cpu_count()}-core {model} ({flags})"


def record(run_dir: str, export_dir: str, recipe: str, slice_examples: int = SLICE, raw_shipped: bool = False) -> dict:
    """The results of the weights the export holds (averaged, or raw with raw_shipped), and of the other ones."""
    import_tensorflow_quietly()
    from pixelcnn_tf.evaluate import evaluate
    from pixelcnn_tf.run.checkpoints import float32_model, load_checkpoint

    model, config, run_dir = load_checkpoint(run_dir)
    model = float32_model(model, config)  # scored as the exports compute
    rows = read_rows(os.path.join(run_dir, "losses.csv"))
    averaged = evaluate(model, config)
    raw_model = float32_model(load_checkpoint(run_dir, raw=True)[0], config) if config.ema_decay else None
    raw = evaluate(raw_model, config) if raw_model else None
    shipped, whole = (raw_model, raw) if raw_shipped else (model, averaged)
    part = evaluate(shipped, config, examples=slice_examples)
    m = config.model
    return {
        "architecture": m.architecture, "dataset": config.dataset, "label": LABELS.get(config.dataset, config.dataset),
        "levels": m.levels, "model_config": to_dict(m),
        "parameters": int(model.count_params()), "recipe": recipe, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "lr_schedule": config.lr_schedule, "ema_decay": config.ema_decay,
        "precision": config.precision, "epochs_trained": len(rows),
        "train_seconds_per_epoch": [float(row["seconds"]) for row in rows],
        "train_minutes": round(sum(float(row["seconds"]) for row in rows) / 60, 1),
        "test_nats_per_image_per_epoch": [float(row["test_nats_per_image"]) for row in rows],
        "train_nats_per_image_per_epoch": [float(row["train_nats_per_image"]) for row in rows],
        "hardware": machine(),
        "test": {"split": "test", "examples": whole["examples"], "nats_per_image": round(whole["nats_per_image"], 4),
                 "bits_per_dim": round(whole["bits_per_dim"], 5)},
        "test_bits_per_dim_per_epoch": [float(row["test_bits_per_dim"]) for row in rows],
        "weights": "raw" if raw_shipped else "averaged" if config.ema_decay else "raw (no averaging)",
        "test_raw_weights": None if raw is None else {"examples": raw["examples"], "nats_per_image": round(raw["nats_per_image"], 4)},
        "test_averaged_weights": {"examples": averaged["examples"], "nats_per_image": round(averaged["nats_per_image"], 4)},
        "slice": {"split": "test", "examples": part["examples"], "nats_per_image": round(part["nats_per_image"], 4)},
        "evaluate_command": EVALUATE,
        "export": os.path.basename(os.path.normpath(export_dir)),
    }


def main(argv=None) -> int:
    return run_cli(lambda: _main(argv), "python -m export.results")


def _main(argv) -> int:
    parser = ArgumentParser(prog="python -m export.results", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the run folder the export was made from")
    parser.add_argument("--export", required=True, help="the export folder; results.json is written into it")
    parser.add_argument("--recipe", required=True, help="the command that trained the run, as a user would type it")
    parser.add_argument("--weights", choices=["averaged", "raw"], default="averaged",
                        help="the weights the export holds (python -m export --weights); default averaged")
    parser.add_argument("--slice", type=int, default=SLICE, help=f"first test images the tests re-measure (default {SLICE})")
    args = parser.parse_args(argv)
    run_dir, _, _ = inspect_checkpoint(args.checkpoint)
    from serve import ServeError
    from serve.manifest import read_manifest

    try:
        read_manifest(args.export)  # an export this code reads: its metadata.json present, of this format version
    except ServeError as e:
        raise UserError(str(e)) from None
    if args.slice < 1:
        raise UserError(f"--slice must be positive, got {args.slice}")
    result = record(run_dir, args.export, args.recipe, args.slice, args.weights == "raw")
    write_json_atomic(os.path.join(args.export, "results.json"), result)
    print(f"{args.export}/results.json: {result['test']['nats_per_image']:.3f} nats/image, "
          f"{result['test']['bits_per_dim']:.4f} bits/dim on the whole test split of {result['label']}"
          + (f" with the {result['weights']} weights (raw {result['test_raw_weights']['nats_per_image']:.3f}, averaged "
             f"{result['test_averaged_weights']['nats_per_image']:.3f} nats/image)" if result["test_raw_weights"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

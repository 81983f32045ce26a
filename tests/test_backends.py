"""The one backend table (serve/backends.py): what exports write, and what every CLI and benchmark offers, come from it."""
from __future__ import annotations

import ast
import glob
import os

import pytest
from helpers import ROOT

from serve import runtime
from serve.backends import (
    ARTIFACTS,
    BACKENDS,
    CHECKPOINT,
    EXPORT_DEFAULT,
    FULL,
    GRAPH_EXPORTS,
    KINDS,
    NAMES,
    QUANTIZATIONS,
    SERVED,
    STEP_EXPORTS,
    TENSORFLOW,
)
from serve.manifest import read_manifest

PRETRAINED = os.path.join(ROOT, "pretrained", "gated_mnist")


def test_every_file_an_export_writes_has_its_row():
    manifest = read_manifest(PRETRAINED)
    for name, entry in manifest.artifacts.items():
        row = ARTIFACTS[name]
        assert (row.kind, row.runtime, row.file("model") if row.suffix else row.file("saved_model")) == (entry.kind, entry.runtime, entry.path)
    assert tuple(manifest.step.artifacts) == tuple(sorted(STEP_EXPORTS)) and set(STEP_EXPORTS) == {"onnx", "tflite", "numpy"}
    for name, entry in manifest.step.artifacts.items():
        assert (BACKENDS[name].kind, BACKENDS[name].runtime) == (entry.kind, entry.runtime)
        assert all(part.path == f"step/{BACKENDS[name].file(stem)}" for stem, part in entry.parts.items() if name != "numpy")
    assert set(manifest.sampler_graph.artifacts) == set(GRAPH_EXPORTS) == {"onnx", "tflite"}
    for name, entry in manifest.sampler_graph.artifacts.items():
        assert (BACKENDS[name].kind, BACKENDS[name].file("sampler")) == (entry.kind, entry.path)


def test_the_rows_agree_with_each_other():
    assert NAMES == tuple(BACKENDS) and set(SERVED) | set(TENSORFLOW) == set(NAMES) and not set(SERVED) & set(TENSORFLOW)
    assert CHECKPOINT in TENSORFLOW and EXPORT_DEFAULT in SERVED and set(FULL) == set(NAMES) - {"numpy"}
    assert {row.kind for row in KINDS.values()} == {row.kind for row in BACKENDS.values()}  # each kind has its plain row
    for name, row in BACKENDS.items():
        # serve runs exactly the rows that need no TensorFlow and have a runtime file format; numpy needs none.
        assert (row.runner is not None) == (not row.tensorflow and row.kind != "npz"), name
        assert row.graph == (row.graph_update is not None or row.tensorflow and row.step), name
        assert (row.tolerance is None) == (row.quantization is not None or name == CHECKPOINT), name
        assert not (row.quantization and (row.step or row.graph)), "a quantized variant must not sample with float32 steps"
    assert BACKENDS["onnx"].runner is runtime.onnx_runner and BACKENDS["tflite_int8"].runner is runtime.tflite_runner
    assert BACKENDS["tflite_int8"].file("model") == "model_int8.tflite" and QUANTIZATIONS == ("float16", "dynamic", "int8")


def test_the_exporter_converts_every_kind_serve_runs():
    from export.__main__ import QUANTIZATIONS as export_quantizations
    from export.artifacts import CONVERTERS
    from export.parity import TOLERANCES
    from pixelcnn_tf.sampler_graph import UPDATES

    assert set(CONVERTERS) == {row.kind for row in BACKENDS.values() if row.runner}
    assert export_quantizations == QUANTIZATIONS
    assert set(TOLERANCES) == {row.kind for row in KINDS.values() if row.tolerance}
    assert {BACKENDS[name].graph_update for name in GRAPH_EXPORTS} == set(UPDATES)


def choices(parser_of, flag: str) -> tuple:
    parser = parser_of()
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    return tuple(action.choices)


def test_generate_evaluate_and_bench_offer_the_tables_names(capsys):
    import generate
    from bench import export_sampling, graph, sampling
    from pixelcnn_tf import evaluate

    for module, prog in ((generate, "generate.py"), (evaluate, "python -m pixelcnn_tf.evaluate")):
        for name in NAMES:
            assert module.parse_args(["--backend", name]).backend == name
        with pytest.raises(SystemExit) as refused:
            module.parse_args(["--backend", "bogus"])
        line = capsys.readouterr().err.strip()
        assert refused.value.code == 2 and line.startswith(f"{prog}: error: ") and "\n" not in line
        assert "'bogus'" in line and all(name in line for name in NAMES), line
    assert sampling.CACHED == tuple(name for name in NAMES if BACKENDS[name].step)
    assert graph.GRAPH_RUNTIMES == GRAPH_EXPORTS
    assert sampling.parse_args([]).backends == list(sampling.CACHED)
    assert export_sampling.parse_args(["--checkpoint", "x"]).backends == ["keras", "savedmodel", "onnx", "tflite"]
    for parse, argv in ((sampling.parse_args, ["--backends", "keras,bogus"]),
                        (export_sampling.parse_args, ["--checkpoint", "x", "--backends", "numpy"])):
        with pytest.raises(SystemExit) as refused:
            parse(argv)
        assert refused.value.code == 2 and "unknown backend" in capsys.readouterr().err


# Where the names may be spelled in lists: the table itself. Elsewhere a literal naming three or more backends or
# kinds is a second table in the making.
SOURCES = ["serve", "export", "bench", "pixelcnn_tf", "generate.py", "train.py"]


def test_no_module_keeps_its_own_list_of_backends():
    spelled = set(NAMES) | set(KINDS) | {"saved_model"}
    lists = []
    for source in SOURCES:
        path = os.path.join(ROOT, source)
        for file in [path] if path.endswith(".py") else glob.glob(os.path.join(path, "**", "*.py"), recursive=True):
            if file.endswith(os.path.join("serve", "backends.py")):
                continue
            for node in ast.walk(ast.parse(open(file).read())):
                items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else []
                names = {item.value for item in items if isinstance(item, ast.Constant) and item.value in spelled}
                if len(names) >= 3:
                    lists.append(f"{os.path.relpath(file, ROOT)}:{node.lineno} {sorted(names)}")
    assert not lists, lists

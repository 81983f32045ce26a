"""Benchmark: the page's sampler graph in headless Chromium (wasm, 1 thread vs all) vs onnxruntime in Python, sampling
and completing an uploaded picture (with --forward, also the full model's forward pass), and the bytes of the page's
first load on the wire; `python -m bench.web`."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request

import numpy as np

from bench import batch_sizes
from bench.browser import ROOT, BrowserMissing, Page, WebServer
from pixelcnn_tf.errors import ArgumentParser
from serve.manifest import read_manifest
from serve.web import PAGE_BACKEND

COMPLETIONS = 8  # the page's Complete button draws this many by default
SCREENSHOTS = ("web_sample.png", "web_complete.png")
CHROMIUM_ACCEPT = "gzip, deflate, br, zstd"  # the Accept-Encoding Chromium sends


def thread_counts(text: str) -> list[int]:
    """argparse type: a comma list of thread counts >= 0 (0: the default, every core on the page)."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if min(counts) < 0:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 0, got {text!r}")
    return counts


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--export", default=os.path.join(ROOT, "pretrained", "gated_mnist"), help="export directory (default: pretrained/gated_mnist)")
    parser.add_argument("--counts", type=batch_sizes, default="16,144", help="digits per Sample (default 16,144)")
    parser.add_argument("--keep-rows", type=int, help="rows of the uploaded picture kept by Complete (default: half the image)")
    parser.add_argument("--picture", help="the picture uploaded to the page and completed (default: a 640x480 JPEG made for the run)")
    parser.add_argument("--page-threads", type=thread_counts, default="1,0", help="the page's wasm threads, one page load each (?threads=; 0: the page's default, every core; default 1,0)")
    parser.add_argument("--threads", type=thread_counts, default="1,2", help="onnxruntime intra-op threads in Python, each a session (0: serve's own choice, 1 for the graph; default 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, each runs every page and Python setting in turn; medians are printed (default 3)")
    parser.add_argument("--screenshots", metavar="DIR", help=f"save {' and '.join(SCREENSHOTS)} of the page here")
    parser.add_argument("--overwrite", action="store_true", help="replace existing screenshots")
    parser.add_argument("--forward", action="store_true", help="also time one forward pass of the export's full model "
                        "(its ONNX file) on the largest count, in the page's onnxruntime-web and in Python's onnxruntime "
                        "with the same threads: the runtimes' own gap, without the sampler graph")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        args.meta = read_manifest(args.export)
    except ValueError as e:
        parser.error(str(e))
    if args.forward and "onnx" not in args.meta.artifacts:
        parser.error(f"--forward times the export's full ONNX model, and {args.export} has none")
    height = args.meta.height
    args.keep_rows = height // 2 if args.keep_rows is None else args.keep_rows
    if not 0 <= args.keep_rows <= height:
        parser.error(f"--keep-rows must be in 0..{height} for this {height}-row model, got {args.keep_rows}")
    if args.picture is not None and not os.path.isfile(args.picture):
        parser.error(f"--picture {args.picture}: no such file")
    if args.screenshots:
        taken = [name for name in SCREENSHOTS if os.path.exists(os.path.join(args.screenshots, name))]
        if taken and not args.overwrite:
            parser.error(f"{', '.join(taken)} already in {args.screenshots}; pass --overwrite to replace")
    return args


def photo(folder: str) -> str:
    """A 640x480 JPEG (quality 90) of smooth colour with noise: a camera picture's size, made without a camera."""
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    rgb = np.stack([x * 255 / 639, y * 255 / 479, (x + y) * 255 / 1118], axis=-1) + rng.normal(0, 12, (480, 640, 3))
    path = os.path.join(folder, "photo.jpg")
    Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def python_runner(args, threads: int):
    """draw(what, n) -> (result, seconds) through serve.Sampler and the same sampler.onnx (onnxruntime): 'sample',
    'read picture' (generate.py --complete's Pillow crop and resize) or 'complete' (the picture Python read)."""
    from pixelcnn_tf.figures import read_png_images
    from serve import Sampler

    sampler = Sampler.load(args.export, PAGE_BACKEND, num_threads=threads or None)
    spec = args.meta.spec
    classes = spec.num_classes  # a conditional model: the page's labels (round robin; class 0 for a picture)

    def run(what, n=COMPLETIONS):
        t0 = time.perf_counter()
        if what == "sample":
            result = sampler.sample(n, seed=0, labels=np.arange(n) % classes if classes else None)
        elif what == "read picture":
            result = read_png_images(args.picture, spec.shape, spec.levels)[0]
        else:
            picture = read_png_images(args.picture, spec.shape, spec.levels)[0]
            t0 = time.perf_counter()  # the draw only, as the page times it
            result = sampler.complete(picture, start_row=args.keep_rows, num_samples=n, seed=0, labels=0 if classes else None)
        return result, time.perf_counter() - t0

    return run


# Runs in the page (execute_async_script): the runtime module the page imported (same URL, so the same instance and
# wasm threads) runs the full model on zeros; returns each call's ms and the first logits.
PAGE_FORWARD = """
const [path, feeds, calls, done] = arguments;
(async () => {
  const modelUrl = new URL(path, window.pixelcnnPage.models[0].url).href;  // the one export served
  const ort = await import(window.pixelcnnPage.graph.runtimeFiles.find((url) => url.endsWith(".min.mjs")));
  const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const make = () => Object.fromEntries(feeds.map(([name, type, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    return [name, new ort.Tensor(type, type === "float32" ? new Float32Array(size) : new Int32Array(size), shape)];
  }));  // new buffers per call: the proxy worker takes them
  let out = await session.run(make());  // warm-up: the first call compiles and grows the wasm memory
  const ms = [];
  for (let i = 0; i < calls; i++) { const f = make(); const t = performance.now(); out = await session.run(f); ms.push(performance.now() - t); }
  done({ ms, logits: Array.from(out[session.outputNames[0]].data.slice(0, 4096)) });
})().catch((e) => done({ error: String(e.message || e) }));
"""
FORWARD_CALLS = 3


def forward_feeds(args, n: int) -> list:
    """[(name, type, shape)] of the full ONNX model's inputs for n zero images (and labels 0)."""
    artifact = args.meta.artifacts["onnx"]
    spec = args.meta.spec
    feeds = [(artifact.inputs["image"], "float32", [n, *spec.shape])]
    if "label" in artifact.inputs:
        feeds.append((artifact.inputs["label"], "int32", [n]))
    return feeds


def page_forward(page, args) -> tuple[np.ndarray, list[float]]:
    """(first logits, seconds per call) of the full model in the page's runtime."""
    path = args.meta.artifacts["onnx"].path
    page.driver.set_script_timeout(600)
    result = page.driver.execute_async_script(PAGE_FORWARD, path, forward_feeds(args, max(args.counts)), FORWARD_CALLS)
    if "error" in result:
        raise RuntimeError(f"the page could not run {path}: {result['error']}")
    return np.asarray(result["logits"], np.float32), [ms / 1000 for ms in result["ms"]]


def python_forward(args, threads: int):
    """forward() -> (first logits, seconds per call), the same in Python: onnxruntime as serve opens a full model
    (threads 0: one per core), opened and warmed up once."""
    from serve.runtime import ALL_CORES, onnx_runner

    runner = onnx_runner(os.path.join(args.export, args.meta.artifacts["onnx"].path), threads or ALL_CORES)
    feeds = {name: np.zeros(shape, np.float32 if kind == "float32" else np.int32)
             for name, kind, shape in forward_feeds(args, max(args.counts))}
    runner(feeds)  # warm-up

    def forward() -> tuple[np.ndarray, list[float]]:
        seconds = []
        for _ in range(FORWARD_CALLS):
            t0 = time.perf_counter()
            out = runner(feeds)
            seconds.append(time.perf_counter() - t0)
        return next(iter(out.values())).reshape(-1)[:4096], seconds

    return forward


def page_draws(page, args, shots: bool) -> dict:
    """{what: (images, seconds)} of the page's own timings: the runtime call, and reading the uploaded picture."""
    page.set("count", max(args.counts))
    page.click("sample")  # warm-up at the largest draw: the first run compiles and grows the wasm memory
    draws = {}
    for n in args.counts:
        page.set("count", n)
        page.set("seed", 0)
        page.click("sample")
        done = page.result("sampled")
        draws[f"sample {n}"] = (np.asarray(done["images"]), done["ms"] / 1000)
        if shots and n == min(args.counts):
            page.driver.save_screenshot(os.path.join(args.screenshots, SCREENSHOTS[0]))
    page.js("document.body.dataset.state = 'busy'")
    page.upload("picture-file", args.picture)
    page.expect_ready()
    levels = page.js("return Array.from(window.pixelcnnPage.picture.levels)")
    draws["read picture"] = (np.asarray(levels), page.js("return window.pixelcnnPage.picture.ms") / 1000)
    page.set("rows", args.keep_rows)
    page.set("completions", COMPLETIONS)
    page.set("seed", 0)
    page.click("complete")
    done = page.result("completed")
    draws[f"complete {COMPLETIONS}"] = (np.asarray(done["images"]), done["ms"] / 1000)
    if shots:
        page.driver.save_screenshot(os.path.join(args.screenshots, SCREENSHOTS[1]))
    return draws


def wire_bytes(page) -> list[dict]:
    """Each file of the page's first load (its resource timings, the document and the runtime files its worker
    fetches), fetched again as sent plain and as sent to Chromium's Accept-Encoding."""
    urls = page.js("return [location.href, ...performance.getEntriesByType('resource').map((e) => e.name), ...window.pixelcnnPage.graph.runtimeFiles]")
    files = []
    for url in dict.fromkeys(u for u in urls if u.startswith("http")):
        sizes = {}
        for accept in ("identity", CHROMIUM_ACCEPT):
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Encoding": accept})) as response:
                sizes[accept] = (len(response.read()), response.headers.get("Content-Encoding") or "identity")
        files.append({"url": url, "plain": sizes["identity"][0], "sent": sizes[CHROMIUM_ACCEPT][0], "encoding": sizes[CHROMIUM_ACCEPT][1]})
    return files


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
        args.picture = args.picture or photo(folder)
        return run(args)


def run(args) -> int:
    try:
        server, page = WebServer(args.export), Page()
    except BrowserMissing as e:
        print(f"python -m bench.web: error: {e}", file=sys.stderr)
        return 2
    times: dict[tuple[str, str], list[float]] = {}
    same: dict[str, float] = {}
    pages, files = {}, None
    pythons = {threads: python_runner(args, threads) for threads in args.threads}
    python_forwards = {threads: python_forward(args, threads) for threads in args.threads} if args.forward else {}
    forward = f"forward {max(args.counts)}"
    for runner in pythons.values():
        runner("sample", max(args.counts))  # warm-up, as the page
    with server, page:
        for round_ in range(args.repeats):
            for threads in args.page_threads:  # alternate settings within a round: load swings hit them alike
                url = server.url + "web/" + (f"?threads={threads}" if threads else "")  # the index's one export
                if page.open(url) != "ready":
                    print(f"python -m bench.web: error: the page shows: {page.error()}", file=sys.stderr)
                    return 2
                label = f"page {page.js('return window.pixelcnnPage.threads.used')} thr"
                pages[label] = {"load": page.js("return window.pixelcnnPage.load"), "threads": page.js("return window.pixelcnnPage.threads")}
                files = files or wire_bytes(page)
                draws = page_draws(page, args, shots=bool(args.screenshots) and round_ == 0 and threads == args.page_threads[-1])
                for what, (images, seconds) in draws.items():
                    times.setdefault((what, label), []).append(seconds)
                if args.forward:
                    logits, seconds = page_forward(page, args)
                    times.setdefault((forward, label), []).append(statistics.median(seconds))
                for threads_py, python in pythons.items():
                    label_py = f"python {threads_py or 'default'} thr"
                    for what, (images, _) in draws.items():
                        kind, _, count = what.rpartition(" ") if what[-1].isdigit() else (what, "", "1")
                        expected, seconds = python(kind, int(count))
                        times.setdefault((what, label_py), []).append(seconds)
                        agree = float(np.mean(images.reshape(expected.shape) == expected))
                        same[what] = min(same.get(what, 1.0), agree)
                    if args.forward:
                        expected, seconds = python_forwards[threads_py]()
                        times.setdefault((forward, label_py), []).append(statistics.median(seconds))
                        close = np.abs(logits - expected) <= 1e-4 * np.maximum(1.0, np.abs(expected))
                        same[forward] = min(same.get(forward, 1.0), float(close.mean()))  # share of logits within 1e-4
    columns = list(dict.fromkeys(label for _, label in times))
    rows = [{"what": what, **{label: statistics.median(times[what, label]) for label in columns if (what, label) in times},
             "best": {label: min(times[what, label]) for label in columns if (what, label) in times},
             "same_subpixels": same[what]} for what in dict.fromkeys(what for what, _ in times)]
    plain, sent = sum(f["plain"] for f in files), sum(f["sent"] for f in files)
    print(f"export {args.export}: page backend {page_backend(pages)}; first load {len(files)} files, {plain / 1e6:.2f} MB plain, "
          f"{sent / 1e6:.2f} MB as sent to Chromium ({CHROMIUM_ACCEPT}); seconds, median (best) of {args.repeats} round(s)")
    print(f"{'draw':<12} " + " ".join(f"{c:>16}" for c in columns) + f" {'same':>8}")
    for row in rows:
        print(f"{row['what']:<12} " + " ".join(f"{row[c]:>8.3f} ({row['best'][c]:.3f})" for c in columns) + f" {row['same_subpixels']:>8.2%}")
    if args.json:
        from pixelcnn_tf.files import write_json_atomic

        write_json_atomic(args.json, {"export": args.export, "pages": pages, "files": files, "repeats": args.repeats,
                                      "python_threads": args.threads, "rows": rows, "columns": columns,
                                      "picture": os.path.basename(args.picture), "keep_rows": args.keep_rows})
    return 0


def page_backend(pages: dict) -> str:
    return ", ".join(f"{label} (cross-origin isolated: {p['threads']['crossOriginIsolated']})" for label, p in pages.items())


if __name__ == "__main__":
    sys.exit(main())

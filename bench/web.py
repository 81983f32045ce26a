"""Benchmark: the page's sampler graph in headless Chromium (wasm) vs onnxruntime in Python; `python -m bench.web`."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from bench import batch_sizes
from bench.browser import ROOT, BrowserMissing, Page, WebServer
from serve.metadata import read_metadata

COMPLETIONS = 8  # the page's Complete button draws this many
SCREENSHOTS = ("web_sample.png", "web_complete.png")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--export", default=os.path.join(ROOT, "pretrained", "gated_mnist"), help="export directory (default: pretrained/gated_mnist)")
    parser.add_argument("--counts", type=batch_sizes, default="16,144", help="digits per Sample (default 16,144)")
    parser.add_argument("--keep-rows", type=int, default=14, help="rows kept by Complete (default 14)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads in Python (default 1, as the page's wasm on 2 cores; 0: serve's own choice)")
    parser.add_argument("--page-threads", type=int, default=0, help="the page's wasm threads (?threads=; default 0: onnxruntime-web's choice)")
    parser.add_argument("--screenshots", metavar="DIR", help=f"save {' and '.join(SCREENSHOTS)} of the page here")
    parser.add_argument("--overwrite", action="store_true", help="replace existing screenshots")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        args.meta = read_metadata(args.export)
    except ValueError as e:
        parser.error(str(e))
    if args.screenshots:
        taken = [name for name in SCREENSHOTS if os.path.exists(os.path.join(args.screenshots, name))]
        if taken and not args.overwrite:
            parser.error(f"{', '.join(taken)} already in {args.screenshots}; pass --overwrite to replace")
    return args


def python_runner(args):
    """draw(n, seed, digit=None) -> (images, seconds): serve.Sampler through the same sampler.onnx (onnxruntime)."""
    from serve import Sampler

    sampler = Sampler.load(args.export, "onnx", num_threads=args.threads or None)

    def run(n, seed=0, digit=None):
        t0 = time.perf_counter()
        if digit is None:
            images = sampler.sample(n, seed=seed)
        else:
            images = sampler.complete(digit[None], start_row=args.keep_rows, num_samples=n, seed=seed)
        return images, time.perf_counter() - t0

    return run


def main(argv=None) -> int:
    args = parse_args(argv)
    meta = args.meta
    shape = (meta["height"], meta["width"], meta["channels"])
    rows = []
    try:
        server, page = WebServer(args.export), Page()
    except BrowserMissing as e:
        print(f"python -m bench.web: error: {e}", file=sys.stderr)
        return 2
    with server, page:
        if page.open(server.url + "web/?export=../export/" + (f"&threads={args.page_threads}" if args.page_threads else "")) != "ready":
            print(f"python -m bench.web: error: the page shows: {page.error()}", file=sys.stderr)
            return 2
        load = page.js("return window.pixelcnnPage.load")
        backend = page.js("return window.pixelcnnPage.graph.backend")
        python = python_runner(args)
        page.set("count", 1)
        page.click("sample")  # warm-up: the first run allocates and compiles
        python(1)
        for n in args.counts:
            page.set("count", n)
            page.set("seed", 0)
            page.click("sample")
            images, seconds = python(n)
            page_ms = page.result("sampled")["ms"]
            same = np.mean(np.asarray(page.result("sampled")["images"]).reshape(images.shape) == images)
            rows.append({"what": f"sample {n}", "browser_s": page_ms / 1000, "python_s": seconds, "same_subpixels": float(same)})
            if n == min(args.counts) and args.screenshots:
                page.driver.save_screenshot(os.path.join(args.screenshots, SCREENSHOTS[0]))
        page.set("rows", args.keep_rows)
        page.click("complete")
        done = page.result("completed")
        digit = np.asarray(page.js("return Array.from(window.pixelcnnPage.digits[window.pixelcnnPage.digit].levels)")).reshape(shape)
        images, seconds = python(COMPLETIONS, digit=digit)
        same = np.mean(np.asarray(done["images"]).reshape(images.shape) == images)
        rows.append({"what": f"complete {COMPLETIONS}", "browser_s": done["ms"] / 1000, "python_s": seconds, "same_subpixels": float(same)})
        if args.screenshots:
            page.driver.save_screenshot(os.path.join(args.screenshots, SCREENSHOTS[1]))
    print(f"export {args.export}: page backend {backend}, first load {load['runtimeBytes'] / 1e6:.2f} MB runtime + "
          f"{load['modelBytes'] / 1e6:.2f} MB sampler graph, loaded in {load['ms'] / 1000:.2f} s; Python onnxruntime {args.threads or 'default'} thread(s)")
    print(f"{'draw':<12} {'Chromium s':>11} {'Python s':>9} {'same':>8}")
    for row in rows:
        print(f"{row['what']:<12} {row['browser_s']:>11.3f} {row['python_s']:>9.3f} {row['same_subpixels']:>8.2%}")
    if args.json:
        from pixelcnn_tf.files import write_json_atomic

        write_json_atomic(args.json, {"export": args.export, "backend": backend, "load": load, "python_threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

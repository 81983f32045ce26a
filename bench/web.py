"""Benchmark: the page's sampler graph in headless Chromium (wasm, 1 thread vs all) vs onnxruntime in Python, and
the bytes of the page's first load on the wire; `python -m bench.web`."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request

import numpy as np

from bench import batch_sizes
from bench.browser import ROOT, BrowserMissing, Page, WebServer
from serve.manifest import read_manifest
from serve.web import PAGE_BACKEND

COMPLETIONS = 8  # the page's Complete button draws this many
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
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--export", default=os.path.join(ROOT, "pretrained", "gated_mnist"), help="export directory (default: pretrained/gated_mnist)")
    parser.add_argument("--counts", type=batch_sizes, default="16,144", help="digits per Sample (default 16,144)")
    parser.add_argument("--keep-rows", type=int, default=14, help="rows kept by Complete (default 14)")
    parser.add_argument("--page-threads", type=thread_counts, default="1,0", help="the page's wasm threads, one page load each (?threads=; 0: the page's default, every core; default 1,0)")
    parser.add_argument("--threads", type=thread_counts, default="1,2", help="onnxruntime intra-op threads in Python, each a session (0: serve's own choice, 1 for the graph; default 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, each runs every page and Python setting in turn; medians are printed (default 3)")
    parser.add_argument("--screenshots", metavar="DIR", help=f"save {' and '.join(SCREENSHOTS)} of the page here")
    parser.add_argument("--overwrite", action="store_true", help="replace existing screenshots")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        args.meta = read_manifest(args.export)
    except ValueError as e:
        parser.error(str(e))
    if args.screenshots:
        taken = [name for name in SCREENSHOTS if os.path.exists(os.path.join(args.screenshots, name))]
        if taken and not args.overwrite:
            parser.error(f"{', '.join(taken)} already in {args.screenshots}; pass --overwrite to replace")
    return args


def python_runner(args, threads: int):
    """draw(n, seed, digit=None) -> (images, seconds): serve.Sampler through the same sampler.onnx (onnxruntime)."""
    from serve import Sampler

    sampler = Sampler.load(args.export, PAGE_BACKEND, num_threads=threads or None)

    def run(n, seed=0, digit=None):
        t0 = time.perf_counter()
        if digit is None:
            images = sampler.sample(n, seed=seed)
        else:
            images = sampler.complete(digit[None], start_row=args.keep_rows, num_samples=n, seed=seed)
        return images, time.perf_counter() - t0

    return run


def page_draws(page, args, shots: bool) -> tuple[dict, np.ndarray]:
    """{what: (images, seconds)} of the page's own timings (the runtime call), and the digit Complete used."""
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
    page.set("rows", args.keep_rows)
    page.click("complete")
    done = page.result("completed")
    draws[f"complete {COMPLETIONS}"] = (np.asarray(done["images"]), done["ms"] / 1000)
    if shots:
        page.driver.save_screenshot(os.path.join(args.screenshots, SCREENSHOTS[1]))
    digit = page.js("return Array.from(window.pixelcnnPage.digits[window.pixelcnnPage.digit].levels)")
    return draws, np.asarray(digit)


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
    meta = args.meta
    shape = meta.spec.shape
    try:
        server, page = WebServer(args.export), Page()
    except BrowserMissing as e:
        print(f"python -m bench.web: error: {e}", file=sys.stderr)
        return 2
    times: dict[tuple[str, str], list[float]] = {}
    same: dict[str, float] = {}
    pages, files = {}, None
    pythons = {threads: python_runner(args, threads) for threads in args.threads}
    for runner in pythons.values():
        runner(max(args.counts))  # warm-up, as the page
    with server, page:
        for round_ in range(args.repeats):
            for threads in args.page_threads:  # alternate settings within a round: load swings hit them alike
                url = server.url + "web/?export=../export/" + (f"&threads={threads}" if threads else "")
                if page.open(url) != "ready":
                    print(f"python -m bench.web: error: the page shows: {page.error()}", file=sys.stderr)
                    return 2
                label = f"page {page.js('return window.pixelcnnPage.threads.used')} thr"
                pages[label] = {"load": page.js("return window.pixelcnnPage.load"), "threads": page.js("return window.pixelcnnPage.threads")}
                files = files or wire_bytes(page)
                draws, digit = page_draws(page, args, shots=bool(args.screenshots) and round_ == 0 and threads == args.page_threads[-1])
                for what, (images, seconds) in draws.items():
                    times.setdefault((what, label), []).append(seconds)
                for threads_py, python in pythons.items():
                    label_py = f"python {threads_py or 'default'} thr"
                    for what, (images, _) in draws.items():
                        n = int(what.split()[1])
                        expected, seconds = python(n, digit=digit.reshape(shape) if what.startswith("complete") else None)
                        times.setdefault((what, label_py), []).append(seconds)
                        agree = float(np.mean(images.reshape(expected.shape) == expected))
                        same[what] = min(same.get(what, 1.0), agree)
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
                                      "python_threads": args.threads, "rows": rows, "columns": columns})
    return 0


def page_backend(pages: dict) -> str:
    return ", ".join(f"{label} (cross-origin isolated: {p['threads']['crossOriginIsolated']})" for label, p in pages.items())


if __name__ == "__main__":
    sys.exit(main())

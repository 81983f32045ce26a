// The page: load the export's sampler graph, then Sample and Complete buttons, timings and errors.
import { PageError, SamplerGraph, chooseThreads } from "./pixelcnn.mjs";
import { parseNpy } from "./npy.mjs";
import { toFloat32Uniforms, uniforms as seededUniforms } from "./rng.mjs";

const COMPLETIONS = 8;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const state = { graph: null, fileUniforms: null, digits: [], digit: 0, label: null };
window.pixelcnnPage = state; // read by the browser test

function setState(name) {
  document.body.dataset.state = name;
}

function fail(error) {
  console.error(error);
  window.showError(error instanceof PageError ? error.message : `${error.name || "Error"}: ${error.message || error}`);
}

const mb = (bytes) => (bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(2)} MB`);

// Level indices (n*H*W*C) onto a canvas as a grid (grey levels as serve.sampling.to_grid scales them, a thin
// gap between images), shown `scale` times larger.
function drawGrid(canvas, images, n, columns, { scale = 2, dim = null, gap = 1 } = {}) {
  const [h, w, c] = state.graph.shape;
  const rows = Math.ceil(n / columns);
  canvas.width = columns * (w + gap) - gap;
  canvas.height = rows * (h + gap) - gap;
  canvas.style.width = `${canvas.width * scale}px`;
  const ctx = canvas.getContext("2d");
  const picture = ctx.createImageData(canvas.width, canvas.height);
  picture.data.fill(96); // the gaps' grey
  for (let i = 3; i < picture.data.length; i += 4) picture.data[i] = 255; // opaque
  const top = state.graph.levels - 1;
  for (let k = 0; k < n; k++) {
    const [r0, c0] = [Math.floor(k / columns) * (h + gap), (k % columns) * (w + gap)];
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const src = ((k * h + i) * w + j) * c;
        const dst = ((r0 + i) * canvas.width + c0 + j) * 4;
        for (let ch = 0; ch < 3; ch++) picture.data[dst + ch] = Math.round((images[src + (c === 3 ? ch : 0)] * 255) / top);
        if (dim && dim(k, i)) picture.data[dst] = Math.min(255, picture.data[dst] + 110); // rows the draw replaces
      }
  }
  ctx.putImageData(picture, 0, 0);
}

// n*H*W*C uniforms: the first n images of the loaded file, else numpy's default_rng(seed).random((n, H, W, C)).
function uniformsFor(n, seed) {
  const size = state.graph.size;
  const file = state.fileUniforms;
  if (!file) return seededUniforms(seed, n * size);
  if (file.shape.slice(1).join() !== state.graph.shape.join() || file.shape[0] < n)
    throw new PageError(`the uniforms file holds (${file.shape.join(", ")}); this draw needs (${[n, ...state.graph.shape].join(", ")}) or more images`);
  return Float32Array.from(file.data.subarray(0, n * size));
}

async function timed(button, fn, timing) {
  setState("busy");
  button.disabled = true;
  $(timing).textContent = "drawing…";
  $("error").style.display = "none"; // a new draw: the last one's error no longer stands
  try {
    await fn();
    setState("ready");
  } catch (e) {
    $(timing).textContent = "failed";
    fail(e);
  } finally {
    button.disabled = false;
  }
}

async function sample() {
  const graph = state.graph;
  const n = Number($("count").value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new PageError(`digits must be a whole number in 1..256, got ${$("count").value}`);
  const seed = Number($("seed").value);
  const temperature = Number($("temperature").value);
  const labels = graph.numClasses ? Int32Array.from({ length: n }, (_, i) => state.label ?? i % graph.numClasses) : null;
  const u = uniformsFor(n, seed);
  const t0 = performance.now();
  const images = await graph.run({ uniforms: u, n, temperature, labels });
  const ms = performance.now() - t0;
  state.sampled = { images: Array.from(images), n, seed, temperature, ms };
  drawGrid($("sample-canvas"), images, n, Math.ceil(Math.sqrt(n)), { scale: Math.max(1, Math.floor(448 / (Math.ceil(Math.sqrt(n)) * graph.shape[1]))) });
  $("sample-time").textContent = `${n} digit${n > 1 ? "s" : ""} in ${(ms / 1000).toFixed(3)} s (${graph.backend})`;
}

async function complete() {
  const graph = state.graph;
  const [h, w, c] = graph.shape;
  const digit = state.digits[state.digit];
  if (!digit) throw new PageError("no test digit to complete for this model");
  const keep = Number($("rows").value);
  const prefix = new Float32Array(COMPLETIONS * graph.size);
  for (let k = 0; k < COMPLETIONS; k++) prefix.set(digit.levels, k * graph.size);
  const labels = graph.numClasses ? new Int32Array(COMPLETIONS).fill(digit.label % graph.numClasses) : null;
  const u = uniformsFor(COMPLETIONS, Number($("seed").value));
  const t0 = performance.now();
  const images = await graph.run({ uniforms: u, n: COMPLETIONS, temperature: Number($("temperature").value), labels, prefix, start: keep * w * c }); // start counts raster sub-pixels
  const ms = performance.now() - t0;
  state.completed = { images: Array.from(images), digit: state.digit, keep, ms };
  const shown = new Int32Array((COMPLETIONS + 1) * graph.size);
  shown.set(digit.levels);
  shown.set(images, graph.size);
  drawGrid($("complete-canvas"), shown, COMPLETIONS + 1, COMPLETIONS + 1, { scale: 3, gap: 2, dim: (k, i) => k === 0 && i >= keep });
  $("complete-time").textContent = `${COMPLETIONS} completions of the top ${keep} of ${h} rows in ${(ms / 1000).toFixed(3)} s (${graph.backend})`;
}

// Shipped test digits (grey 0..255, hex) quantized to the model's levels like pixelcnn_tf.datasets.pipeline.quantize.
async function loadDigits(url) {
  const graph = state.graph;
  let doc;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    doc = await response.json();
  } catch (e) {
    throw new PageError(`cannot load test digits from ${url}: ${e.message}`);
  }
  if ([doc.height, doc.width, doc.channels].join() !== graph.shape.join()) return [];
  return doc.digits.map((d) => {
    const grey = Uint8Array.from(d.pixels.match(/../g), (x) => parseInt(x, 16));
    return { label: d.label, levels: Int32Array.from(grey, (v) => Math.floor((v * graph.levels) / 256)) };
  });
}

function showDigits() {
  const box = $("digits");
  box.textContent = "";
  if (!state.digits.length) {
    box.textContent = `No test digits fit a ${state.graph.shape.join("×")} model: give ?digits= a JSON like web/digits.json.`;
    $("complete").disabled = true;
    return;
  }
  state.digits.forEach((d, k) => {
    const canvas = document.createElement("canvas");
    canvas.title = `test digit ${d.label}`;
    canvas.dataset.index = k;
    box.append(canvas);
    drawGrid(canvas, d.levels, 1, 1, { scale: 2, gap: 0 });
    canvas.onclick = () => {
      state.digit = k;
      box.querySelectorAll("canvas").forEach((c) => c.classList.toggle("selected", c === canvas));
    };
    canvas.classList.toggle("selected", k === state.digit);
  });
}

function showClasses() {
  const box = $("classes");
  if (!state.graph.numClasses) return;
  box.hidden = false;
  const choices = [["mixed", null], ...Array.from({ length: state.graph.numClasses }, (_, c) => [String(c), c])];
  for (const [text, value] of choices) {
    const button = document.createElement("button");
    button.textContent = text;
    button.dataset.label = text;
    button.classList.toggle("selected", value === state.label);
    button.onclick = () => {
      state.label = value;
      box.querySelectorAll("button").forEach((b) => b.classList.toggle("selected", b === button));
    };
    box.append(button);
  }
}

async function loadUniformsFile(buffer, name) {
  const { data, shape } = parseNpy(buffer);
  if (shape.length !== 4) throw new PageError(`${name} has shape (${shape}); uniforms must be (N, H, W, C)`);
  if (data.some((v) => !(v >= 0 && v < 1))) throw new PageError(`${name} holds values outside [0, 1)`);
  const values = toFloat32Uniforms(data);
  state.fileUniforms = { data: values, shape };
  $("uniforms-info").textContent = `using ${name}: (${shape.join(", ")})`;
}

// ?threads=N (a whole number >= 1), else every core; 1 when the page is not cross-origin isolated, said on the page.
function threadsParam() {
  const text = params.get("threads");
  const asked = text === null ? 0 : Number(text);
  if (text !== null && !(Number.isInteger(asked) && asked >= 1 && asked <= 256))
    throw new PageError(`threads= must be a whole number in 1..256, got ${text || "nothing"}`);
  const choice = chooseThreads(asked);
  state.threads = { asked, ...choice, crossOriginIsolated: Boolean(globalThis.crossOriginIsolated), cores: navigator.hardwareConcurrency || 1 };
  if (choice.unavailable) {
    $("notice").textContent = choice.unavailable;
    $("notice").hidden = false;
  }
  return choice.threads;
}

async function main() {
  const exportUrl = new URL(params.get("export") || "../pretrained/gated_mnist/", location.href).href;
  const threads = threadsParam();
  const t0 = performance.now();
  const graph = await SamplerGraph.load(exportUrl, { backend: params.get("backend") || "auto", threads });
  state.graph = graph;
  const loadMs = performance.now() - t0;
  const runtimeBytes = graph.runtimeBytes;
  state.load = { ms: loadMs, runtimeBytes, modelBytes: graph.modelBytes };
  state.threads.used = graph.ort.env.wasm.numThreads; // what onnxruntime-web runs with, read back
  const m = graph.meta;
  $("info").textContent = `${m.model_config?.architecture ?? "PixelCNN"} on ${m.dataset ?? "?"}: ${graph.shape.join("×")}, ${m.levels} levels` +
    `${m.num_classes ? `, ${m.num_classes} classes` : ""} · sampler graph ${mb(graph.modelBytes)} · runtime ${mb(runtimeBytes)} as sent · ` +
    `backend ${graph.backend}${graph.backend === "wasm" ? ` (${graph.ort.env.wasm.numThreads} thread${graph.ort.env.wasm.numThreads > 1 ? "s" : ""})` : ""} · loaded in ${(loadMs / 1000).toFixed(2)} s from ${exportUrl}`;
  $("rows").max = graph.shape[0];
  $("rows").value = Math.floor(graph.shape[0] / 2);
  $("rows-value").textContent = $("rows").value;
  state.digits = await loadDigits(new URL(params.get("digits") || "./digits.json", location.href).href);
  showDigits();
  showClasses();
  if (params.get("uniforms")) {
    const url = new URL(params.get("uniforms"), location.href).href;
    const response = await fetch(url);
    if (!response.ok) throw new PageError(`cannot fetch uniforms from ${url}: HTTP ${response.status}`);
    await loadUniformsFile(await response.arrayBuffer(), url);
  }
  $("temperature").oninput = () => ($("temperature-value").textContent = Number($("temperature").value).toFixed(2));
  $("rows").oninput = () => ($("rows-value").textContent = $("rows").value);
  $("sample").onclick = () => timed($("sample"), sample, "sample-time");
  $("complete").onclick = () => timed($("complete"), complete, "complete-time");
  $("uniforms-file").onchange = async (e) => {
    const file = e.target.files[0];
    if (file) await loadUniformsFile(await file.arrayBuffer(), file.name).catch(fail);
  };
  $("sample-controls").disabled = false;
  $("complete-controls").disabled = false;
  setState("ready");
}

main().catch(fail);

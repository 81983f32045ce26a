// The page: the model picker, the chosen export's sampler graph, Sample and Complete (a test digit or your own
// picture), timings and errors.
import { drawGrid, zoomFor } from "./draw.mjs";
import { loadIndex, showPicker } from "./models.mjs";
import { parseNpy } from "./npy.mjs";
import { readPicture } from "./picture.mjs";
import { PageError, SamplerGraph, chooseThreads } from "./pixelcnn.mjs";
import { toFloat32Uniforms, uniforms as seededUniforms } from "./rng.mjs";

const DEFAULT_EXPORT = "../pretrained/gated_mnist/"; // when the host serves no model index
const MAX_COMPLETIONS = 64;
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

// drawGrid with the loaded model's shape and levels.
const draw = (canvas, images, n, columns, options = {}) =>
  drawGrid(canvas, images, n, columns, { shape: state.graph.shape, levels: state.graph.levels, ...options });

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
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new PageError(`images must be a whole number in 1..256, got ${$("count").value}`);
  const seed = Number($("seed").value);
  const temperature = Number($("temperature").value);
  const labels = graph.numClasses ? Int32Array.from({ length: n }, (_, i) => state.label ?? i % graph.numClasses) : null;
  const u = uniformsFor(n, seed);
  const t0 = performance.now();
  const images = await graph.run({ uniforms: u, n, temperature, labels });
  const ms = performance.now() - t0;
  state.sampled = { images: Array.from(images), n, seed, temperature, ms };
  const columns = Math.ceil(Math.sqrt(n));
  draw($("sample-canvas"), images, n, columns, { scale: zoomFor(512, columns, graph.shape[1]) });
  $("sample-time").textContent = `${n} image${n > 1 ? "s" : ""} in ${(ms / 1000).toFixed(3)} s (${graph.backend})`;
}

async function complete() {
  const graph = state.graph;
  const [h, w, c] = graph.shape;
  const digit = state.digits[state.digit];
  if (!digit) throw new PageError("nothing to complete: pick a test image or drop a picture of your own");
  const keep = Number($("rows").value);
  const n = Number($("completions").value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_COMPLETIONS)
    throw new PageError(`completions must be a whole number in 1..${MAX_COMPLETIONS}, got ${$("completions").value}`);
  const prefix = new Float32Array(n * graph.size);
  for (let k = 0; k < n; k++) prefix.set(digit.levels, k * graph.size);
  const label = digit.label ?? state.label ?? 0; // your own picture: the chosen class button's class
  const labels = graph.numClasses ? new Int32Array(n).fill(label % graph.numClasses) : null;
  const u = uniformsFor(n, Number($("seed").value));
  const t0 = performance.now();
  const images = await graph.run({ uniforms: u, n, temperature: Number($("temperature").value), labels, prefix, start: keep * w * c }); // start counts raster sub-pixels
  const ms = performance.now() - t0;
  state.completed = { images: Array.from(images), digit: state.digit, keep, n, ms };
  const shown = new Int32Array((n + 1) * graph.size);
  shown.set(digit.levels);
  shown.set(images, graph.size);
  const columns = Math.min(n + 1, 9);
  draw($("complete-canvas"), shown, n + 1, columns, { scale: zoomFor(880, columns, w, 2), gap: 2, dim: (k, i) => k === 0 && i >= keep });
  $("complete-time").textContent = `${n} completion${n > 1 ? "s" : ""} of the top ${keep} of ${h} rows in ${(ms / 1000).toFixed(3)} s (${graph.backend})`;
}

// Your own picture (dropped or picked): cropped and resized in the page, shown first, then selected for Complete.
async function usePicture(file) {
  const graph = state.graph;
  const t0 = performance.now();
  const picture = await readPicture(file, graph.shape, graph.levels);
  picture.ms = performance.now() - t0; // decode, crop, resize and quantize
  state.picture = picture; // read by the browser test: the pixels the page completes
  state.digits = [...state.digits.filter((d) => !d.own), { ...picture, label: null, own: true }];
  state.digit = state.digits.length - 1;
  showDigits();
  $("picture-note").textContent = picture.note;
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
    box.textContent = `No test images fit a ${state.graph.shape.join("×")} model (give ?digits= a JSON like web/digits.json): drop or pick a picture of your own.`;
    return;
  }
  const scale = zoomFor(64, 1, state.graph.shape[1], 0);
  state.digits.forEach((d, k) => {
    const canvas = document.createElement("canvas");
    canvas.title = d.own ? d.note : `test image of class ${d.label}`;
    canvas.dataset.index = k;
    box.append(canvas);
    draw(canvas, d.levels, 1, 1, { scale, gap: 0 });
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
  const names = state.graph.meta.class_names; // the dataset's class names, where the export records them
  const choices = [["mixed", null], ...Array.from({ length: state.graph.numClasses }, (_, c) => [names?.[c] ?? String(c), c])];
  for (const [text, value] of choices) {
    const button = document.createElement("button");
    button.textContent = text;
    button.dataset.label = value ?? "mixed"; // the class id
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

// A picture dropped on the Complete panel or picked: read, shown and selected; a bad file is one line on the page.
async function pictureChosen(file) {
  if (!file || !state.graph) return;
  setState("busy");
  $("error").style.display = "none";
  $("picture-note").textContent = `reading ${file.name}…`;
  try {
    await usePicture(file);
    setState("ready");
  } catch (e) {
    $("picture-note").textContent = "";
    fail(e);
  }
}

function acceptDrops(panel) {
  panel.addEventListener("dragover", (e) => {
    e.preventDefault(); // without this the browser opens the dropped file instead
    panel.classList.add("dropping");
  });
  panel.addEventListener("dragleave", () => panel.classList.remove("dropping"));
  panel.addEventListener("drop", (e) => {
    e.preventDefault();
    panel.classList.remove("dropping");
    pictureChosen(e.dataTransfer.files[0]);
  });
}

async function main() {
  // The model: ?export= if given, else the first of the host's index (serve.web lists every export it serves).
  const indexUrl = new URL(params.get("index") || "../exports/index.json", location.href).href;
  state.models = await loadIndex(indexUrl);
  const asked = params.get("export");
  const exportUrl = asked ? new URL(asked, location.href).href : state.models[0]?.url ?? new URL(DEFAULT_EXPORT, location.href).href;
  showPicker($("model"), state.models, exportUrl);
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
  $("picture-file").onchange = (e) => pictureChosen(e.target.files[0]);
  acceptDrops($("complete-panel"));
  $("uniforms-file").onchange = async (e) => {
    const file = e.target.files[0];
    if (file) await loadUniformsFile(await file.arrayBuffer(), file.name).catch(fail);
  };
  $("sample-controls").disabled = false;
  $("complete-controls").disabled = false;
  setState("ready");
}

main().catch(fail);

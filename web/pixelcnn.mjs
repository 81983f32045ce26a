// An export's sampler graph in onnxruntime-web: metadata, runtime choice, checked download and one call per draw.
const RUNTIME = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
// metadata.json's format and the one version this page reads (serve/manifest.py's FORMAT, FORMAT_VERSION; a test
// checks they agree): another version may name its files or tensors otherwise, so it is refused, not guessed at.
export const FORMAT = "pixelcnn-tf-export";
export const FORMAT_VERSION = 2;

export class PageError extends Error {}

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new PageError(`cannot fetch ${what} from ${url}: ${e.message}`);
  }
  if (!response.ok) throw new PageError(`cannot fetch ${what} from ${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

async function readMetadata(exportUrl) {
  const url = new URL("metadata.json", exportUrl).href;
  const response = await fetchOk(url, "the export's metadata.json (is the export URL an export folder?)");
  let meta;
  try {
    meta = await response.json();
  } catch (e) {
    throw new PageError(`${url} is not JSON: ${e.message}`);
  }
  if (meta?.format !== FORMAT) throw new PageError(`${url} is not pixelcnn-tf export metadata`);
  if (meta.format_version !== FORMAT_VERSION)
    throw new PageError(`${url} has format_version ${JSON.stringify(meta.format_version) ?? "(none)"}; this page reads ${FORMAT_VERSION}: re-export the checkpoint with \`python -m export --checkpoint RUN --out DIR\``);
  for (const key of ["height", "width", "channels", "levels", "num_classes"])
    if (!Number.isInteger(meta[key])) throw new PageError(`${url} lacks a valid ${key}`);
  return meta;
}

// The sampler graph's ONNX file entry and tensor names, from metadata.json's "sampler_graph" (its contract's keys
// are the tensor names: uniforms, temperature, prefix, start, label when conditional; output images).
function samplerGraph(meta) {
  const graph = meta.sampler_graph;
  const entry = graph?.artifacts?.onnx;
  if (!entry?.path)
    throw new PageError("this export has no sampler graph (sampler.onnx in metadata.json's sampler_graph); re-export it with `python -m export`");
  const inputs = Object.keys(graph.inputs || {});
  const outputs = Object.keys(graph.output || {});
  const wanted = ["uniforms", "temperature", "prefix", "start", ...(meta.num_classes ? ["label"] : [])];
  if (inputs.sort().join() !== wanted.sort().join() || outputs.join() !== "images")
    throw new PageError(`metadata.json's sampler graph takes ${inputs.join(", ")} -> ${outputs.join(", ")}; this page feeds ${wanted.join(", ")} -> images`);
  return { ...entry, inputs: Object.fromEntries(inputs.map((n) => [n, n])), outputs: { images: "images" } };
}

async function sha256Hex(buffer) {
  if (!globalThis.crypto?.subtle) return null; // plain-http origins other than localhost have no WebCrypto
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// WebGPU when the browser offers an adapter (and `want` allows it), else WebAssembly.
async function loadRuntime(want) {
  let backend = "wasm";
  if (want === "webgpu" || (want === "auto" && globalThis.navigator?.gpu)) {
    const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
    if (adapter) backend = "webgpu";
    else if (want === "webgpu") throw new PageError("backend=webgpu asked for, but this browser offers no WebGPU adapter");
  }
  const bundle = backend === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  const core = backend === "webgpu" ? "ort-wasm-simd-threaded.asyncify" : "ort-wasm-simd-threaded";
  let ort;
  try {
    ort = await import(RUNTIME + bundle);
  } catch (e) {
    throw new PageError(`cannot load onnxruntime-web from ${RUNTIME}${bundle} (run \`npm ci\` in web/): ${e.message}`);
  }
  ort.env.wasm.wasmPaths = RUNTIME; // served beside the page: no CDN
  ort.env.wasm.proxy = backend === "wasm"; // run in a worker: the page stays responsive during a long draw
  return { ort, backend, files: [bundle, `${core}.mjs`, `${core}.wasm`].map((name) => RUNTIME + name) };
}

// Bytes of the runtime's files as the server sends them (encoded if it compresses; the .wasm is most of the first
// load); the worker's downloads are not in this page's resource timings, so ask the server.
async function runtimeBytes(files) {
  const sizes = await Promise.all(files.map((url) => fetch(url, { method: "HEAD" }).then((r) => Number(r.headers.get("content-length")) || 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

// WebAssembly threads: `asked` (?threads=), else every core. Threads need SharedArrayBuffer, which only a
// cross-origin isolated page has (COOP same-origin + COEP require-corp); without it the reason is returned.
export function chooseThreads(asked = 0) {
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  if (!globalThis.crossOriginIsolated)
    return { threads: 1, unavailable: "WebAssembly threads are unavailable: this page is not cross-origin isolated (its server must send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp); sampling runs on 1 thread" };
  return { threads: asked || cores, unavailable: null };
}

async function createSession(runtime, bytes, threads) {
  runtime.ort.env.wasm.numThreads = threads; // before the first session: onnxruntime-web reads it once, at init
  const providers = runtime.backend === "webgpu" ? ["webgpu", "wasm"] : ["wasm"];
  try {
    return await runtime.ort.InferenceSession.create(bytes, { executionProviders: providers });
  } catch (e) {
    throw new Error(String(e.message || e).split("\n")[0]);
  }
}

export class SamplerGraph {
  static async load(exportUrl, { backend = "auto", threads = 1 } = {}) {
    const meta = await readMetadata(exportUrl);
    const entry = samplerGraph(meta);
    const modelUrl = new URL(entry.path, exportUrl).href;
    const bytes = await (await fetchOk(modelUrl, "the sampler graph")).arrayBuffer();
    if (entry.bytes !== undefined && bytes.byteLength !== entry.bytes)
      throw new PageError(`${modelUrl} has ${bytes.byteLength} bytes, metadata.json says ${entry.bytes}: damaged or from another export`);
    const digest = entry.sha256 ? await sha256Hex(bytes) : null;
    if (digest && digest !== entry.sha256)
      throw new PageError(`${modelUrl} does not match the sha256 in metadata.json: damaged or from another export`);
    const modelBytes = bytes.byteLength; // before the buffer moves to the runtime's worker
    let runtime = await loadRuntime(backend);
    let session;
    try {
      session = await createSession(runtime, bytes, threads);
    } catch (e) {
      if (runtime.backend !== "webgpu" || backend !== "auto") throw new PageError(`onnxruntime-web cannot load ${modelUrl}: ${e.message}`);
      console.warn(`webgpu failed (${e.message}); falling back to wasm`); // an adapter is no promise that the EP works
      runtime = await loadRuntime("wasm");
      session = await createSession(runtime, bytes, threads).catch((e2) => {
        throw new PageError(`onnxruntime-web cannot load ${modelUrl}: ${e2.message}`);
      });
    }
    const names = [...session.inputNames].sort().join();
    if (names !== Object.keys(entry.inputs).sort().join())
      throw new PageError(`${modelUrl} takes inputs ${names}, not the ${Object.keys(entry.inputs).join(", ")} of metadata.json`);
    return new SamplerGraph(meta, entry, session, runtime, modelBytes, await runtimeBytes(runtime.files));
  }

  constructor(meta, entry, session, runtime, modelBytes, runtimeBytes) {
    Object.assign(this, { meta, entry, session, modelBytes, runtimeBytes });
    this.runtimeFiles = runtime.files; // the worker loads some of them: not in the page's resource timings
    this.ort = runtime.ort;
    this.backend = runtime.backend;
    this.shape = [meta.height, meta.width, meta.channels];
    this.size = meta.height * meta.width * meta.channels; // sub-pixels per image
    this.levels = meta.levels;
    this.numClasses = meta.num_classes;
  }

  // images Int32Array (n*H*W*C) of level indices; raster positions before `start` are copied from prefix.
  async run({ uniforms, n, temperature = 1, labels = null, prefix = null, start = 0 }) {
    const { ort, entry, shape } = this;
    const dims = [n, ...shape];
    if (uniforms.length !== n * this.size) throw new PageError(`need ${n * this.size} uniforms for ${n} images, got ${uniforms.length}`);
    const feeds = {
      [entry.inputs.uniforms]: new ort.Tensor("float32", Float32Array.from(uniforms), dims),
      [entry.inputs.temperature]: new ort.Tensor("float32", Float32Array.of(temperature), []),
      [entry.inputs.prefix]: new ort.Tensor("float32", prefix ? Float32Array.from(prefix) : new Float32Array(n * this.size), dims),
      [entry.inputs.start]: new ort.Tensor("int32", Int32Array.of(start), []),
    };
    if (entry.inputs.label) {
      if (!labels) throw new PageError(`this model is class-conditional: choose a class in 0..${this.numClasses - 1}`);
      feeds[entry.inputs.label] = new ort.Tensor("int32", Int32Array.from(labels), [n]);
    }
    const outputs = await this.session.run(feeds);
    return Int32Array.from(outputs[entry.outputs.images].data);
  }
}

// `node web/precompress.mjs`: brotli copies (.br, quality 11) beside the runtime files of the page's wasm backend,
// which serve.web (and static hosts that look for them) send to browsers accepting br: the 14.2 MB wasm goes out as
// 2.4 MB instead of gzip's 3.7 MB. Node's own zlib, no dependency; about 30 s, once per `npm ci`.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants } from "node:zlib";

const DIST = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url);
const FILES = ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs", "ort.wasm.min.mjs"]; // what the wasm backend loads

for (const name of FILES) {
  const path = new URL(name, DIST);
  let data;
  try {
    data = readFileSync(path);
  } catch (e) {
    console.error(`precompress: error: cannot read ${path.pathname} (${e.code}): run \`npm ci\` in web/ first`);
    process.exit(2);
  }
  const body = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } });
  const target = `${path.pathname}.br`;
  writeFileSync(`${target}.tmp`, body);
  renameSync(`${target}.tmp`, target); // a kill mid-write never leaves a truncated .br that a server would send
  // (newer than its file, as serve.web requires: a .br older than its file counts as stale and is not sent)
  console.log(`${name}: ${data.length} -> ${body.length} bytes (.br)`);
}

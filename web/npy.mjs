// A .npy reader (numpy.save's format): little-endian numbers, C order, for uniforms and level files.
const TYPES = { "<f4": Float32Array, "<f8": Float64Array, "<i4": Int32Array, "<i8": BigInt64Array, "|u1": Uint8Array, "<u1": Uint8Array };

export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, 6));
  if (magic !== "\x93NUMPY") throw new Error("not a .npy file (no \\x93NUMPY magic)");
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`cannot read the .npy header ${JSON.stringify(header)}`);
  if (fortran) throw new Error(".npy arrays must be in C order, not Fortran order");
  const Type = TYPES[descr];
  if (!Type) throw new Error(`.npy dtype ${descr} is not supported; use float32 or float64`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLength;
  if (buffer.byteLength - offset < count * Type.BYTES_PER_ELEMENT) throw new Error(".npy file is truncated");
  const data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  return { data, shape };
}

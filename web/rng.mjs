// numpy's default_rng(seed).random() in JavaScript (SeedSequence + PCG64), so a seed gives Python's uniforms.
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;
const PCG_MULT = (2549297995355413924n << 64n) + 4865540595714422341n;

const mul32 = (a, b) => Math.imul(a, b) >>> 0;

// numpy.random.SeedSequence(seed) for a non-negative integer seed: mixes its 32-bit words into a pool of 4.
function seedSequenceState(seed, nWords32) {
  let big = BigInt(seed);
  if (big < 0n) throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const entropy = [];
  do { entropy.push(Number(big & 0xffffffffn)); big >>= 32n; } while (big > 0n);
  let hashConst = 0x43b0d7e5;
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, 0x931e8875);
    value = mul32(value, hashConst);
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const r = (mul32(0xca01f9dd, x) - mul32(0x4973f715, y)) >>> 0;
    return (r ^ (r >>> 16)) >>> 0;
  };
  const pool = [0, 1, 2, 3].map((i) => hashmix(i < entropy.length ? entropy[i] : 0));
  for (let src = 0; src < 4; src++)
    for (let dst = 0; dst < 4; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  for (let src = 4; src < entropy.length; src++)
    for (let dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  let constB = 0x8b51f9dd;
  const out = [];
  for (let i = 0; i < nWords32; i++) {
    let v = (pool[i % 4] ^ constB) >>> 0;
    constB = mul32(constB, 0x58f38ded);
    v = mul32(v, constB);
    out.push((v ^ (v >>> 16)) >>> 0);
  }
  return out;
}

export class PCG64 {
  constructor(seed) {
    const w = seedSequenceState(seed, 8);
    const u64 = (k) => (BigInt(w[2 * k + 1]) << 32n) | BigInt(w[2 * k]);
    const initState = (u64(0) << 64n) | u64(1);
    const initSeq = (u64(2) << 64n) | u64(3);
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
  }

  step() {
    this.state = (this.state * PCG_MULT + this.inc) & M128;
  }

  nextUint64() {
    this.step();
    const rot = this.state >> 122n;
    const x = ((this.state >> 64n) ^ this.state) & M64;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  }

  random() {
    return Number(this.nextUint64() >> 11n) / 9007199254740992;
  }
}

// The largest float32 below 1: a float64 uniform that rounds up to 1 in float32 is kept below it, as serve does.
export const BELOW_ONE = 1 - 2 ** -24;

// float64 uniforms as the sampler graph takes them: float32, still in [0, 1).
export function toFloat32Uniforms(values) {
  return Float32Array.from(values, (v) => Math.min(Math.fround(v), BELOW_ONE));
}

// count uniforms in [0, 1) as float32: np.random.default_rng(seed).random(count), rounded as serve rounds them.
export function uniforms(seed, count) {
  const rng = new PCG64(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.min(Math.fround(rng.random()), BELOW_ONE);
  return out;
}


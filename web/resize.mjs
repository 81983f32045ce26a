// Pillow's crop-and-resize in JavaScript, pixel for pixel: what generate.py --complete does to a picture
// (pixelcnn_tf/figures.py centre_crop_resize: Image.resize(size, BILINEAR, box=centred crop)). A canvas's
// drawImage smoothing is not Pillow's filter, so the filter is ported here from Pillow's libImaging/Resample.c.
const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed-point coefficients for 8-bit images

// Python's round(): halves go to the even neighbour (Math.round sends them up).
export function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The largest centred crop of the model's aspect ratio: [left, top, right, bottom], as figures.centre_crop_resize.
export function centreCropBox(inWidth, inHeight, width, height) {
  const scale = Math.min(inWidth / width, inHeight / height);
  const cropW = Math.max(1, roundHalfEven(width * scale));
  const cropH = Math.max(1, roundHalfEven(height * scale));
  const left = Math.floor((inWidth - cropW) / 2);
  const top = Math.floor((inHeight - cropH) / 2);
  return [left, top, left + cropW, top + cropH];
}

const bilinear = (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0);

// precompute_coeffs + normalize_coeffs_8bpc: for each output index, the first input index, the count, and the
// fixed-point weights. The filter widens with the scale when shrinking (antialiasing) and may reach outside the box.
function coefficients(inSize, in0, in1, outSize) {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5)); // C's (int) cast truncates
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinear((x + xmin - center + 0.5) * ss);
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? kk[xx * ksize + x] / ww : kk[xx * ksize + x];
      kk[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * 2 ** PRECISION_BITS : 0.5 + w * 2 ** PRECISION_BITS);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

const clip8 = (v) => (v >= 2 ** (PRECISION_BITS + 8) ? 255 : v <= 0 ? 0 : Math.floor(v / 2 ** PRECISION_BITS));

// One pass of the separable filter along rows ("horizontal") or columns: src (srcW x srcH x channels) to
// dst (dstW x dstH); `offset` shifts the source rows a horizontal pass reads.
function pass(src, srcW, dst, dstW, dstH, channels, { bounds, kk, ksize }, horizontal, offset = 0) {
  for (let y = 0; y < dstH; y++)
    for (let x = 0; x < dstW; x++) {
      const i = horizontal ? x : y;
      const [first, count] = [bounds[i * 2], bounds[i * 2 + 1]];
      for (let c = 0; c < channels; c++) {
        let ss = 2 ** (PRECISION_BITS - 1);
        for (let t = 0; t < count; t++) {
          const at = horizontal ? (y + offset) * srcW + first + t : (first + t) * srcW + x;
          ss += src[at * channels + c] * kk[i * ksize + t];
        }
        dst[(y * dstW + x) * channels + c] = clip8(ss);
      }
    }
  return dst;
}

// pixels: Uint8 (inHeight*inWidth*channels); box: [left, top, right, bottom] of the source. Returns Uint8Array
// (height*width*channels) equal to Pillow's resize((width, height), BILINEAR, box) of an 8-bit L or RGB image.
// The order of the passes changes the rounding, so it is Pillow's (13.0, ImagingResampleInner): vertical first
// when the height shrinks by more than twice what the width does, else horizontal first (over the rows used only).
export function resizeBilinear(pixels, inWidth, inHeight, channels, width, height, box) {
  const h = coefficients(inWidth, box[0], box[2], width);
  const v = coefficients(inHeight, box[1], box[3], height);
  const verticalFirst = inHeight - height > 0 && inHeight - height > (inWidth - width) * 2;
  const out = new Uint8Array(height * width * channels);
  if (verticalFirst) {
    const temp = pass(pixels, inWidth, new Uint8Array(height * inWidth * channels), inWidth, height, channels, v, false);
    return pass(temp, inWidth, out, width, height, channels, h, true);
  }
  const first = v.bounds[0]; // only the source rows the vertical pass reads go through the horizontal one
  const rows = v.bounds[height * 2 - 2] + v.bounds[height * 2 - 1] - first;
  for (let i = 0; i < height; i++) v.bounds[i * 2] -= first;
  const temp = pass(pixels, inWidth, new Uint8Array(rows * width * channels), width, rows, channels, h, true, first);
  return pass(temp, width, out, width, height, channels, v, false);
}

// RGBA (as a canvas gives it) to Pillow's convert("L") (ITU-R 601-2 luma, Pillow's fixed-point rounding) or
// convert("RGB") (alpha dropped, not composited).
export function fromRGBA(rgba, channels) {
  const n = rgba.length / 4;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2]];
    if (channels === 1) out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    else out.set([r, g, b], i * 3);
  }
  return out;
}

// 0..255 values to level indices as figures.read_png_images does: round(v * (levels - 1) / 255) (never a tie:
// 255 is odd).
export const toLevels = (pixels, levels) => Int32Array.from(pixels, (v) => Math.round((v * (levels - 1)) / 255));

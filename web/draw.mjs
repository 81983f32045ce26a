// Level indices onto a canvas: grey or RGB images in a grid, scaled to 0..255 as serve.sampling.to_grid does.
import { roundHalfEven } from "./resize.mjs";

// images: n*H*W*C level indices (0..levels-1); a `gap`-pixel grey line between images; shown `scale` times larger
// (pixelated by the page's CSS); dim(k, row) tints the rows a draw replaced in image k.
export function drawGrid(canvas, images, n, columns, { shape, levels, scale = 2, dim = null, gap = 1 }) {
  const [h, w, c] = shape;
  const rows = Math.ceil(n / columns);
  canvas.width = columns * (w + gap) - gap;
  canvas.height = rows * (h + gap) - gap;
  canvas.style.width = `${canvas.width * scale}px`;
  const ctx = canvas.getContext("2d");
  const picture = ctx.createImageData(canvas.width, canvas.height);
  picture.data.fill(96); // the gaps' grey
  for (let i = 3; i < picture.data.length; i += 4) picture.data[i] = 255; // opaque
  const top = levels - 1;
  const grey = Uint8Array.from({ length: levels }, (_, v) => roundHalfEven((v * 255) / top)); // numpy's round: halves to even
  for (let k = 0; k < n; k++) {
    const [r0, c0] = [Math.floor(k / columns) * (h + gap), (k % columns) * (w + gap)];
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const src = ((k * h + i) * w + j) * c;
        const dst = ((r0 + i) * canvas.width + c0 + j) * 4;
        for (let ch = 0; ch < 3; ch++) picture.data[dst + ch] = grey[images[src + (c === 3 ? ch : 0)]];
        if (dim && dim(k, i)) picture.data[dst] = Math.min(255, picture.data[dst] + 110); // rows the draw replaces
      }
  }
  ctx.putImageData(picture, 0, 0);
}

// The largest whole zoom (1..maxScale) at which `columns` images of width w (plus gaps) fit in `pixels`.
export const zoomFor = (pixels, columns, w, gap = 1, maxScale = 8) =>
  Math.max(1, Math.min(maxScale, Math.floor(pixels / (columns * (w + gap)))));

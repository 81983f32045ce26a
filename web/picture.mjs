// "Complete your own picture": a dropped or picked image file, decoded in the browser (never uploaded), centre-cropped
// and resized to the model's size with Pillow's filter (resize.mjs), then quantized as generate.py --complete does.
import { PageError } from "./pixelcnn.mjs";
import { centreCropBox, fromRGBA, resizeBilinear, toLevels } from "./resize.mjs";

export const MAX_FILE_BYTES = 50e6; // larger files are refused before they are read
export const MAX_PIXELS = 50e6; // decoded pictures larger than this (about 8000×6000) are refused

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// {name, levels (H*W*C Int32Array), note} of `file` for a model of `shape` [H, W, C] and `levels`; PageError in one
// line for an empty, oversized or undecodable file.
export async function readPicture(file, shape, levels) {
  const name = file.name || "the file";
  if (file.size === 0) throw new PageError(`${name} is empty (0 bytes): choose a PNG or JPEG picture`);
  if (file.size > MAX_FILE_BYTES) throw new PageError(`${name} is ${mb(file.size)}, more than the ${mb(MAX_FILE_BYTES)} this page reads: choose a smaller picture`);
  let bitmap;
  try {
    // No colour management and no premultiplied alpha: the file's own values, as Pillow reads them.
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new PageError(`${name} is not a picture this browser can decode${file.type ? ` (${file.type})` : ""}: choose a PNG or JPEG`);
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    bitmap.close();
    throw new PageError(`${name} is ${width}×${height} pixels, more than the ${MAX_PIXELS / 1e6} million this page reads: choose a smaller picture`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const [h, w, c] = shape;
  const box = centreCropBox(width, height, w, h);
  const pixels = resizeBilinear(fromRGBA(rgba, c), width, height, c, w, h, box);
  const note = `${name} is ${width}×${height}: centre-cropped to ${box[2] - box[0]}×${box[3] - box[1]} and resized to ${w}×${h}`;
  return { name, levels: toLevels(pixels, levels), pixels, box, note };
}

"""Pictures beyond the sample grid (numpy and Pillow, no TensorFlow): completion grids, the sampling GIF, PNG input."""
from __future__ import annotations

import os

import numpy as np

from pixelcnn_tf.errors import UserError
from serve.sampling import to_grid

MAX_GIF_FRAMES = 64


def read_png_images(path: str, shape: tuple[int, int, int], levels: int) -> tuple[np.ndarray, str | None]:
    """(level indices (N, H, W, C), note) of a picture to complete.

    A picture of exactly H x W, or a PNG grid of whole H x W tiles (as generate.py writes), is read tile by tile
    (note None). Any other picture (a JPEG of another size, a PNG that is no such grid) is one image: its largest
    centred crop of the model's aspect ratio, resized to H x W (antialiased bilinear, as the training pipeline
    resizes with --image-size); the note says so in one line.
    """
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(path) as picture:
            picture.load()
            kind = picture.format
            picture = picture.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot read {path} as an image: {e}") from None
    pixels, note = np.asarray(picture), None
    rows, columns = pixels.shape[0] // height, pixels.shape[1] // width
    grid = kind == "PNG" and not (pixels.shape[0] % height or pixels.shape[1] % width) and rows * columns
    if not grid and (rows, columns, pixels.shape[0], pixels.shape[1]) != (1, 1, height, width):
        pixels, note = centre_crop_resize(picture, height, width)
        note = f"{path} is {picture.width}x{picture.height}: {note}"
        rows = columns = 1
    tiles = pixels.reshape(rows, height, columns, width, channels).transpose(0, 2, 1, 3, 4).reshape(-1, height, width, channels)
    return np.round(tiles.astype(np.float64) * (levels - 1) / 255.0).astype(np.uint8), note


def centre_crop_resize(picture, height: int, width: int) -> tuple[np.ndarray, str]:
    """(uint8 pixels (height, width[, 3]), what was done): the largest centred height:width crop, resized."""
    from PIL import Image

    scale = min(picture.width / width, picture.height / height)
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (picture.width - crop_w) // 2, (picture.height - crop_h) // 2
    resized = picture.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    return np.asarray(resized), f"centre-cropped to {crop_w}x{crop_h} and resized to {width}x{height}"


def completion_grid(originals: np.ndarray, completions: np.ndarray, keep_rows: int, levels: int) -> np.ndarray:
    """One row per original: the kept rows (the rest grey), its completions, then the original itself."""
    n, samples = len(originals), len(completions) // len(originals)
    occluded = originals.copy()
    occluded[:, keep_rows:] = 0
    tiles = np.concatenate([occluded[:, None], completions.reshape(n, samples, *originals.shape[1:]), originals[:, None]], axis=1)
    grid = to_grid(tiles.reshape(-1, *originals.shape[1:]), levels, columns=samples + 2)
    height = originals.shape[1]
    grey = grid.reshape(n, height, *grid.shape[1:])  # a view: dim the hidden part of each occluded tile
    width = originals.shape[2]
    grey[:, keep_rows:, :width] = 96
    return grid


def sampling_frames(images: np.ndarray, levels: int, columns: int, every_rows: int) -> list[np.ndarray]:
    """Grids of the images as raster sampling leaves them after every every_rows rows; the last one is the full grid.

    Sampling never revisits a drawn sub-pixel, so the loop's state after row r is the final images' rows < r.
    """
    height = images.shape[1]
    stops = list(range(every_rows, height, every_rows)) + [height]
    frames = []
    for stop in stops:
        partial = images.copy()
        partial[:, stop:] = 0
        frames.append(to_grid(partial, levels, columns))
    return frames


def write_gif(frames: list[np.ndarray], path: str, frame_ms: int = 120, last_ms: int = 1500) -> None:
    """An animated GIF, written atomically; the last frame stays longer."""
    from PIL import Image

    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.gif")
    pictures = [Image.fromarray(frame) for frame in frames]
    try:
        pictures[0].save(tmp, save_all=True, append_images=pictures[1:], loop=0, optimize=False,
                         duration=[frame_ms] * (len(frames) - 1) + [last_ms])
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None

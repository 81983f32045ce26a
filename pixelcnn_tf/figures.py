"""Pictures beyond the sample grid (numpy and Pillow, no TensorFlow): completion grids, the sampling GIF, PNG input."""
from __future__ import annotations

import os

import numpy as np

from pixelcnn_tf.errors import UserError
from serve.sampling import to_grid

MAX_GIF_FRAMES = 64


def read_png_images(path: str, shape: tuple[int, int, int], levels: int) -> np.ndarray:
    """Level indices (N, H, W, C) of a PNG holding one H x W image or a grid of them (as generate.py writes)."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("L" if channels == 1 else "RGB"))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, UnidentifiedImageError) as e:
        raise UserError(f"cannot read {path} as an image: {e}") from None
    rows, columns = pixels.shape[0] // height, pixels.shape[1] // width
    if pixels.shape[0] % height or pixels.shape[1] % width or not rows * columns:
        raise UserError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels: not a grid of {width}x{height} images")
    tiles = pixels.reshape(rows, height, columns, width, channels).transpose(0, 2, 1, 3, 4).reshape(-1, height, width, channels)
    return np.round(tiles.astype(np.float64) * (levels - 1) / 255.0).astype(np.uint8)


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

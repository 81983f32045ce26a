"""Write sample grids as PNG without TensorFlow, so ONNX/TFLite generation never imports it."""
from __future__ import annotations

import os

import numpy as np

from pixelcnn_tf.errors import UserError


def write_png(grid: np.ndarray, path: str) -> None:
    """Write a uint8 picture atomically (temporary name in the same folder, then rename)."""
    from PIL import Image

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"output folder {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.png")
    try:
        Image.fromarray(grid).save(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None

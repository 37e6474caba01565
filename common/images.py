"""Image grids for samples, reconstructions and latent-space walks, written as PNG with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def to_uint8(images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Images in `value_range` (clipped) as uint8; (n, h, w) or (n, h, w, c)."""
    low, high = value_range
    scaled = (np.asarray(images, np.float64) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def grid(images: np.ndarray, rows: int, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """Tile `rows * cols` uint8 images of shape (h, w) or (h, w, c) into one image, row by row,
    with `pad` pixels of `pad_value` between them. Missing cells stay blank."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"grid expects uint8 images (see to_uint8), got {images.dtype}")
    if len(images) > rows * cols:
        raise ValueError(f"{len(images)} images do not fit a {rows}x{cols} grid")
    h, w = images.shape[1:3]
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *images.shape[3:]), pad_value, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
    return out


def save_grid(path: str | os.PathLike, images: np.ndarray, rows: int, cols: int, *,
              value_range: tuple[float, float] = (0.0, 1.0), scale: int = 2) -> Path:
    """Write `images` (floats in `value_range`) as a `rows x cols` PNG grid, upscaled `scale` times
    with nearest-neighbour so that small digits stay readable."""
    from PIL import Image

    tiled = grid(to_uint8(images, value_range), rows, cols)
    if tiled.ndim == 3 and tiled.shape[2] == 1:
        tiled = tiled[:, :, 0]
    image = Image.fromarray(tiled)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path

"""U-Net (Ronneberger, Fischer & Brox 2015, Fig. 1) and its overlap-tile prediction (Fig. 2).

Contracting path: `depth` blocks of two unpadded ("valid") 3x3 convolutions + ReLU, each followed by
2x2 max pooling with stride 2; filters 64, 128, 256, 512, then 1024 at the bottom. Expanding path:
a 2x2 up-convolution halving the channels, concatenation with the centre-cropped feature map of the
same level, two valid 3x3 convolutions + ReLU. A final 1x1 convolution maps to the classes (logits;
the softmax is in the loss). 23 convolutional layers for depth 4. Drop-out at the end of the
contracting path (§3.1). Weights from N(0, sqrt(2 / N)), N the number of inputs of a unit (§3).

Every valid convolution loses 2 pixels per side, so a 572x572 tile gives a 388x388 output; a tile
size is usable only if every feature map before a pooling has an even size (`check_tile`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from common.layers import Dropout

if TYPE_CHECKING:  # config.py imports this module
    from papers.unet.config import UNetConfig


def output_size(tile: int, depth: int = 4) -> int | None:
    """The output size of a `tile`-pixel input, or None if some map before a pooling is odd or vanishes."""
    size = tile
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    for _ in range(depth):
        if size <= 0:
            return None
        size = 2 * size - 4
    return size if size > 0 else None


def valid_tiles(low: int, high: int, depth: int = 4) -> list[int]:
    return [t for t in range(max(low, 1), high + 1) if output_size(t, depth)]


def check_tile(tile: int, depth: int = 4) -> int:
    """The output size of a valid tile; a clear error naming the nearest valid sizes otherwise."""
    out = output_size(tile, depth)
    if out is None:
        below = valid_tiles(tile - 64, tile - 1, depth)
        above = valid_tiles(tile + 1, tile + 64, depth)
        nearest = [str(t) for t in (below[-1:] + above[:1])]
        raise ValueError(f"a {tile}x{tile} tile does not give an even size before every 2x2 pooling of a depth-"
                         f"{depth} U-Net; the nearest valid tile sizes are {' and '.join(nearest) or 'larger'} "
                         f"(valid sizes are 16k + 188 for depth 4, e.g. 572 -> 388)")
    return out


def _he():
    # N(0, sqrt(2 / fan_in)), untruncated as in the paper (Keras' HeNormal is truncated).
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")


def _crop_to(skip, target):
    """Centre-crop `skip` to the spatial size of `target` (sizes known at build time)."""
    dy, dx = skip.shape[1] - target.shape[1], skip.shape[2] - target.shape[2]
    return layers.Cropping2D(((dy // 2, dy - dy // 2), (dx // 2, dx - dx // 2)))(skip)


def build_unet(tile: int = 572, channels: int = 1, n_classes: int = 2, filters: int = 64, depth: int = 4,
               dropout: float = 0.5) -> keras.Model:
    check_tile(tile, depth)
    x = keras.Input((tile, tile, channels), name="tile")
    h, skips = x, []

    def block(h, f):
        for _ in range(2):
            h = layers.Conv2D(f, 3, padding="valid", activation="relu", kernel_initializer=_he())(h)
        return h

    for level in range(depth):
        h = block(h, filters * 2**level)
        skips.append(h)
        h = layers.MaxPooling2D(2)(h)
    h = block(h, filters * 2**depth)
    if dropout:
        h = Dropout(dropout, name="dropout")(h)
    for level in reversed(range(depth)):
        f = filters * 2**level
        h = layers.Conv2DTranspose(f, 2, strides=2, kernel_initializer=_he())(h)
        h = layers.Concatenate()([_crop_to(skips[level], h), h])
        h = block(h, f)
    logits = layers.Conv2D(n_classes, 1, kernel_initializer=_he(), name="logits")(h)
    return keras.Model(x, logits, name="unet")


def mirror_pad(image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Pad a 2-D image by mirroring at its borders (Fig. 2), repeatedly if a margin exceeds its size."""
    out, rows, cols = image, list(rows), list(cols)
    while max(rows + cols) > 0:
        step_r = [min(r, out.shape[0] - 1) for r in rows]
        step_c = [min(c, out.shape[1] - 1) for c in cols]
        out = np.pad(out, (tuple(step_r), tuple(step_c)), mode="reflect")
        rows = [r - s for r, s in zip(rows, step_r, strict=True)]
        cols = [c - s for c, s in zip(cols, step_c, strict=True)]
    return out


def predict_tiled(predict_fn, image: np.ndarray, tile: int, out: int, batch: int = 1) -> np.ndarray:
    """Overlap-tile prediction (Fig. 2) of a 2-D image of any size: the image is covered by output
    tiles of `out` pixels; each is predicted from the `tile`-pixel input around it, the context
    beyond the image filled by mirroring. `predict_fn` maps (n, tile, tile, 1) float arrays to
    (n, out, out, k); the result is (H, W, k). Memory: `batch` tiles at a time."""
    h, w = image.shape
    margin = (tile - out) // 2
    ny, nx = -(-h // out), -(-w // out)
    padded_h, padded_w = ny * out, nx * out
    padded = mirror_pad(image.astype(np.float32), (margin, padded_h - h + margin), (margin, padded_w - w + margin))
    corners = [(i * out, j * out) for i in range(ny) for j in range(nx)]
    result = None
    for start in range(0, len(corners), batch):
        part = corners[start:start + batch]
        tiles = np.stack([padded[y:y + tile, x:x + tile] for y, x in part])[..., None]
        pred = np.asarray(predict_fn(tiles))
        if result is None:
            result = np.zeros((padded_h, padded_w, pred.shape[-1]), np.float32)
        for (y, x), p in zip(part, pred, strict=True):
            result[y:y + out, x:x + out] = p
    return result[:h, :w]


def cell_probability(model, image: np.ndarray, config: UNetConfig) -> np.ndarray:
    """Overlap-tile prediction of one slice (float in [0, 1]): the softmax probability of 'cell'."""
    out = check_tile(config.tile)

    def predict(tiles):
        logits = keras.ops.convert_to_numpy(model(tiles, training=False))
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True))[..., 1:2]

    return predict_tiled(predict, image, config.tile, out, batch=config.eval_batch_size)[..., 0]

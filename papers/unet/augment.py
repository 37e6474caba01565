"""Data augmentation of U-Net (Ronneberger et al. 2015, §3.1): shifts, rotations, grey-value
variations and, above all, smooth elastic deformations — "random displacement vectors on a coarse
3 by 3 grid ... sampled from a Gaussian distribution with 10 pixels standard deviation. Per-pixel
displacements are then computed using bicubic interpolation." The same warp is applied to the image,
its labels and its weight map; images are resampled bicubically, labels by nearest neighbour (so
they stay binary), weight maps bilinearly; outside the image, values are mirrored.
"""

from __future__ import annotations

import numpy as np


def coarse_displacement(rng: np.random.Generator, grid: int = 3, sigma: float = 10.0) -> np.ndarray:
    """Random displacement vectors (2, grid, grid), N(0, sigma^2) pixels."""
    return rng.normal(0.0, sigma, (2, grid, grid))


def dense_displacement(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel displacements (2, H, W) from a coarse grid by bicubic interpolation, the grid's
    points spread evenly from corner to corner of the image."""
    import scipy.ndimage

    grid = coarse.shape[1]
    rows = np.linspace(0, grid - 1, shape[0])
    cols = np.linspace(0, grid - 1, shape[1])
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([scipy.ndimage.map_coordinates(c, [rr, cc], order=3, mode="nearest") for c in coarse])


def warp(array: np.ndarray, displacement: np.ndarray, order: int) -> np.ndarray:
    """array(x + displacement(x)) for a 2-D array; `order` 3 bicubic, 1 bilinear, 0 nearest."""
    import scipy.ndimage

    h, w = array.shape
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = [rr + displacement[0], cc + displacement[1]]
    return scipy.ndimage.map_coordinates(array, coords, order=order, mode="mirror").astype(array.dtype)


def elastic(image, labels, weights, rng, grid: int = 3, sigma: float = 10.0):
    """The same random elastic deformation of an image, its labels and weight map (2-D arrays)."""
    disp = dense_displacement(coarse_displacement(rng, grid, sigma), image.shape)
    return warp(image, disp, 3), warp(labels, disp, 0), warp(weights, disp, 1)


def dihedral(arrays, k: int, flip: bool):
    """Rotation by k * 90 degrees, then an optional left-right flip, of each array (lossless)."""
    out = [np.rot90(a, k) for a in arrays]
    return [np.fliplr(a) if flip else a for a in out]


def grey_values(image: np.ndarray, rng: np.random.Generator, contrast: float = 0.1, brightness: float = 0.1,
                gamma: float = 0.1) -> np.ndarray:
    """Random contrast, brightness and gamma of an image in [0, 1], clipped to [0, 1]."""
    out = np.clip(image, 0, 1) ** np.exp(rng.uniform(-gamma, gamma))
    out = (out - 0.5) * (1 + rng.uniform(-contrast, contrast)) + 0.5 + rng.uniform(-brightness, brightness)
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def augment(image, labels, weights, rng: np.random.Generator, elastic_sigma: float = 10.0, grid: int = 3):
    """One augmented copy of a training image (float in [0, 1]), its labels and weight map: a random
    rotation/flip, an elastic deformation and grey-value changes. Shifts come from where the
    training tile is cut (see the train script)."""
    image, labels, weights = dihedral([image, labels, weights], int(rng.integers(4)), bool(rng.integers(2)))
    if elastic_sigma > 0:
        image, labels, weights = elastic(np.ascontiguousarray(image), np.ascontiguousarray(labels),
                                         np.ascontiguousarray(weights), rng, grid, elastic_sigma)
    return grey_values(image, rng), labels, weights

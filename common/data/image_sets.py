"""CIFAR-10 and MNIST as 32x32 images for the GAN papers and their score networks: CIFAR-10 as it is
(32x32x3), MNIST zero-padded from 28x28 to 32x32x1 (the size the DCGAN-style networks make), uint8,
with labels, and `to_tanh_range` for the [-1, 1] of a generator's tanh (Radford et al. 2015, §4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.data import cifar10, mnist
from common.errors import check_choice

# The shape of each dataset's images as `load` gives them.
SHAPES = {"cifar10": (32, 32, 3), "mnist": (32, 32, 1)}
DATASETS = tuple(SHAPES)


@dataclass(frozen=True)
class ImageSet:
    train: np.ndarray  # uint8 (n, 32, 32, c)
    y_train: np.ndarray  # int32 (n,)
    test: np.ndarray
    y_test: np.ndarray
    source: str
    checksums: dict  # from the dataset's loader
    verified: bool


def load(dataset: str, data_dir: str | None, download: bool, verify: bool = True) -> ImageSet:
    """Training and test images of `dataset` ("cifar10" or "mnist") as 32x32 uint8, with labels."""
    check_choice("dataset", dataset, DATASETS)
    if dataset == "cifar10":
        data = cifar10.load(data_dir or None, download=download, verify=verify)
        return ImageSet(data.train.x, data.train.y, data.test.x, data.test.y, data.source, data.checksums,
                        data.verified)
    data = mnist.load(data_dir or None, download=download, verify=verify)
    pad = ((0, 0), (2, 2), (2, 2), (0, 0))
    return ImageSet(np.pad(data.x_train[..., None], pad), data.y_train, np.pad(data.x_test[..., None], pad),
                    data.y_test, data.source, data.checksums, data.verified)


def to_tanh_range(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to [-1, 1], the range of a generator's tanh."""
    return (x.astype(np.float32) / 127.5 - 1.0).astype(np.float32)

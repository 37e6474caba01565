"""CIFAR-10 as §4.2 trains on it: the training images less a validation split, the per-pixel mean
subtracted."""

from __future__ import annotations

import numpy as np

from common.data import cifar10
from papers.resnet.config import ResNetConfig


def prepare_data(config: ResNetConfig):
    """Train / val / test arrays with the per-pixel training mean subtracted (§4.2), in [0, 1] units."""
    data = cifar10.load(config.data_dir or None, download=config.download, verify=config.verify_data)
    train, val = cifar10.train_val_split(data.train, config.val_size)
    test = data.test
    if config.train_subset:
        train = train.take(np.arange(min(config.train_subset, len(train))))
    if config.test_subset:
        test = test.take(np.arange(min(config.test_subset, len(test))))
    mean = train.x.mean(axis=0, dtype=np.float64) / 255.0

    def prep(x):
        return (x.astype(np.float32) / 255.0 - mean).astype(np.float32)

    arrays = {"train": (prep(train.x), train.y), "val": (prep(val.x), val.y), "test": (prep(test.x), test.y),
              "pixel_mean": mean.astype(np.float32)}
    return arrays, data

"""MNIST as the GAN code splits it: 50,000 training images, 10,000 for validation, the 10,000 test images."""

from __future__ import annotations

import numpy as np

from common.data import mnist
from papers.cgan.config import TRAIN_IMAGES, CGANConfig


def prepare_data(config: CGANConfig):
    """MNIST as vectors in [0, 1]: the first 50,000 training images for training, the last 10,000 for
    validation (the GAN code's split), the 10,000 test images for the test."""
    data = mnist.load(config.data_dir or None, download=config.download, verify=config.verify_data)
    x = data.x_train.reshape(len(data.x_train), -1).astype(np.float32) / 255.0
    test = data.x_test.reshape(len(data.x_test), -1).astype(np.float32) / 255.0
    train, val, tst = slice(config.train_subset or None), slice(config.validation_subset or None), \
        slice(config.test_subset or None)
    splits = {"train": (x[:TRAIN_IMAGES][train], data.y_train[:TRAIN_IMAGES][train]),
              "validation": (x[TRAIN_IMAGES:][val], data.y_train[TRAIN_IMAGES:][val]),
              "test": (test[tst], data.y_test[tst])}
    return splits, data

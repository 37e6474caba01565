"""The images as the authors' scripts scale them, the labelled subset a data seed picks, and the batches of
one step (a labelled, an unlabelled and a second unlabelled batch)."""

from __future__ import annotations

import math

import keras
import numpy as np

from common.data import cifar10, mnist, svhn
from common.lifecycle.config import ConfigError
from papers.semi_supervised_gan.config import SemiSupervisedGANConfig


def load_data(config: SemiSupervisedGANConfig):
    """Training and test images as the authors' scripts scale them (MNIST vectors in [0, 1], CIFAR-10
    images as (x - 127.5) / 128, SVHN's as (x - 127.5) / 127.5), labels, and the loader's provenance."""
    root = config.data_dir or None
    if config.dataset == "mnist":
        data = mnist.load(root, download=config.download, verify=config.verify_data)
        x, y = data.x_train.reshape(-1, 784) / np.float32(255), data.y_train
        x_test, y_test = data.x_test.reshape(-1, 784) / np.float32(255), data.y_test
    elif config.dataset == "cifar10":
        data = cifar10.load(root, download=config.download, verify=config.verify_data)
        x, y, x_test, y_test = data.train.x, data.train.y, data.test.x, data.test.y
    else:
        data = svhn.load(root, download=config.download, verify=config.verify_data)
        x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if config.dataset != "mnist":
        scale = 128.0 if config.dataset == "cifar10" else 127.5  # cifar10_data.py; train_svhn_*.py's rescale
        x, x_test = (x.astype(np.float32) - 127.5) / scale, (x_test.astype(np.float32) - 127.5) / scale
    x, y = x[:config.train_subset or None].astype(np.float32), y[:config.train_subset or None]
    return (x, y), (x_test[:config.test_subset or None].astype(np.float32), y_test[:config.test_subset or None]), data


def labelled_subset(y: np.ndarray, labels: int, data_seed: int) -> np.ndarray:
    """Indices of the labelled images: the first labels / 10 of each class in a permutation drawn by
    `data_seed` (the authors' rng_data = RandomState(seed_data); the same images for the same seed)."""
    order = np.random.RandomState(data_seed).permutation(len(y))
    per_class = labels // 10
    chosen = [order[y[order] == c][:per_class] for c in range(10)]
    if any(len(c) < per_class for c in chosen):
        raise ConfigError(f"--labels={labels} needs {per_class} training images of every class; the training "
                              f"images used (see --train_subset) have fewer")
    return np.concatenate(chosen)


class Batches(keras.utils.PyDataset):
    """Epoch e, step t: ((labelled images, unlabelled images, more unlabelled images), labels). The labelled
    set is repeated in fresh random orders to fill the epoch; both unlabelled streams are permutations of
    all training images (the authors' trainx / trainx_unl / trainx_unl2), drawn from (seed, e)."""

    def __init__(self, x, y, labelled: np.ndarray, batch_size: int, seed: int):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
        self.x, self.y, self.labelled, self.batch_size, self.seed = x, y, labelled, batch_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        repeats = math.ceil(len(self.x) / len(self.labelled))
        self.lab = np.concatenate([self.labelled[rng.permutation(len(self.labelled))] for _ in range(repeats)])
        self.unl, self.unl2 = rng.permutation(len(self.x)), rng.permutation(len(self.x))

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __getitem__(self, t: int):
        part = slice(t * self.batch_size, (t + 1) * self.batch_size)
        lab = self.lab[part]
        return (self.x[lab], self.x[self.unl[part]], self.x[self.unl2[part]]), self.y[lab]

"""The images DCGAN trains on, scaled to tanh's range, and the labelled sets of §5.1's SVM."""

from __future__ import annotations

from common.data import image_sets
from papers.dcgan.config import DCGANConfig


def prepare_data(config: DCGANConfig) -> dict:
    """Training and test images scaled to [-1, 1] (§4: 'no pre-processing besides scaling to the range
    of the tanh'); MNIST zero-padded from 28x28 to 32x32."""
    data = image_sets.load(config.dataset, config.data_dir, config.download, config.verify_data)
    scale = image_sets.to_tanh_range
    # The SVM of §5.1 sees every labelled training image (or `svm_train_subset`); the GAN `train_subset`.
    return {"train": scale(data.train[:config.train_subset or None]), "test": scale(data.test), "set": data,
            "svm_train": (data.train[:config.svm_train_subset or None], data.y_train[:config.svm_train_subset or None]),
            "svm_test": (data.test, data.y_test), "scale": scale}

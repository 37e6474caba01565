"""The VAE's data as §5 trains and measures on it: MNIST binarized (Bernoulli samples of the grey values) or
Frey Face as grey values in [0, 1], flattened to vectors."""

from __future__ import annotations

import numpy as np

from common.data import frey_face, mnist
from papers.vae.config import VAEConfig

# Seeds of the binary samples drawn once (the test set, the train-bound subset, "fixed" training data),
# independent of the run's seed so that every run is measured on the same binary images.
BINARIZE_SEEDS = {"test": 1, "train_eval": 2, "train": 3}


def binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Bernoulli sample per pixel with the grey value (0..255 as 0..1) as probability."""
    return (rng.random(x.shape, dtype=np.float32) < x.astype(np.float32) / 255.0).astype(np.float32)


def _dynamic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return binarize(x, rng)


def _scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def prepare_data(config: VAEConfig) -> dict:
    """Training images (as stored; `transform` turns a batch into model input), and the test set and
    train-bound subset as model input, flattened to vectors."""
    if config.dataset == "mnist":
        data = mnist.load(config.data_dir or None, download=config.download, verify=config.verify_data)
        train, test = data.x_train, data.x_test
        likelihood = "bernoulli"
    else:
        data = frey_face.load(config.data_dir or None, download=config.download, n_train=config.frey_train_size,
                              verify=config.verify_data)
        train, test, likelihood = data.x_train, data.x_test, "gaussian"
    image_shape = train.shape[1:]
    train = train.reshape(len(train), -1)[:config.train_subset or None]
    test = test.reshape(len(test), -1)[:config.test_subset or None]
    eval_idx = np.arange(min(config.train_eval_size or len(train), len(train)))

    mode = config.binarization if likelihood == "bernoulli" else "none"
    if mode == "dynamic":
        transform = _dynamic
        once = {k: binarize(v, np.random.default_rng(BINARIZE_SEEDS[k])) for k, v in
                (("test", test), ("train_eval", train[eval_idx]))}
    else:
        if mode == "fixed":
            train = (binarize(train, np.random.default_rng(BINARIZE_SEEDS["train"])) * 255).astype(np.uint8)
            test = binarize(test, np.random.default_rng(BINARIZE_SEEDS["test"])) * 255
        elif mode == "threshold":
            train, test = (train > 127) * np.uint8(255), (test > 127) * 255.0
        transform = _scale
        once = {"test": test.astype(np.float32) / 255.0, "train_eval": _scale(train[eval_idx], None)}
    return {"train": train, "transform": transform, "test": once["test"], "train_eval": once["train_eval"],
            "likelihood": likelihood, "image_shape": image_shape, "source": data.source, "checksums": data.checksums,
            "verified": data.verified, "binarization": mode}

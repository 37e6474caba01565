"""Batches from in-memory NumPy arrays for `Model.fit`, on any Keras backend.

Each epoch's shuffle and each batch's augmentation are drawn from a generator seeded by
(seed, epoch, batch index), so a batch is a pure function of those three: worker threads can build
batches in any order, and a run resumed at an epoch boundary sees exactly the batches an
uninterrupted run would have seen. `common.lifecycle.training.EpochSync` tells the pipeline the epoch.
Pass `shuffle=False` to `fit`: Keras would otherwise reorder the batch indices with Python's global
`random` state, which a resumed process does not share.

An "epoch" may span several shuffled passes over a small dataset (`passes`), so that a run on 1,600
images is not evaluated and checkpointed after every 16 steps.
"""

from __future__ import annotations

import math

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """Batches of `x` (and `y`, when given; without it a batch is `x` alone, for models such as a VAE
    whose loss needs no target). `augment(x, rng)` transforms each batch (crops, flips, binarisation)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, batch_size: int, *, shuffle: bool = True,
                 drop_remainder: bool = True, augment=None, seed: int = 0, workers: int = 2, passes: int = 1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        if y is not None and len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if passes < 1:
            raise ValueError(f"passes must be at least 1, got {passes}")
        if drop_remainder and passes * len(x) < batch_size:
            raise ValueError(f"{len(x)} examples cannot fill one batch of {batch_size}")
        self.x, self.y, self.batch_size, self.passes = x, y, batch_size, passes
        self.shuffle, self.drop_remainder, self.augment, self.seed = shuffle, drop_remainder, augment, seed
        self.epoch = 0
        self._order = self._make_order(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._order = self._make_order(epoch)

    def _make_order(self, epoch: int) -> np.ndarray:
        n = len(self.x)
        if not self.shuffle:
            return np.tile(np.arange(n), self.passes)
        # Pass 0 keeps the (seed, epoch) stream of single-pass epochs, so that older runs resume identically.
        return np.concatenate([np.random.default_rng([self.seed, epoch] + ([p] if p else [])).permutation(n)
                               for p in range(self.passes)])

    def __len__(self) -> int:
        n = self.passes * len(self.x) / self.batch_size
        return math.floor(n) if self.drop_remainder else math.ceil(n)

    def __getitem__(self, index: int):
        idx = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        x = self.x[idx]
        if self.augment is not None:
            x = self.augment(x, np.random.default_rng([self.seed, self.epoch, index, 1]))
        return x if self.y is None else (x, self.y[idx])


def pad_crop_flip(pad: int):
    """Zero-pad by `pad` pixels, take a random crop of the original size, flip half of the images
    horizontally: the CIFAR augmentation of Lee et al. 2015 used by He et al. 2016 (§4.2).
    Each image gets its own crop offset and flip."""

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = x.shape[:3]
        if pad >= min(h, w):
            raise ValueError(f"a padding of {pad} pixels leaves nothing of a {h}x{w} image in some crops")
        dy = rng.integers(0, 2 * pad + 1, n)
        dx = rng.integers(0, 2 * pad + 1, n)
        flip = rng.random(n) < 0.5
        # The crop at (dy, dx) of the zero-padded image, copied from the image without building the padded
        # batch: a crop shifted by (sy, sx) = (dy - pad, dx - pad) takes rows sy.. of the image (its first
        # -sy rows are padding when sy < 0). Per image, basic slices: cheaper than one fancy-index gather of the batch.
        out = np.zeros_like(x)
        for i, (sy, sx) in enumerate(zip(dy - pad, dx - pad, strict=True)):
            out[i, max(-sy, 0):h - max(sy, 0), max(-sx, 0):w - max(sx, 0)] = \
                x[i, max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)]
            if flip[i]:
                out[i] = out[i, :, ::-1]
        return out

    return augment

"""The training tiles: random crops of the mirror-padded slices, elastically deformed, with their
labels and loss weight maps (§3.1)."""

from __future__ import annotations

import keras
import numpy as np

from papers.unet import augment
from papers.unet.config import UNetConfig
from papers.unet.model import check_tile, mirror_pad


class TileBatches(keras.utils.PyDataset):
    """`steps_per_epoch` batches of training tiles; batch i of epoch e is a pure function of
    (seed, e, i), so a resumed run sees the same tiles as an uninterrupted one."""

    def __init__(self, images, labels, weight_maps, config: UNetConfig, workers: int = 2):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4)
        self.images, self.labels, self.weights, self.config = images, labels, weight_maps, config
        self.out = check_tile(config.tile)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.config.steps_per_epoch

    def tile(self, rng: np.random.Generator):
        c = self.config
        k = int(rng.integers(len(self.images)))
        image, labels, wmap = self.images[k], self.labels[k], self.weights[k]
        if c.augment:
            image, labels, wmap = augment.augment(image, labels, wmap, rng, c.elastic_sigma, c.elastic_grid)
        h, w = image.shape
        out, margin = self.out, (c.tile - self.out) // 2
        # Shift: the output window anywhere in the slice (or the slice anywhere in it, if it is larger).
        y = int(rng.integers(max(h - out, 0) + 1))
        x = int(rng.integers(max(w - out, 0) + 1))
        extra = max(out - h, 0), max(out - w, 0)
        padded = mirror_pad(image, (margin, margin + extra[0]), (margin, margin + extra[1]))
        lab = mirror_pad(labels, (0, extra[0]), (0, extra[1]))
        wts = mirror_pad(wmap, (0, extra[0]), (0, extra[1]))
        return (padded[y:y + c.tile, x:x + c.tile, None], lab[y:y + out, x:x + out], wts[y:y + out, x:x + out])

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.config.seed, self.epoch, index])
        parts = [self.tile(rng) for _ in range(self.config.batch_size)]
        return tuple(np.stack(p) for p in zip(*parts, strict=True))

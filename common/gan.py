"""Plumbing shared by the GAN papers: generating in batches, fixed-noise sample grids written during
training, latent-space interpolations, a simple, checkable sample-quality signal (nearest-neighbour
distance to real images), and the plain Keras models a step benchmark compares a GAN step with. The
networks and adversarial losses live in each paper's folder; the alternating updates in
`common.adversarial`; Inception-style scores in `common.metrics.generative`; the 32x32 image sets in
`common.data.image_sets`."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from common import images


def generate(generator, z: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Generator outputs for the latent vectors `z`, in batches, as NumPy (inference mode)."""
    return np.concatenate([keras.ops.convert_to_numpy(generator(z[i:i + batch_size], training=False))
                           for i in range(0, len(z), batch_size)])


class SampleGrid(keras.callbacks.Callback):
    """After every `every` epochs, the generator's images for one fixed set of latent vectors (so that
    successive grids show the same samples evolving), written as `<folder>/epoch_NNNN.png`."""

    def __init__(self, generator, z: np.ndarray, folder: str | Path, rows: int, every: int = 1,
                 value_range: tuple[float, float] = (-1.0, 1.0), image_shape: tuple | None = None):
        super().__init__()
        self.generator, self.z, self.folder, self.rows = generator, z, Path(folder), rows
        self.every, self.value_range, self.image_shape = every, value_range, image_shape

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.write(self.folder / f"epoch_{epoch + 1:04d}.png")

    def write(self, path: Path) -> Path:
        cols = int(np.ceil(len(self.z) / self.rows))
        x = generate(self.generator, self.z)
        if self.image_shape is not None:  # a generator of flat vectors
            x = x.reshape(-1, *self.image_shape)
        return images.save_grid(path, x, self.rows, cols, value_range=self.value_range)


def plain_references(generator, discriminator, latent_dim: int, optimizers, loss):
    """The reference a GAN step benchmark times its step against: ordinary compiled Keras models doing the
    same forward and backward work as the two updates. `(plain D, plain G->D)`: a copy of the discriminator
    (or critic), and the stack z -> D(G(z)) with D's copy frozen, so that only G's gradients are applied, as
    in the generator update. `optimizers`: a function of the player ("discriminator" or "generator") giving
    that player's optimizer; `loss`: the loss both are compiled with."""
    plain_d = keras.models.clone_model(discriminator)
    plain_d.compile(optimizers("discriminator"), loss=loss)
    frozen = keras.models.clone_model(discriminator)
    frozen.trainable = False
    z = keras.Input((latent_dim,))
    stack = keras.Model(z, frozen(generator(z)))
    stack.compile(optimizers("generator"), loss=loss)
    return plain_d, stack


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """`steps` latent vectors on the straight line from each row of z0 to the same row of z1
    (Radford et al. 2015, §6.1 walk in the latent space): shape (len(z0) * steps, dim), row by row."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    return (z0[:, None, :] * (1 - t) + z1[:, None, :] * t).reshape(-1, z0.shape[1])


def nearest_neighbour_distance(samples: np.ndarray, reference: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Euclidean distance from each sample to its nearest reference image (flattened pixels): small
    for copies of training images, large for noise, and a collapse to few modes shows as many
    samples sharing one neighbour (see `nearest_neighbour_index`). As in the DCGAN authors' code
    (nnd_score), on held-out real images."""
    return _nearest(samples, reference, chunk)[0]


def nearest_neighbour_index(samples: np.ndarray, reference: np.ndarray, chunk: int = 256) -> np.ndarray:
    return _nearest(samples, reference, chunk)[1]


def _nearest(samples, reference, chunk):
    a = np.asarray(samples, np.float32).reshape(len(samples), -1)
    b = np.asarray(reference, np.float32).reshape(len(reference), -1)
    b_sq = (b.astype(np.float64) ** 2).sum(1)
    dist, index = np.empty(len(a)), np.empty(len(a), np.int64)
    for lo in range(0, len(a), chunk):
        part = a[lo:lo + chunk]
        d2 = (part.astype(np.float64) ** 2).sum(1)[:, None] - 2.0 * (part @ b.T) + b_sq[None, :]
        index[lo:lo + chunk] = d2.argmin(1)
        dist[lo:lo + chunk] = np.sqrt(np.maximum(d2[np.arange(len(part)), index[lo:lo + chunk]], 0.0))
    return dist, index


def score_samples(network, generator, z: np.ndarray, real: np.ndarray) -> tuple[dict, dict]:
    """`network`'s score and Fréchet distance of G(z) against as many `real` images (a
    `metrics.generative.FeatureNetwork`): the full scores, and what a results record's `final` keeps of them."""
    scores = network.scores(generate(generator, z), real[:len(z)], splits=min(10, len(z)))
    return scores, {"sample_score": scores["score"], "sample_score_std": scores["score_std"],
                    "sample_fd": scores["frechet_distance"], **network.describe()}


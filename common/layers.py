"""Keras' Dropout and GaussianNoise, with the same draws on several TensorFlow replicas as on one device.

Under a TensorFlow `MirroredStrategy` every replica reads the same `SeedGenerator` state, so Keras' own
layers would draw the same mask (or noise) for each replica's share of the batch: replica 2's rows would be
dropped exactly where replica 1's are. These subclasses draw, on replicas, for the global batch and keep the
replica's rows (`distribute.batch_draw`), as the GANs do for z; with the draw that Keras' layer makes
(`tf.nn.experimental.stateless_dropout`'s uniform >= rate; `normal`), so the replicas together draw what one
device draws. Anywhere else (one device, JAX, inference) they are Keras' layers unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

from common import distribute


def _rows_of(inputs, draw):
    """`draw(shape)` for this replica's rows of the global batch when replicas split it, else for `inputs`."""
    shape = ops.shape(inputs)
    return distribute.batch_draw(lambda rows: draw((rows, *shape[1:])), shape[0])


@keras.saving.register_keras_serializable(package="kpb")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` (without `noise_shape`) whose masks on TensorFlow replicas are each replica's
    rows of the global batch's mask."""

    def __init__(self, rate, **kwargs):
        if kwargs.get("noise_shape") is not None:
            raise ValueError("common.layers.Dropout draws one mask entry per input entry: no noise_shape")
        super().__init__(rate, **kwargs)

    def call(self, inputs, training=False):
        if not (training and 0 < self.rate < 1) or not distribute.replicated():
            return super().call(inputs, training=training)
        # TensorFlow's stateless_dropout, whose uniform draw Keras' layer makes: keep where uniform >= rate.
        keep = _rows_of(inputs, lambda shape: keras.random.uniform(shape, dtype=inputs.dtype,
                                                                   seed=self.seed_generator)) >= self.rate
        return ops.where(keep, inputs * (1.0 / (1.0 - self.rate)), ops.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="kpb")
class GaussianNoise(keras.layers.GaussianNoise):
    """`keras.layers.GaussianNoise` whose noise on TensorFlow replicas is each replica's rows of the global
    batch's noise."""

    def call(self, inputs, training=False):
        if not (training and self.stddev > 0) or not distribute.replicated():
            return super().call(inputs, training=training)
        return inputs + _rows_of(inputs, lambda shape: keras.random.normal(shape, stddev=self.stddev,
                                                                           dtype=self.compute_dtype,
                                                                           seed=self.seed_generator))

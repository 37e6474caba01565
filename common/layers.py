"""Keras' Dropout and GaussianNoise, with the same draws on several TensorFlow replicas as on one device, and
Keras' BatchNormalization with TensorFlow's fused kernel.

Under a TensorFlow `MirroredStrategy` every replica reads the same `SeedGenerator` state, so Keras' own
layers would draw the same mask (or noise) for each replica's share of the batch: replica 2's rows would be
dropped exactly where replica 1's are. These subclasses draw, on replicas, for the global batch and keep the
replica's rows (`distribute.batch_draw`), as the GANs do for z; with the draw that Keras' layer makes
(`tf.nn.experimental.stateless_dropout`'s uniform >= rate; `normal`), so the replicas together draw what one
device draws. Anywhere else (one device, JAX, inference) they are Keras' layers unchanged.

`BatchNormalization` computes what Keras' layer computes, but in training on TensorFlow it calls the fused
batch-norm kernel (one op forward, one backward) where Keras composes moments and normalisation from a dozen
element-wise ops. On the project's 2-core CPU that made the ResNet-20 train step 1.26x faster in one run
(results/resnet/resnet20_benchmark_seed0_20261130T174918Z.json). The two differ by float rounding only
(tests/common/test_layers.py).
"""

from __future__ import annotations

import keras
from keras import ops

from common.lifecycle import distribute

_FUSED_BATCHNORM = [True]


def use_fused_batchnorm(on: bool) -> None:
    """Whether `BatchNormalization` below trains with TensorFlow's fused kernel (`--fused_batchnorm`, on by
    default); read when a train step is traced, so set it before the first step (`common.lifecycle.run.Run` does)."""
    _FUSED_BATCHNORM[0] = bool(on)


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


@keras.saving.register_keras_serializable(package="kpb")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, computed in training on TensorFlow by the fused kernel
    (`FusedBatchNormV3`) when the layer normalises the last axis of a rank-2 or rank-4 input, without a mask,
    renorm or synchronisation over replicas, in float32 or less, unless `use_fused_batchnorm(False)`. Everything
    else (other backends, inference, float64, the moving statistics' use) is Keras' layer unchanged.

    The moving statistics are updated as Keras updates them, with the batch's biased variance (the kernel
    returns the unbiased one, n / (n - 1) times larger), and the computation runs in float32 whatever the
    dtype policy, as Keras' layer does."""

    def _fused(self, inputs, training, mask) -> bool:
        rank = len(inputs.shape)
        return (_FUSED_BATCHNORM[0] and bool(training) and self.trainable and mask is None and not self.synchronized
                and not self.renorm and keras.backend.backend() == "tensorflow" and rank in (2, 4)
                and self.axis in (-1, rank - 1) and keras.backend.standardize_dtype(inputs.dtype) != "float64")

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        if len(inputs.shape) == 2:
            x = x[:, None, None, :]
        channels = x.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        empty = tf.constant([], "float32")
        y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(x) // channels, "float32")
        variance = tf.where(count > 1, unbiased * (count - 1.0) / tf.maximum(count, 1.0), tf.zeros_like(unbiased))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        if len(inputs.shape) == 2:
            y = y[:, 0, 0, :]
        return ops.cast(y, self.compute_dtype)

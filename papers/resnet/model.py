"""The CIFAR-10 residual networks of He et al. 2016, "Deep Residual Learning for Image Recognition", §4.2.

    conv3x3(16) - BN - ReLU
    3 stages of n residual blocks on 32x32 / 16x16 / 8x8 maps with 16 / 32 / 64 filters
        block: conv3x3 - BN - ReLU - conv3x3 - BN - (+ shortcut) - ReLU
    global average pooling - 10-way fully connected - softmax

that is 6n+2 weighted layers (n = 3, 5, 7, 9, 18: ResNet-20/32/44/56/110). The first block of stages
2 and 3 subsamples with stride 2; its shortcut is option A (§3.3): identity on every other pixel,
with the extra channels zero-padded, so that all shortcuts are parameter-free (§4.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from common.layers import BatchNormalization

if TYPE_CHECKING:  # config.py imports this module
    from papers.resnet.config import ResNetConfig

DEPTHS = (20, 32, 44, 56, 110)
FILTERS = (16, 32, 64)


def zero_pad_shortcut(x, filters: int, stride: int, name: str):
    """Option A shortcut (§3.3): subsample by `stride` (a 1x1 max-pool, i.e. every other pixel) and
    zero-pad the channel axis to `filters`, split evenly on both sides. Built from stock Keras layers,
    so that a saved network loads without this module (`common.metrics.generative` loads the classifier by file,
    with `common.layers` registered for the batch normalisation)."""
    h, w, channels = x.shape[1:]
    extra = filters - channels
    x = layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{name}_subsample")(x)
    x = layers.Reshape((-(-h // stride), -(-w // stride), channels, 1), name=f"{name}_as_volume")(x)
    x = layers.ZeroPadding3D(((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{name}_pad_channels")(x)
    return layers.Reshape((-(-h // stride), -(-w // stride), filters), name=name)(x)


def blocks_per_stage(depth: int) -> int:
    if depth not in DEPTHS and (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 (the paper's are {DEPTHS}), got {depth}")
    return (depth - 2) // 6


def build_model(depth: int = 20, num_classes: int = 10, weight_decay: float = 1e-4,
                input_shape=(32, 32, 3), precision: str = "float32") -> keras.Model:
    """ResNet-`depth` for CIFAR-10.

    `precision`: a Keras dtype policy for every layer but the classifier, whose softmax stays in float32:
    "float32" (§4.2), or "mixed_bfloat16" (ours: bfloat16 arithmetic, float32 weights and updates).

    `weight_decay` is the paper's (Caffe-style) decay: the update adds `weight_decay * w` to each
    gradient. Keras' L2 regulariser `l2` adds `l2 * sum(w**2)` to the loss, whose gradient is
    `2 * l2 * w`, so the regulariser gets `weight_decay / 2`. It is applied to every parameter
    (convolution and dense kernels, dense bias, BN scale and shift), as in Caffe and fb.resnet.torch.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return _build(depth, num_classes, weight_decay, input_shape)
    finally:
        keras.config.set_dtype_policy(previous)


def _build(depth, num_classes, weight_decay, input_shape) -> keras.Model:
    n = blocks_per_stage(depth)
    reg = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    # "We initialize the weights as in [13]": zero-mean Gaussian, std sqrt(2 / fan_in).
    init = keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")

    def conv(x, filters, stride, name):
        return layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                             kernel_initializer=init, kernel_regularizer=reg, name=name)(x)

    def bn(x, name):
        # Keras' BN defaults (momentum 0.99, epsilon 1e-3); the paper follows [16] without stating them.
        return BatchNormalization(gamma_regularizer=reg, beta_regularizer=reg, name=name)(x)

    inputs = keras.Input(input_shape, name="image")
    x = layers.ReLU(name="stem_relu")(bn(conv(inputs, FILTERS[0], 1, "stem_conv"), "stem_bn"))
    for stage, filters in enumerate(FILTERS, start=1):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            name = f"stage{stage}_block{block}"
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = zero_pad_shortcut(x, filters, stride, name=f"{name}_shortcut")
            y = layers.ReLU(name=f"{name}_relu1")(bn(conv(x, filters, stride, f"{name}_conv1"), f"{name}_bn1"))
            y = bn(conv(y, filters, 1, f"{name}_conv2"), f"{name}_bn2")
            x = layers.ReLU(name=f"{name}_relu2")(layers.Add(name=f"{name}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, bias_regularizer=reg,
                           dtype="float32", name="fc")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


@keras.saving.register_keras_serializable(package="resnet")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The fast preset's learning rate (ours, not §4.2's): a linear rise from 0 to `peak` over the first
    `peak_at` iterations, then a linear fall to 0 at `total`. A pure function of the iteration count, so
    that a resumed run continues it exactly."""

    def __init__(self, peak: float, peak_at: int, total: int):
        self.peak, self.peak_at, self.total = float(peak), int(peak_at), int(total)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0  # the rate of update number step + 1
        rise = self.peak * step / max(self.peak_at, 1)
        fall = self.peak * (self.total - step) / max(self.total - self.peak_at, 1)
        return keras.ops.maximum(keras.ops.where(step <= self.peak_at, rise, fall), 0.0)

    def get_config(self):
        return {"peak": self.peak, "peak_at": self.peak_at, "total": self.total}


@keras.saving.register_keras_serializable(package="resnet")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy against targets with `epsilon` of their mass spread evenly over the classes (label
    smoothing; the fast preset's, not §4.2's), for integer labels and a softmax output."""

    def __init__(self, epsilon: float, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        log_p = keras.ops.log(keras.ops.clip(y_pred, 1e-7, 1.0))
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1, 1))
        nll = -keras.ops.take_along_axis(log_p, labels, axis=-1)[:, 0]
        return (1.0 - self.epsilon) * nll - self.epsilon * keras.ops.mean(log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def lr_schedule(config: ResNetConfig):
    """The learning rate as a function of the iteration count: §4.2's steps, or the fast preset's one cycle."""
    if config.lr_schedule == "onecycle":
        return OneCycle(config.learning_rate, round(config.lr_peak_share * config.max_iterations),
                        config.max_iterations)
    return step_schedule(config)


def step_schedule(config: ResNetConfig):
    """Step schedule over iterations (§4.2): lr / 10 at each boundary, after an optional warm-up at
    `warmup_lr`. A pure function of the iteration count, so it compiles into the train step on
    every backend and resumes exactly with the optimizer's state."""
    values = [config.learning_rate * 0.1**i for i in range(len(config.lr_boundaries) + 1)]
    boundaries = list(config.lr_boundaries)
    warmup = config.warmup_iterations
    if warmup:
        boundaries, values = [warmup, *boundaries], [config.warmup_lr, *values]
    if not boundaries:
        return config.learning_rate
    # The optimizer asks for the rate with the number of updates already made, and
    # PiecewiseConstantDecay switches *after* a boundary (step > b): b - 1 makes update number b + 1
    # the first at the new rate, i.e. "divide it by 10 at 32k iterations".
    return keras.optimizers.schedules.PiecewiseConstantDecay([b - 1 for b in boundaries], values)


def compile_model(model: keras.Model, config: ResNetConfig) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.SGD(lr_schedule(config), momentum=config.momentum, nesterov=config.nesterov),
        loss=(SmoothedSparseCrossentropy(config.label_smoothing) if config.label_smoothing
              else keras.losses.SparseCategoricalCrossentropy()),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit,
    )
    return model


def image_classifier(model: keras.Model, pixel_mean: np.ndarray) -> keras.Model:
    """The trained network as a self-contained classifier of CIFAR-10 images in [-1, 1] (the range of
    a GAN generator's tanh) with its preprocessing inside: -> [0, 1] -> minus the per-pixel training
    mean -> class probabilities. Saved as `classifier.keras` in the run directory, it is the feature
    network the GAN papers' scores load by path (`common.metrics.generative.FeatureNetwork.from_model_file`)."""
    x = keras.Input((32, 32, 3), name="image_minus1_to_1")
    h = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
    h = keras.layers.Normalization(axis=(1, 2, 3), mean=pixel_mean, variance=np.ones_like(pixel_mean),
                                   name="minus_pixel_mean")(h)
    return keras.Model(x, model(h), name=f"{model.name}_cifar10_classifier")


def classifier_card(record: dict) -> dict:
    """The card of a run's `classifier.keras` (read by `common.metrics.generative.FeatureNetwork`, so that GAN
    scores made with it carry its test accuracy), taken from the run's results record."""
    final, config = record["final"], record["config"]
    return {"what": f"CIFAR-10 {record['variant']} classifier ({record['preset']} preset, seed {record['seed']}), "
                    "saved by papers/resnet/train.py",
            "dataset": "cifar10", "source": record["data"]["source"], "train_images": record["data"]["train"],
            "test_images": record["data"]["test"], "test_accuracy": 1.0 - final["test_error"],
            "input": "images in [-1, 1], 32x32x3", "seed": record["seed"], "preset": record["preset"],
            "iterations": final["iterations"], "batch_size": config["batch_size"], "git": record["git"],
            "versions": record["versions"], "device": record["device"], "started": record["started"],
            "wall_time_s": record["wall_time_s"]}

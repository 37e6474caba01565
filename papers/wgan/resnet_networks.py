"""The ResNet generator and critic of Gulrajani et al. 2017 (Appendix C; the unconditional CIFAR-10
model of their Table 3, 7.86 +- 0.07), written from the description and their released script's
layer list: for 32x32 images, DIM = 128 filters everywhere.

Residual block (pre-activation): norm -> ReLU -> 3x3 conv -> norm -> ReLU -> 3x3 conv, added to a
shortcut. "up" blocks upsample (nearest neighbour) before their first convolution, "down" blocks
mean-pool (2x2) after their second; the shortcut is the identity when nothing changes shape, else a
1x1 convolution with the same resampling.

  G: z (128) -> linear to 4x4xDIM -> 3 up blocks (8, 16, 32) -> BN -> ReLU -> 3x3 conv to C -> tanh
  critic: first block (conv -> ReLU -> conv -> mean-pool; shortcut mean-pool -> 1x1 conv) -> down
          block -> 2 blocks -> ReLU -> mean over positions -> linear to 1

G's blocks use batch normalisation; the critic's none (the gradient penalty is per example), or layer
normalisation if asked. Convolutions inside blocks are initialised uniform with variance 2 / fan_avg,
the 1x1 shortcuts, the output convolution and the linear layers Glorot-uniform, as in their code.
"""

from __future__ import annotations

import keras
from keras import layers

from common.errors import check_choice
from common.layers import BatchNormalization

CRITIC_NORMS = ("none", "layer", "batch")


def _conv(filters: int, size: int, he: bool = True, name: str | None = None):
    init = keras.initializers.VarianceScaling(2.0 if he else 1.0, mode="fan_avg", distribution="uniform")
    return layers.Conv2D(filters, size, padding="same", kernel_initializer=init, name=name)


def _norm(kind: str, name: str):
    if kind == "batch":
        return BatchNormalization(name=name)
    if kind == "layer":  # per example over positions and channels
        return layers.LayerNormalization(axis=(1, 2, 3), name=name)
    return layers.Identity(name=name)


def residual_block(x, filters: int, resample: str | None, norm: str, name: str):
    """Pre-activation residual block; `resample`: None, "up" or "down"."""
    channels = x.shape[-1]
    shortcut = x
    if resample == "up":
        shortcut = _conv(filters, 1, he=False, name=f"{name}_shortcut")(layers.UpSampling2D(2)(x))
    elif resample == "down":
        shortcut = layers.AveragePooling2D(2)(_conv(filters, 1, he=False, name=f"{name}_shortcut")(x))
    elif channels != filters:
        shortcut = _conv(filters, 1, he=False, name=f"{name}_shortcut")(x)
    h = layers.ReLU()(_norm(norm, f"{name}_norm1")(x))
    if resample == "up":
        h = layers.UpSampling2D(2)(h)
    h = _conv(channels if resample == "down" else filters, 3, name=f"{name}_conv1")(h)
    h = layers.ReLU()(_norm(norm, f"{name}_norm2")(h))
    h = _conv(filters, 3, name=f"{name}_conv2")(h)
    if resample == "down":
        h = layers.AveragePooling2D(2)(h)
    return layers.Add(name=f"{name}_out")([shortcut, h])


def resnet_generator(image_shape=(32, 32, 3), latent_dim: int = 128, dim: int = 128, name: str = "generator"):
    if tuple(image_shape[:2]) != (32, 32):
        raise ValueError(f"this generator makes 32x32 images (pad MNIST to 32x32), got {image_shape}")
    z = keras.Input((latent_dim,), name="z")
    h = layers.Reshape((4, 4, dim))(layers.Dense(4 * 4 * dim, name="project")(z))
    for i in range(3):
        h = residual_block(h, dim, "up", "batch", name=f"g_block{i + 1}")
    h = layers.ReLU()(BatchNormalization(name="g_out_norm")(h))
    image = layers.Activation("tanh")(_conv(image_shape[2], 3, he=False, name="g_out")(h))
    return keras.Model(z, image, name=name)


def resnet_critic(image_shape=(32, 32, 3), dim: int = 128, norm: str = "none", name: str = "critic"):
    check_choice("critic norm", norm, CRITIC_NORMS)
    x = keras.Input(image_shape, name="image")
    h = _conv(dim, 3, name="d_block1_conv1")(x)
    h = layers.AveragePooling2D(2)(_conv(dim, 3, name="d_block1_conv2")(layers.ReLU()(h)))
    shortcut = _conv(dim, 1, he=False, name="d_block1_shortcut")(layers.AveragePooling2D(2)(x))
    h = layers.Add(name="d_block1_out")([shortcut, h])
    h = residual_block(h, dim, "down", norm, name="d_block2")
    h = residual_block(h, dim, None, norm, name="d_block3")
    h = residual_block(h, dim, None, norm, name="d_block4")
    h = layers.GlobalAveragePooling2D()(layers.ReLU()(h))
    return keras.Model(x, layers.Dense(1, name="critic_out")(h), name=name)

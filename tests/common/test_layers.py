"""common.layers.BatchNormalization: Keras' layer, computed in training on TensorFlow by the fused kernel.

It must compute what Keras' layer computes (output, gradients, moving statistics) within float rounding, use
the fused kernel where it says it does, and be Keras' layer unchanged everywhere else.
"""

import keras
import numpy as np
import pytest

from common import layers

TF = keras.backend.backend() == "tensorflow"


def _pair(shape, precision="float32", **kwargs):
    """Keras' layer and ours, built alike with the same random scale, shift and moving statistics."""
    rng = np.random.default_rng(1)
    theirs = keras.layers.BatchNormalization(dtype=precision, **kwargs)
    ours = layers.BatchNormalization(dtype=precision, **kwargs)
    for layer in (theirs, ours):
        layer.build(shape)
    values = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in theirs.weights]
    theirs.set_weights(values)
    ours.set_weights(values)
    return theirs, ours


def _batch(shape):
    return np.random.default_rng(2).normal(1.0, 2.0, size=shape).astype("float32")


CASES = [((6, 4, 3, 5), {}), ((12, 7), {}), ((6, 4, 3, 5), {"scale": False, "epsilon": 1e-6}),
         ((2, 2, 2, 3), {"center": False, "momentum": 0.5})]


@pytest.mark.jax
@pytest.mark.parametrize("shape,kwargs", CASES)
def test_training_pass_and_moving_statistics_equal_keras(shape, kwargs):
    """The training output and the moving mean and variance after it are Keras' within float rounding. The
    smallest case (8 values per channel, momentum 0.5) makes the kernel's unbiased variance, 8/7 of the biased
    one Keras keeps, move the moving variance by 7 %: the comparison would catch a missing correction."""
    theirs, ours = _pair(shape, momentum=kwargs.pop("momentum", 0.9), **kwargs)
    x = _batch(shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x, training=True)),
                               keras.ops.convert_to_numpy(theirs(x, training=True)), rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x, training=False)),
                               keras.ops.convert_to_numpy(theirs(x, training=False)), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not TF, reason="the fused kernel is TensorFlow's")
@pytest.mark.parametrize("shape,kwargs", CASES[:3])
def test_gradients_equal_keras(shape, kwargs):
    """The fused kernel's gradients (with respect to the input, scale and shift, through the batch statistics)
    are those of Keras' composed ops, for a loss that weighs each output differently."""
    import tensorflow as tf

    theirs, ours = _pair(shape, **kwargs)
    x = tf.constant(_batch(shape))
    weights = tf.constant(np.random.default_rng(3).normal(size=shape).astype("float32"))
    grads = []
    for layer in (theirs, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(weights * layer(x, training=True) ** 2)
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-4 * float(np.abs(a.numpy()).max()))


@pytest.mark.skipif(not TF, reason="the fused kernel is TensorFlow's")
def test_gradient_of_the_input_gradient_equals_keras():
    """A gradient penalty (WGAN-GP's, on a critic with batch normalisation) differentiates the input gradient
    again: the fused kernel's second derivative is Keras' too."""
    import tensorflow as tf

    shape = (6, 4, 3, 5)
    theirs, ours = _pair(shape)
    x = tf.constant(_batch(shape))
    weights = tf.constant(np.random.default_rng(3).normal(size=shape).astype("float32"))
    grads = []
    for layer in (theirs, ours):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                out = tf.reduce_sum(weights * layer(x, training=True) ** 3)
            penalty = tf.reduce_sum(inner.gradient(out, x) ** 2)
        grads.append(outer.gradient(penalty, layer.trainable_weights))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-4 * float(np.abs(a.numpy()).max()))


@pytest.mark.skipif(not TF, reason="the fused kernel is TensorFlow's")
def test_the_fused_kernel_runs_in_training_only_where_it_applies():
    """Training on the last axis of a rank-4 or rank-2 input calls FusedBatchNormV3 (in bfloat16 too, computed
    in float32 as Keras' layer does); inference, another axis, synchronised replicas or float64 (which the
    kernel would compute in float32) are Keras' layer."""
    import tensorflow as tf

    def ops_of(layer, shape, training):
        graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(
            tf.TensorSpec(shape, layer.compute_dtype)).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in ops_of(layers.BatchNormalization(), (4, 3, 3, 5), True)
    assert "FusedBatchNormV3" in ops_of(layers.BatchNormalization(), (4, 5), True)
    bf16 = layers.BatchNormalization(dtype="mixed_bfloat16")
    assert "FusedBatchNormV3" in ops_of(bf16, (4, 3, 3, 5), True)
    assert bf16(np.ones((4, 3, 3, 5), "float32"), training=True).dtype == tf.bfloat16
    assert "FusedBatchNormV3" not in ops_of(layers.BatchNormalization(), (4, 3, 3, 5), False)
    assert "FusedBatchNormV3" not in ops_of(layers.BatchNormalization(axis=1), (4, 3, 3, 5), True)
    assert "FusedBatchNormV3" not in ops_of(layers.BatchNormalization(synchronized=True), (4, 3, 3, 5), True)
    assert "FusedBatchNormV3" not in ops_of(layers.BatchNormalization(dtype="float64"), (4, 3, 3, 5), True)


@pytest.mark.jax
def test_a_saved_network_loads_with_our_layer(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 2)), layers.BatchNormalization(momentum=0.7, epsilon=1e-4)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is layers.BatchNormalization
    assert (loaded.layers[0].momentum, loaded.layers[0].epsilon) == (0.7, 1e-4)


def test_papers_normalise_through_common_layers():
    """Every paper network with batch normalisation uses common.layers' (the fused kernel on TensorFlow)."""
    from papers.dcgan.model import build_discriminator, build_generator
    from papers.emotion_transfer.model import efficientnet_lite0
    from papers.resnet.model import build_model
    from papers.semi_supervised_gan import model as ssgan
    from papers.wgan import model as wgan
    from papers.wgan import resnet_networks

    networks = [build_model(20), build_generator(ngf=8), build_discriminator(ndf=8), ssgan.build_mnist_generator(),
                ssgan.build_cifar_generator(), wgan.dcgan_generator(ngf=8), wgan.dcgan_critic(ndf=8),
                resnet_networks.resnet_generator(dim=8), resnet_networks.resnet_critic(dim=8, norm="batch"),
                efficientnet_lite0((32, 32, 3), include_top=False)]
    for net in networks:
        norms = [la for la in net._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
        assert norms, net.name
        assert all(type(la) is layers.BatchNormalization for la in norms), net.name


@pytest.mark.skipif(not TF, reason="the fused kernel is TensorFlow's")
def test_the_fused_kernel_stays_near_float64_where_a_one_pass_variance_would_cancel():
    """On activations whose mean is large against their spread (where a one-pass variance would cancel), the
    fused kernel's output and input gradient are near a float64 computation: within 4 times Keras' composed ops'
    error, where a one-pass variance (E x^2 - (E x)^2, computed here as the control) is about 180 times off.
    The fused kernel's own error depends on how many intra-op threads TensorFlow has (measured):
    1.2 and 1.5 times Keras' (output, gradient) with two threads, 2.6 and 2.7 times with one (AMD EPYC), so
    the bound must hold for a run with TF_NUM_INTRAOP_THREADS=1 as for one with both cores."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (16, 16, 16, 8)
    x = rng.normal(3.0, 0.05, shape) + rng.normal(0, 1, (1, 1, 1, 8))
    w = rng.normal(size=shape)
    gamma, beta, eps = rng.uniform(0.5, 1.5, 8), rng.normal(size=8), 1e-3

    def run(layer, dtype):
        xt = tf.constant(x, dtype)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            if layer in (None, "one-pass"):  # the definition (in float64), or the cancelling variance
                mean = tf.reduce_mean(xt, [0, 1, 2])
                variance = (tf.reduce_mean((xt - mean) ** 2, [0, 1, 2]) if layer is None
                            else tf.reduce_mean(xt ** 2, [0, 1, 2]) - mean ** 2)
                y = (xt - mean) / tf.sqrt(variance + eps) * tf.constant(gamma, dtype) + tf.constant(beta, dtype)
            else:
                y = layer(xt, training=True)
            loss = tf.reduce_sum(tf.constant(w, dtype) * y ** 2)
        return y.numpy().astype("float64"), tape.gradient(loss, xt).numpy().astype("float64")

    y64, dx64 = run(None, tf.float64)
    errors = []
    for layer in (keras.layers.BatchNormalization(epsilon=eps), layers.BatchNormalization(epsilon=eps), "one-pass"):
        if layer != "one-pass":
            layer.build(shape)
            layer.set_weights([gamma.astype("float32"), beta.astype("float32"), np.zeros(8, "float32"),
                               np.ones(8, "float32")])
        y, dx = run(layer, tf.float32)
        errors.append((np.abs(y - y64).max(), np.abs(dx - dx64).max() / np.abs(dx64).max()))
    (keras_y, keras_dx), (fused_y, fused_dx), (one_pass_y, one_pass_dx) = errors
    assert one_pass_y > 4 * keras_y and one_pass_dx > 4 * keras_dx, errors  # the bound tells cancellation apart
    assert fused_y < 4 * keras_y and fused_dx < 4 * keras_dx, errors
    assert fused_dx < 1e-4, errors

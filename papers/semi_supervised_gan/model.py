"""Semi-supervised GAN with feature matching (Salimans et al. 2016, §3.1 and §5), as in the authors' code
(openai/improved-gan: train_mnist_feature_matching.py, train_cifar_feature_matching.py, nn.py).

The discriminator is a K-class classifier whose logits l_1..l_K stand for the K real classes, the
"generated" class having the fixed logit 0, so that D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp l_k(x)
(§5). Its loss, written with log-sum-exp and softplus:

    L_supervised   = E_lab [ logsumexp(l(x)) - l_y(x) ]                       (cross-entropy over K)
    L_unsupervised = 0.5 E_unl [ -lse(l(x)) + softplus(lse(l(x))) ] + 0.5 E_z [ softplus(lse(l(G(z)))) ]
                   = 0.5 E_unl [ -log D(x) ] + 0.5 E_z [ -log(1 - D(G(z))) ]

The generator matches the mean of an intermediate layer of D on a generated batch to that on an
unlabelled real batch (§3.1): squared error at D's last hidden layer for MNIST, mean absolute error of
the globally pooled features for CIFAR-10, as the authors' scripts do. Weight normalisation (Salimans &
Kingma 2016) with data-dependent initialisation, Gaussian noise (MNIST) or dropout (CIFAR-10) inside D,
and a moving average of D's weights for testing (rate 1e-4, from zeros) as the authors' code.

Minibatch discrimination (§3.2), an option for sample quality, as the authors'
train_cifar_minibatch_discrimination.py: a `MinibatchDiscrimination` layer before D's output layer, and a
generator trained on D's output instead of by feature matching (`minibatch_generator_loss`, 3 updates per
D update). One-sided label smoothing (§3.4, `unsupervised_loss`) and historical averaging (§3.3,
`historical_penalty`) are options too; none of the three is in the recipe of the paper's Tables 1-2.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import layers, ops

from common.adversarial import AdversarialModel
from common.layers import BatchNormalization, Dropout, GaussianNoise
from common.lifecycle import distribute
from papers.semi_supervised_gan.config import SemiSupervisedGANConfig


class _WeightNorm(layers.Layer):
    """Shared part of the weight-normalised layers: kernel = theta * scale / ||theta|| per output unit;
    a bias; `initialize(x)` sets scale and bias so that the pre-activations on the batch x have zero mean
    and standard deviation `init_std` (Salimans & Kingma 2016, §2.2; the authors' nn.py)."""

    def __init__(self, units: int, activation=None, train_scale: bool = False, theta_std: float = 0.05,
                 init_std: float = 1.0, epsilon: float = 0.0, theta_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, keras.activations.get(activation)
        self.train_scale, self.theta_std, self.init_std, self.epsilon = train_scale, theta_std, init_std, epsilon
        self.theta_initializer = theta_initializer or keras.initializers.RandomNormal(stddev=theta_std)

    def _make(self, theta_shape):
        self.theta = self.add_weight(shape=theta_shape, initializer=self.theta_initializer, name="theta")
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale", trainable=self.train_scale)
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    @property
    def kernel(self):
        axes = tuple(i for i in range(len(self.theta.shape)) if i != self.unit_axis)
        shape = [1] * len(self.theta.shape)
        shape[self.unit_axis] = self.units
        norm = ops.sqrt(ops.sum(ops.square(self.theta), axis=axes, keepdims=True) + self.epsilon)
        return self.theta * ops.reshape(self.scale, shape) / norm

    def call(self, x):
        return self.activation(self.linear(x) + self.bias)

    def initialize(self, x) -> np.ndarray:
        """Data-dependent initialisation on the batch x; returns the layer's new output on it."""
        pre = keras.ops.convert_to_numpy(self.linear(x)).astype(np.float64)
        axes = tuple(range(pre.ndim - 1))
        mean = pre.mean(axes)
        inv_std = self.init_std / np.sqrt(((pre - mean) ** 2).mean(axes))
        self.scale.assign(keras.ops.convert_to_numpy(self.scale) * inv_std)
        self.bias.assign(-mean * inv_std)
        return keras.ops.convert_to_numpy(self(keras.ops.convert_to_tensor(x)))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation),
                "train_scale": self.train_scale, "theta_std": self.theta_std, "init_std": self.init_std,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="semi_supervised_gan")
class WeightNormDense(_WeightNorm):
    unit_axis = 1

    def build(self, input_shape):
        self._make((input_shape[-1], self.units))

    def linear(self, x):
        return ops.matmul(x, self.kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


@keras.saving.register_keras_serializable(package="semi_supervised_gan")
class WeightNormConv2D(_WeightNorm):
    """3x3 (or `size`) convolution, channels last; "network in network" layers are size 1."""

    unit_axis = 3

    def __init__(self, units: int, size: int = 3, strides: int = 1, padding: str = "same", **kwargs):
        super().__init__(units, **kwargs)
        self.size, self.strides, self.padding = size, strides, padding

    def build(self, input_shape):
        self._make((self.size, self.size, input_shape[-1], self.units))

    def linear(self, x):
        return ops.conv(x, self.kernel, strides=self.strides, padding=self.padding)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.padding == "same":
            size = (None if h is None else -(-h // self.strides), None if w is None else -(-w // self.strides))
        else:
            size = tuple(None if d is None else (d - self.size) // self.strides + 1 for d in (h, w))
        return (n, *size, self.units)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "strides": self.strides, "padding": self.padding}


@keras.saving.register_keras_serializable(package="semi_supervised_gan")
class WeightNormConv2DTranspose(_WeightNorm):
    """A stride-2 5x5 transposed convolution (G's output layer on CIFAR-10), normalised per output channel."""

    unit_axis = 2

    def __init__(self, units: int, size: int = 5, strides: int = 2, **kwargs):
        super().__init__(units, **kwargs)
        self.size, self.strides = size, strides

    def build(self, input_shape):
        self._make((self.size, self.size, self.units, input_shape[-1]))

    def linear(self, x):
        return ops.conv_transpose(x, self.kernel, strides=self.strides, padding="same")

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else h * self.strides, None if w is None else w * self.strides, self.units)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "strides": self.strides}


@keras.saving.register_keras_serializable(package="semi_supervised_gan")
class MinibatchDiscrimination(layers.Layer):
    """Minibatch discrimination (§3.2) as the authors' nn.MinibatchLayer: the input f(x_i) (n_in features) times
    a tensor T (n_in x kernels x dims) gives M_i (kernels x dims); for each kernel b,
    o(x_i)_b = sum over j != i of exp(-||M_i,b - M_j,b||_L1) + bias_b, and the output is [f(x_i), o(x_i)].
    T is weight-normalised as in nn.py: theta * exp(log_scale) / ||theta|| over the input axis, for each
    (kernel, dim); theta ~ N(0, 0.05), log_scale 0, bias -1 before `initialize`. An image's features depend
    on the other images of its batch, so the batch is part of the input (the authors test in batches of 100).
    `initialize(x)`: the authors' data-dependent initialisation, which scales T so that half the batch mean
    of each kernel's distance to the nearest other image is 1, and sets the bias to minus the batch mean of
    o."""

    def __init__(self, kernels: int = 100, dims: int = 5, theta_std: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.kernels, self.dims, self.theta_std = kernels, dims, theta_std

    def build(self, input_shape):
        self.theta = self.add_weight(shape=(input_shape[-1], self.kernels, self.dims), name="theta",
                                     initializer=keras.initializers.RandomNormal(stddev=self.theta_std))
        self.log_scale = self.add_weight(shape=(self.kernels, self.dims), initializer="zeros", name="log_scale")
        self.bias = self.add_weight(shape=(self.kernels,), initializer=keras.initializers.Constant(-1.0),
                                    name="bias")

    @property
    def kernel(self):
        return self.theta * ops.exp(self.log_scale) / ops.sqrt(ops.sum(ops.square(self.theta), axis=0))

    def distances(self, x):
        """(n, n, kernels): the L1 distance of M_i,b and M_j,b, with 1e6 added where j = i (the authors'
        mask: exp(-1e6) is 0, so an image is not compared with itself)."""
        if distribute.replicated():
            raise distribute.DistributeError(
                "minibatch discrimination compares the images of a batch with each other, and a TensorFlow replica "
                "sees only its share of the batch: use --distribute=none, or the JAX backend")
        m = ops.einsum("ni,ikd->nkd", x, self.kernel)
        n = ops.shape(x)[0]
        total = 1e6 * ops.expand_dims(ops.eye(n, dtype=x.dtype), -1)
        for d in range(self.dims):  # one dimension at a time: (n, n, kernels), not (n, n, kernels, dims)
            total = total + ops.abs(ops.expand_dims(m[:, :, d], 1) - ops.expand_dims(m[:, :, d], 0))
        return total

    def call(self, x):
        return ops.concatenate([x, ops.sum(ops.exp(-self.distances(x)), axis=1) + self.bias], axis=-1)

    def initialize(self, x) -> np.ndarray:
        """Data-dependent initialisation on the batch x; returns the layer's new output on it."""
        distances = keras.ops.convert_to_numpy(self.distances(keras.ops.convert_to_tensor(x))).astype(np.float64)
        mean_min = 0.5 * distances.min(axis=1).mean(axis=0)  # (kernels,)
        self.log_scale.assign(keras.ops.convert_to_numpy(self.log_scale) - np.log(mean_min)[:, None])
        features = np.exp(-distances / mean_min).sum(axis=1)
        self.bias.assign(-features.mean(axis=0))
        return keras.ops.convert_to_numpy(self(keras.ops.convert_to_tensor(x)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.kernels)

    def get_config(self):
        return {**super().get_config(), "kernels": self.kernels, "dims": self.dims, "theta_std": self.theta_std}


def build_mnist_discriminator(noise: bool = True, minibatch: bool = False,
                              name: str = "discriminator") -> keras.Sequential:
    """784 - 1000 - 500 - 250 - 250 - 250 - 10, ReLU, weight-normalised (theta ~ N(0, 0.1), the hidden
    scales fixed after initialisation, the last layer's trained), Gaussian noise of std 0.3 on the
    input and 0.5 after every hidden layer (train_mnist_feature_matching.py). With `minibatch`, minibatch
    discrimination (100 kernels of 5 dimensions) before the output layer, where the authors' CIFAR-10 and
    SVHN scripts put it (they published no MNIST one)."""
    stack = [keras.Input((784,), name="image")]
    if noise:
        stack.append(GaussianNoise(0.3, name="input_noise"))
    for i, units in enumerate((1000, 500, 250, 250, 250), start=1):
        stack.append(WeightNormDense(units, "relu", theta_std=0.1, name=f"hidden{i}"))
        if noise:
            stack.append(GaussianNoise(0.5, name=f"noise{i}"))
    if minibatch:
        stack.append(MinibatchDiscrimination(100, 5, name="minibatch"))
    stack.append(WeightNormDense(10, None, train_scale=True, theta_std=0.1, name="logits"))
    return keras.Sequential(stack, name=name)


def build_mnist_generator(latent_dim: int = 100, name: str = "generator") -> keras.Sequential:
    """z uniform in [0, 1]^100 -> 500 -> 500 softplus, each batch-normalised (no gain) -> 784 sigmoid with
    a weight-normalised kernel (trained scale; Glorot theta, as Lasagne's DenseLayer)."""
    stack = [keras.Input((latent_dim,), name="z")]
    for i in (1, 2):
        stack += [layers.Dense(500, use_bias=False, kernel_initializer="glorot_uniform", name=f"dense{i}"),
                  BatchNormalization(scale=False, epsilon=1e-6, name=f"bn{i}"),
                  layers.Activation("softplus", name=f"softplus{i}")]
    stack.append(WeightNormDense(784, "sigmoid", train_scale=True, epsilon=1e-6,
                                 theta_initializer=keras.initializers.GlorotUniform(), name="image"))
    return keras.Sequential(stack, name=name)


@keras.saving.register_keras_serializable(package="semi_supervised_gan")
def lrelu(x):
    """Leaky ReLU with slope 0.2 (the authors' nn.lrelu)."""
    return ops.leaky_relu(x, negative_slope=0.2)


def build_cifar_discriminator(minibatch: bool = False, widths: tuple[int, int] = (96, 192),
                              name: str = "discriminator") -> keras.Sequential:
    """Dropout 0.2; 3x3 conv 96, 96, 96 stride 2; dropout 0.5; 192, 192, 192 stride 2; dropout 0.5;
    192 valid; NIN 192, 192; global mean pool; dense 10. Leaky ReLU 0.2, weight normalisation
    (theta ~ N(0, 0.05)) everywhere (train_cifar_feature_matching.py; train_svhn_feature_matching.py
    is the same with `widths` 64 and 128). With `minibatch`, as train_cifar_minibatch_discrimination.py:
    Gaussian noise of std 0.2 on the input instead of the dropout, and minibatch discrimination (100
    kernels of 5 dimensions) between the pooling and the output layer."""
    stack = [keras.Input((32, 32, 3), name="image"),
             GaussianNoise(0.2, name="input_noise") if minibatch else Dropout(0.2, name="input_dropout")]
    for block, filters in enumerate(widths, start=1):
        stack += [WeightNormConv2D(filters, activation=lrelu, name=f"conv{block}a"),
                  WeightNormConv2D(filters, activation=lrelu, name=f"conv{block}b"),
                  WeightNormConv2D(filters, strides=2, activation=lrelu, name=f"conv{block}c"),
                  Dropout(0.5, name=f"dropout{block}")]
    stack += [WeightNormConv2D(widths[1], padding="valid", activation=lrelu, name="conv3"),
              WeightNormConv2D(widths[1], size=1, activation=lrelu, name="nin1"),
              WeightNormConv2D(widths[1], size=1, activation=lrelu, name="nin2"),
              layers.GlobalAveragePooling2D(name="pool")]
    if minibatch:
        stack.append(MinibatchDiscrimination(100, 5, name="minibatch"))
    stack.append(WeightNormDense(10, None, train_scale=True, init_std=0.1, name="logits"))
    return keras.Sequential(stack, name=name)


def build_cifar_generator(latent_dim: int = 100, name: str = "generator") -> keras.Sequential:
    """z uniform in [0, 1]^100 -> dense 4x4x512 -> 5x5 stride-2 transposed convolutions to 8x8x256,
    16x16x128 (each batch-normalised without gain, ReLU) -> 32x32x3 tanh, weight-normalised (trained
    scale, initial std 0.1). Weights N(0, 0.05)."""
    normal = keras.initializers.RandomNormal(stddev=0.05)
    stack = [keras.Input((latent_dim,), name="z"),
             layers.Dense(4 * 4 * 512, use_bias=False, kernel_initializer=normal, name="project"),
             BatchNormalization(scale=False, epsilon=1e-6, name="bn0"), layers.ReLU(name="relu0"),
             layers.Reshape((4, 4, 512), name="reshape")]
    for i, filters in enumerate((256, 128), start=1):
        stack += [layers.Conv2DTranspose(filters, 5, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=keras.initializers.RandomNormal(stddev=0.05),
                                         name=f"deconv{i}"),
                  BatchNormalization(scale=False, epsilon=1e-6, name=f"bn{i}"), layers.ReLU(name=f"relu{i}")]
    stack.append(WeightNormConv2DTranspose(3, activation="tanh", train_scale=True, init_std=0.1, name="image"))
    return keras.Sequential(stack, name=name)


def initialize(network: keras.Sequential, x, seed: int = 0) -> None:
    """The authors' data-dependent initialisation: a pass over the batch x, layer by layer, each
    weight-normalised layer set from its own pre-activations; noise and dropout active as in training."""
    h = keras.ops.convert_to_tensor(np.asarray(x, np.float32))
    for layer in network.layers:
        if isinstance(layer, (_WeightNorm, MinibatchDiscrimination)):
            h = keras.ops.convert_to_tensor(layer.initialize(h))
        else:
            h = layer(h, training=True)


def log_sum_exp(logits):
    return ops.logsumexp(logits, axis=-1)


def supervised_loss(logits, labels):
    """Cross-entropy over the K real classes: E[ lse(l(x)) - l_y(x) ]."""
    picked = ops.take_along_axis(logits, ops.expand_dims(ops.cast(labels, "int32"), -1), axis=-1)[:, 0]
    return ops.mean(log_sum_exp(logits) - picked)


def unsupervised_loss(logits_real, logits_fake, label_smoothing: float = 0.0):
    """0.5 E[-log D(x)] + 0.5 E[-log(1 - D(G(z)))] with D = Z / (Z + 1), Z = sum exp(logits).

    One-sided label smoothing (§3.4) by s: the real images' target is 1 - s, the generated ones' stays 0,
    so the real term is E[-(1 - s) log D(x) - s log(1 - D(x))] = E[softplus(lse) - (1 - s) lse]."""
    lse_real, lse_fake = log_sum_exp(logits_real), log_sum_exp(logits_fake)
    return (0.5 * ops.mean(ops.softplus(lse_real) - (1.0 - label_smoothing) * lse_real)
            + 0.5 * ops.mean(ops.softplus(lse_fake)))


def historical_penalty(variables, histories):
    """Historical averaging (§3.3): sum over a player's parameters of ||theta - mean of its past values||^2."""
    return sum(ops.sum(ops.square(v - h)) for v, h in zip(variables, histories, strict=True))


def minibatch_generator_loss(logits_fake):
    """The generator's loss of the authors' minibatch-discrimination scripts: -E_z[softplus(lse(l(G(z))))]
    = E_z[log(1 - D(G(z)))], the minimax game's own term, minimised."""
    return -ops.mean(ops.softplus(log_sum_exp(logits_fake)))


def feature_matching_loss(features_real, features_fake, kind: str = "squared"):
    """The distance between the batch means of D's features on real and on generated images: the mean of
    the squared differences (MNIST code) or of the absolute differences (CIFAR-10 code)."""
    diff = distribute.batch_mean(features_real) - distribute.batch_mean(features_fake)  # of the global batch
    return ops.mean(ops.square(diff) if kind == "squared" else ops.abs(diff))


class AuthorsAdam(keras.optimizers.Optimizer):
    """Adam as the authors' nn.adam_updates writes it: the step is m_hat / sqrt(v_hat + 1e-8) (the epsilon
    inside the square root, where Keras' Adam adds it outside)."""

    def __init__(self, learning_rate, beta_1: float = 0.5, beta_2: float = 0.999, name: str = "authors_adam",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2 = beta_1, beta_2

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.m = [self.add_variable_from_reference(v, "m") for v in variables]
        self.v = [self.add_variable_from_reference(v, "v") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m = self.beta_1 * self.m[i] + (1 - self.beta_1) * gradient
        v = self.beta_2 * self.v[i] + (1 - self.beta_2) * ops.square(gradient)
        self.assign(self.m[i], m)
        self.assign(self.v[i], v)
        m_hat, v_hat = m / (1 - ops.power(self.beta_1, t)), v / (1 - ops.power(self.beta_2, t))
        self.assign_sub(variable, ops.cast(learning_rate, variable.dtype) * m_hat / ops.sqrt(v_hat + 1e-8))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class SemiSupervisedGAN(AdversarialModel):
    """Per step: a discriminator update on a labelled and an unlabelled batch and a generated one, the
    moving average of D's weights, then a generator update by feature matching on a second unlabelled
    batch (the authors' train_batch_disc then train_batch_gen). With `labelled_only`, only the supervised
    loss trains D and G is never updated: the baseline of the same D on the labels alone. With
    `minibatch` (a discriminator with minibatch discrimination), the generator is trained as the authors'
    minibatch-discrimination scripts train it: `minibatch_generator_loss`, 3 updates per discriminator
    update, no real images."""

    GENERATOR_UPDATES = {False: 1, True: 3}  # per D update: feature matching; minibatch discrimination

    def __init__(self, generator, discriminator, feature_layer: str, latent_dim: int = 100,
                 feature_distance: str = "squared", unlabelled_weight: float = 1.0, average_rate: float = 1e-4,
                 labelled_only: bool = False, minibatch: bool = False, label_smoothing: float = 0.0,
                 historical_averaging: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.features = keras.Model(discriminator.inputs, discriminator.get_layer(feature_layer).output)
        self.latent_dim, self.feature_distance = latent_dim, feature_distance
        self.unlabelled_weight, self.average_rate, self.labelled_only = unlabelled_weight, average_rate, labelled_only
        self.minibatch, self.generator_updates = minibatch, self.GENERATOR_UPDATES[minibatch]
        self.label_smoothing, self.historical_averaging = label_smoothing, historical_averaging
        self.noise = keras.random.SeedGenerator(seed)
        # The test-time weights: a moving average of D's trainable weights, starting from zeros (authors' code).
        self.averages = [self.add_weight(shape=v.shape, initializer="zeros", trainable=False,
                                         name=f"average_{i}") for i, v in enumerate(discriminator.trainable_weights)]
        # Historical averaging (§3.3): per player, the running mean of its parameters over the updates so far
        # (each update's starting values, the current one included) and the number of values in it.
        self.histories = {}
        if historical_averaging:
            for player, network in (("discriminator", discriminator), ("generator", generator)):
                self.histories[player] = (
                    [self.add_weight(shape=v.shape, initializer="zeros", trainable=False, name=f"{player}_history_{i}")
                     for i, v in enumerate(network.trainable_weights)],
                    self.add_weight(shape=(), initializer="zeros", trainable=False, name=f"{player}_history_count"))
        self.track("loss_lab", "loss_unl", "loss_gen", "train_error")

    def _with_history(self, player: str, variables, loss_fn):
        """`loss_fn` (returning (loss, aux)) plus historical averaging's penalty for `player`, after folding
        its current parameters into their running mean; `loss_fn` itself when historical averaging is off."""
        if not self.historical_averaging:
            return loss_fn
        histories, count = self.histories[player]
        count.assign(count + 1.0)
        for h, v in zip(histories, variables, strict=True):
            h.assign(h + (v - h) / count)

        def penalised():
            loss, aux = loss_fn()
            return loss + self.historical_averaging * historical_penalty(variables, histories), aux
        return penalised

    def sample_z(self, n):
        """z uniform in [0, 1]^latent_dim (the authors' theano_rng.uniform)."""
        return distribute.batch_draw(lambda rows: keras.random.uniform((rows, self.latent_dim), 0.0, 1.0,
                                                                        seed=self.noise), n)

    def adversarial_step(self, x, y=None):
        x_lab, x_unl, x_unl2 = x
        n = ops.shape(x_lab)[0]

        def d_loss():
            logits_lab = self.discriminator(x_lab, training=True)
            loss_lab = supervised_loss(logits_lab, y)
            if self.labelled_only:
                return loss_lab, (loss_lab, ops.zeros(()), logits_lab)
            logits_unl = self.discriminator(x_unl, training=True)
            logits_fake = self.discriminator(self.generator(self.sample_z(n), training=True), training=True)
            loss_unl = unsupervised_loss(logits_unl, logits_fake, self.label_smoothing)
            return loss_lab + self.unlabelled_weight * loss_unl, (loss_lab, loss_unl, logits_lab)

        d_loss = self._with_history("discriminator", self.discriminator.trainable_weights, d_loss)
        _, (loss_lab, loss_unl, logits_lab) = self.minimize("discriminator", d_loss, has_aux=True)
        for average, weight in zip(self.averages, self.discriminator.trainable_weights, strict=True):
            average.assign(average + self.average_rate * (weight - average))
        self.trackers["loss_lab"].update_state(loss_lab)
        self.trackers["loss_unl"].update_state(loss_unl)
        wrong = ops.cast(ops.not_equal(ops.argmax(logits_lab, axis=-1), ops.cast(y, "int32")), "float32")
        self.trackers["train_error"].update_state(ops.mean(wrong))
        if not self.labelled_only:
            def g_loss():  # (the loss minimised, the game's loss without historical averaging's penalty)
                fake = self.generator(self.sample_z(n), training=True)
                if self.minibatch:
                    loss = minibatch_generator_loss(self.discriminator(fake, training=True))
                else:
                    loss = feature_matching_loss(self.features(x_unl2, training=True),
                                                 self.features(fake, training=True), self.feature_distance)
                return loss, loss

            for _ in range(self.generator_updates):
                step_loss = self._with_history("generator", self.generator.trainable_weights, g_loss)
                self.trackers["loss_gen"].update_state(self.minimize("generator", step_loss, has_aux=True)[1])
        return self.tracked()

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(players={"discriminator": (d_optimizer, self.discriminator.trainable_weights),
                                 "generator": (g_optimizer, self.generator.trainable_weights)},
                        count="discriminator", **kwargs)

    def test_errors(self, x: np.ndarray, y: np.ndarray, averaged: bool = True, batch_size: int = 500) -> int:
        """Misclassified test images, with D's averaged weights (the authors' test-time weights) or its
        current ones; no noise or dropout. With minibatch discrimination an image's logits depend on the
        rest of its batch: `batch_size` is then the authors' test batch, the training batch."""
        with self.averaged_weights() if averaged else contextlib.nullcontext(self.discriminator) as classifier:
            logits = [keras.ops.convert_to_numpy(classifier(x[i:i + batch_size], training=False))
                      for i in range(0, len(x), batch_size)]
        return int((np.argmax(np.concatenate(logits), axis=-1) != y).sum())

    @contextlib.contextmanager
    def averaged_weights(self):
        """D with the moving averages in place of its trainable weights while the block runs (the authors'
        test-time weights), its own weights back after it."""
        current = [keras.ops.convert_to_numpy(w) for w in self.discriminator.trainable_weights]
        for w, a in zip(self.discriminator.trainable_weights, self.averages, strict=True):
            w.assign(a)
        try:
            yield self.discriminator
        finally:
            for w, value in zip(self.discriminator.trainable_weights, current, strict=True):
                w.assign(value)


def learning_rate(config: SemiSupervisedGANConfig, steps_per_epoch: int):
    """Constant, then (CIFAR-10) falling linearly to 0 over the last `lr_decay_epochs` epochs: the
    authors' lr * min(3 - epoch / 400, 1) for 1,200 epochs, applied per epoch."""
    if config.lr_decay_epochs <= 1:  # a one-epoch decay starts at the full rate: nothing changes
        return config.learning_rate
    start = config.epochs - config.lr_decay_epochs
    boundaries = [(start + k) * steps_per_epoch - 1 for k in range(1, config.lr_decay_epochs)]
    values = [config.learning_rate * min((config.epochs - e) / config.lr_decay_epochs, 1.0)
              for e in range(start, config.epochs)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def build_model(config: SemiSupervisedGANConfig, steps_per_epoch: int) -> SemiSupervisedGAN:
    minibatch = config.minibatch_discrimination
    if config.dataset == "mnist":
        generator = build_mnist_generator(config.latent_dim)
        discriminator = build_mnist_discriminator(minibatch=minibatch)
        feature_layer, distance = "hidden5", "squared"
    else:
        # SVHN's feature-matching D is CIFAR-10's at 64 and 128 channels; its minibatch script's is CIFAR-10's
        widths = (64, 128) if config.dataset == "svhn" and not minibatch else (96, 192)
        generator = build_cifar_generator(config.latent_dim)
        discriminator = build_cifar_discriminator(minibatch, widths)
        feature_layer, distance = "pool", "absolute"
    model = SemiSupervisedGAN(generator, discriminator, feature_layer, config.latent_dim, distance,
                              config.unlabelled_weight, config.average_rate, config.labelled_only, minibatch,
                              config.label_smoothing, config.historical_averaging, seed=config.seed,
                              name="semi_supervised_gan")
    lr = learning_rate(config, steps_per_epoch)
    model.compile(AuthorsAdam(lr, config.beta_1), AuthorsAdam(lr, config.beta_1), jit_compile=config.jit)
    return model

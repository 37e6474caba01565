"""Conditional adversarial nets on MNIST (Mirza & Osindero 2014, §4.1), and the same networks without
the label as the unconditional GAN beside them.

    G: z (100, uniform in the unit hypercube) -> 200 ReLU ┐
       y (one-hot label, 10)                  -> 1000 ReLU ┴> 1200 ReLU -> 784 sigmoid
    D: x (784) -> maxout 240 units x 5 pieces ┐
       y (10)  -> maxout  50 units x 5 pieces ┴> maxout 240 units x 4 pieces -> 1 sigmoid

Dropout 0.5 in both networks (§4.1). Where the paper is silent, the GAN paper's pylearn2 code
(goodfeli/adversarial, `mnist.yaml` and `AdversaryCost2`), which §4.1 follows, decides (README,
Deviations): D drops 20 % of its inputs and 50 % of every hidden layer's; G drops 50 % of its hidden
units; weights uniform in [-0.05, 0.05] (G) and [-0.005, 0.005] (D), biases 0, G's output biases set
from the pixel marginals; D's objective 0.5 [BCE(D(x, y), 1) + BCE(D(G(z, y), y), 0)], G's the
non-saturating BCE(D(G(z, y), y), 1) on the same generated batch and the same dropout mask, both
players updated at once (their SGD step on the summed cost).

`--networks=goodfellow2014` builds instead the unconditional model behind Table 1's GAN row (Goodfellow et
al. 2014; goodfeli/adversarial, mnist.yaml): G z (100, standard normal) -> 1200 ReLU -> 1200 ReLU -> 784
sigmoid, without dropout; D x -> maxout 240 x 5 -> maxout 240 x 5 -> 1 sigmoid, with the same dropout,
initialisation, objectives and update as above.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from common.adversarial import AdversarialModel
from common.layers import Dropout
from common.lifecycle import distribute

IMAGE_DIM, CLASSES = 784, 10
# Where the GAN paper's MNIST model (mnist.yaml; its Generator's default noise) differs from §4.1's networks.
GOODFELLOW_2014 = {"generator": {"z_units": 1200, "joint_units": 1200, "dropout": 0.0},
                   "discriminator": {"joint_units": (240, 5)}, "latent": "normal"}


@keras.saving.register_keras_serializable(package="cgan")
class Maxout(layers.Layer):
    """A maxout layer (Goodfellow et al. 2013): `units` outputs, each the maximum of `pieces` affine
    functions of the input. The kernel is (inputs, units * pieces), piece p of unit u in column
    u * pieces + p."""

    def __init__(self, units: int, pieces: int, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units, self.pieces = units, pieces
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units * self.pieces),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(self.units * self.pieces,), initializer="zeros", name="bias")

    def call(self, x):
        z = ops.matmul(x, self.kernel) + self.bias
        return ops.max(ops.reshape(z, (-1, self.units, self.pieces)), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "pieces": self.pieces,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def _uniform(scale: float):
    # A new initializer for every layer: an unseeded Keras initializer takes its seed when it is made.
    return keras.initializers.RandomUniform(-scale, scale)


def marginal_logits(images: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """The output bias that makes an untrained G's sigmoid give each pixel its mean over the training
    images (pylearn2's `init_sigmoid_bias_from_marginals`, clipped away from 0 and 1)."""
    p = np.clip(np.asarray(images, np.float64).reshape(len(images), -1).mean(0), eps, 1 - eps)
    return np.log(p / (1 - p)).astype(np.float32)


def build_generator(conditional: bool = True, latent_dim: int = 100, z_units: int = 200, y_units: int = 1000,
                    joint_units: int = 1200, dropout: float = 0.5, init_scale: float = 0.05,
                    output_bias: np.ndarray | None = None) -> keras.Model:
    """G(z, y) -> 784 pixels in (0, 1); without `conditional`, G(z) (the y branch removed); `dropout` 0: none."""
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(z_units, activation="relu", kernel_initializer=_uniform(init_scale), name="z_hidden")(z)
    inputs = [z]
    if conditional:
        y = keras.Input((CLASSES,), name="y")
        h_y = layers.Dense(y_units, activation="relu", kernel_initializer=_uniform(init_scale), name="y_hidden")(y)
        h = layers.Concatenate(name="z_and_y")([h, h_y])
        inputs.append(y)
    if dropout:
        h = Dropout(dropout, name="joint_dropout")(h)
    h = layers.Dense(joint_units, activation="relu", kernel_initializer=_uniform(init_scale), name="joint")(h)
    if dropout:
        h = Dropout(dropout, name="output_dropout")(h)
    bias = "zeros" if output_bias is None else keras.initializers.Constant(output_bias)
    x = layers.Dense(IMAGE_DIM, activation="sigmoid", kernel_initializer=_uniform(init_scale),
                     bias_initializer=bias, name="image")(h)
    return keras.Model(inputs, x, name="generator")


def build_discriminator(conditional: bool = True, x_units=(240, 5), y_units=(50, 5), joint_units=(240, 4),
                        input_dropout: float = 0.2, dropout: float = 0.5, init_scale: float = 0.005) -> keras.Model:
    """D(x, y) -> one logit (the sigmoid is in the loss); without `conditional`, D(x)."""
    x = keras.Input((IMAGE_DIM,), name="x")
    h = Maxout(*x_units, kernel_initializer=_uniform(init_scale), name="x_maxout")(
        Dropout(input_dropout, name="x_dropout")(x))
    inputs = [x]
    if conditional:
        y = keras.Input((CLASSES,), name="y")
        h_y = Maxout(*y_units, kernel_initializer=_uniform(init_scale), name="y_maxout")(
            Dropout(input_dropout, name="y_dropout")(y))
        h = layers.Concatenate(name="x_and_y")([h, h_y])
        inputs.append(y)
    h = Maxout(*joint_units, kernel_initializer=_uniform(init_scale), name="joint_maxout")(
        Dropout(dropout, name="joint_dropout")(h))
    logit = layers.Dense(1, kernel_initializer=_uniform(init_scale), name="logit")(
        Dropout(dropout, name="output_dropout")(h))
    return keras.Model(inputs, logit, name="discriminator")


class PaperLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """lr_t = max(initial / decay^t, floor) at update t (§4.1: 0.1, 'exponentially decreased down to
    .000001 with decay factor of 1.00004'; pylearn2's ExponentialDecay)."""

    def __init__(self, initial: float, decay: float, floor: float):
        self.initial, self.decay, self.floor = initial, decay, floor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return ops.maximum(self.initial * ops.exp(-step * math.log(self.decay)), self.floor)

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay, "floor": self.floor}


class MomentumSGD(keras.optimizers.Optimizer):
    """SGD with classical momentum whose coefficient rises linearly with the epoch (§4.1: 'momentum was
    used with initial value of .5 which was increased up to 0.7'; pylearn2's MomentumAdjustor, start 1,
    saturate 250): in epoch n (from 1), momentum = initial + (final - initial) * clip((n - start) /
    (saturate - start), 0, 1). v <- momentum v - lr g; w <- w + v."""

    def __init__(self, learning_rate, initial_momentum: float, final_momentum: float, start_epoch: int,
                 saturate_epoch: int, steps_per_epoch: int, name: str = "momentum_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_momentum, self.final_momentum = initial_momentum, final_momentum
        self.start_epoch, self.saturate_epoch, self.steps_per_epoch = start_epoch, saturate_epoch, steps_per_epoch

    def momentum_at(self, iterations):
        """The momentum of the update made after `iterations` updates."""
        epoch = ops.cast(ops.floor_divide(iterations, self.steps_per_epoch) + 1, "float32")
        ramp = ops.clip((epoch - self.start_epoch) / max(self.saturate_epoch - self.start_epoch, 1), 0.0, 1.0)
        return self.initial_momentum + (self.final_momentum - self.initial_momentum) * ramp

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.velocities[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum_at(self.iterations), variable.dtype)
        self.assign(velocity, momentum * velocity - ops.cast(learning_rate, variable.dtype) * gradient)
        self.assign_add(variable, velocity)

    def get_config(self):
        return {**super().get_config(), "initial_momentum": self.initial_momentum,
                "final_momentum": self.final_momentum, "start_epoch": self.start_epoch,
                "saturate_epoch": self.saturate_epoch, "steps_per_epoch": self.steps_per_epoch}


def bce_from_logits(logits, label: float):
    """-[y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))] per example, computed stably from logits."""
    return ops.softplus(logits) - label * logits


class CGAN(AdversarialModel):
    """One simultaneous update of D and G per minibatch of real images (and their labels, which G is
    given too when `conditional`)."""

    def __init__(self, generator, discriminator, conditional: bool = True, latent_dim: int = 100,
                 seed: int | None = None, latent: str = "uniform", **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.conditional, self.latent_dim, self.latent = conditional, latent_dim, latent
        self.noise = keras.random.SeedGenerator(seed)
        self.track("d_loss", "g_loss")

    def sample_z(self, n):
        """z uniform in the unit hypercube [0, 1]^latent_dim (§4.1), or standard normal (`latent` "normal")."""
        if self.latent == "normal":
            return distribute.batch_draw(lambda rows: keras.random.normal((rows, self.latent_dim), seed=self.noise), n)
        return distribute.batch_draw(lambda rows: keras.random.uniform((rows, self.latent_dim), 0.0, 1.0,
                                                                        seed=self.noise), n)

    def latent_array(self, seed, n: int) -> np.ndarray:
        """n latent vectors drawn by NumPy from `seed`, from the distribution `sample_z` draws from."""
        rng = np.random.default_rng(seed)
        if self.latent == "normal":
            return rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        return rng.uniform(0.0, 1.0, (n, self.latent_dim)).astype(np.float32)

    def _inputs(self, first, y):
        return [first, y] if self.conditional else [first]

    def adversarial_step(self, x, y=None):
        y_hot = ops.one_hot(ops.cast(y, "int32"), CLASSES) if self.conditional else None

        def losses():
            fake = self.generator(self._inputs(self.sample_z(ops.shape(x)[0]), y_hot), training=True)
            real_logits = self.discriminator(self._inputs(x, y_hot), training=True)
            fake_logits = self.discriminator(self._inputs(fake, y_hot), training=True)
            d_loss = 0.5 * (ops.mean(bce_from_logits(real_logits, 1.0)) + ops.mean(bce_from_logits(fake_logits, 0.0)))
            return {"discriminator": d_loss, "generator": ops.mean(bce_from_logits(fake_logits, 1.0))}

        result = self.minimize_together(losses)
        self.trackers["d_loss"].update_state(result["discriminator"])
        self.trackers["g_loss"].update_state(result["generator"])
        return self.tracked()

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(players={"discriminator": (d_optimizer, self.discriminator.trainable_weights),
                                 "generator": (g_optimizer, self.generator.trainable_weights)},
                        count="generator", **kwargs)

    def generate(self, z: np.ndarray, labels: np.ndarray | None = None, dropout: bool = True,
                 batch_size: int = 1000) -> np.ndarray:
        """G's images for latent vectors `z` and, when conditional, labels. G's dropout is part of how it
        samples (the GAN code's IntrinsicDropoutGenerator: its masks are noise as much as z is), so it is
        on unless `dropout` is false."""
        out = []
        for i in range(0, len(z), batch_size):
            y = None if labels is None else ops.one_hot(labels[i:i + batch_size], CLASSES)
            z_part = ops.convert_to_tensor(z[i:i + batch_size])
            out.append(ops.convert_to_numpy(self.generator(self._inputs(z_part, y), training=dropout)))
        return np.concatenate(out)


def optimizer(config, steps_per_epoch: int) -> MomentumSGD:
    return MomentumSGD(PaperLearningRate(config.learning_rate, config.lr_decay, config.min_learning_rate),
                       config.initial_momentum, config.final_momentum, config.momentum_start_epoch,
                       config.momentum_saturate_epoch, steps_per_epoch)


def build_model(config, steps_per_epoch: int, output_bias: np.ndarray | None = None) -> CGAN:
    """G, D and the compiled CGAN of a `CGANConfig`: the same SGD rule for both players (§4.1)."""
    theirs = GOODFELLOW_2014 if config.networks == "goodfellow2014" else {}
    generator = build_generator(config.conditional, config.latent_dim, **{
        "dropout": config.dropout, "init_scale": config.g_init_scale, "output_bias": output_bias,
        **theirs.get("generator", {})})
    discriminator = build_discriminator(config.conditional, input_dropout=config.d_input_dropout,
                                        dropout=config.dropout, init_scale=config.d_init_scale,
                                        **theirs.get("discriminator", {}))
    model = CGAN(generator, discriminator, config.conditional, config.latent_dim, seed=config.seed,
                 latent=theirs.get("latent", "uniform"), name="cgan" if config.conditional else "gan")
    model.compile(optimizer(config, steps_per_epoch), optimizer(config, steps_per_epoch), jit_compile=config.jit)
    return model

"""DCGAN (Radford, Metz & Chintala 2015) for 32x32 images: CIFAR-10, and MNIST padded to 32x32.

Architecture guidelines (§3): strided convolutions instead of pooling in D, fractional-strided
convolutions in G; batch normalisation in both, except G's output layer and D's input layer; no fully
connected hidden layers (G's first layer is the "project and reshape" matrix multiply of Fig. 1 and D's
last convolution is flattened into one sigmoid output); ReLU in G with tanh output; LeakyReLU (0.2) in
D. Weights from N(0, 0.02) (§4). As in Fig. 1 and the authors' code, 5x5 kernels with stride 2, and
no biases where batch normalisation follows (its shift replaces them).

    G: z (100) -> 4x4x(4 ngf) -> 8x8x(2 ngf) -> 16x16x(ngf) -> 32x32xC (tanh)
    D: 32x32xC -> 16x16x(ndf) -> 8x8x(2 ndf) -> 4x4x(4 ndf) -> 1 (logit; the sigmoid is in the loss)

The losses are Goodfellow et al. 2014's, with the non-saturating generator loss (§3 of that paper):
D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z)). They are computed from logits
(sigmoid cross-entropy), which is the same function, evaluated stably.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from common.adversarial import AdversarialModel
from common.layers import BatchNormalization
from common.lifecycle import distribute


def _normal(std: float):
    # A new initializer for every layer: an unseeded Keras initializer takes its seed when it is made,
    # so one instance shared by several layers would give them the same random draws.
    return keras.initializers.RandomNormal(stddev=std)


def _batch_norm(init_std: float):
    # The authors' code initialises the BN gain from N(1, 0.02) like the weights.
    return BatchNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, init_std))


def build_generator(image_shape=(32, 32, 3), latent_dim: int = 100, ngf: int = 128, init_std: float = 0.02):
    """z -> project and reshape to 4x4x(4 ngf) -> BN, ReLU -> 5x5 fractional-strided convolutions to
    8x8x(2 ngf), 16x16x(ngf) (BN, ReLU) -> 32x32xC, tanh (§3, Fig. 1). No biases where BN follows."""
    if tuple(image_shape[:2]) != (32, 32):
        raise ValueError(f"this generator makes 32x32 images (pad MNIST to 32x32), got {image_shape}")
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(4 * 4 * 4 * ngf, use_bias=False, kernel_initializer=_normal(init_std), name="project")(z)
    h = layers.ReLU()(_batch_norm(init_std)(layers.Reshape((4, 4, 4 * ngf))(h)))
    for filters in (2 * ngf, ngf):
        h = layers.Conv2DTranspose(filters, 5, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_normal(init_std))(h)
        h = layers.ReLU()(_batch_norm(init_std)(h))
    x = layers.Conv2DTranspose(image_shape[2], 5, strides=2, padding="same", activation="tanh",
                               kernel_initializer=_normal(init_std), name="image")(h)
    return keras.Model(z, x, name="generator")


def build_discriminator(image_shape=(32, 32, 3), ndf: int = 128, init_std: float = 0.02):
    """32x32xC -> 5x5 stride-2 convolutions to 16x16x(ndf) (LeakyReLU 0.2, no BN at D's input: §3),
    8x8x(2 ndf), 4x4x(4 ndf) (BN, LeakyReLU 0.2) -> flatten -> one logit."""
    x = keras.Input(image_shape, name="image")
    h = layers.Conv2D(ndf, 5, strides=2, padding="same", kernel_initializer=_normal(init_std), name="conv1")(x)
    h = layers.LeakyReLU(0.2)(h)
    for i, filters in enumerate((2 * ndf, 4 * ndf), start=2):
        h = layers.Conv2D(filters, 5, strides=2, padding="same", use_bias=False, kernel_initializer=_normal(init_std),
                          name=f"conv{i}")(h)
        h = layers.LeakyReLU(0.2)(_batch_norm(init_std)(h))
    out = layers.Dense(1, kernel_initializer=_normal(init_std), name="logit")(layers.Flatten()(h))
    return keras.Model(x, out, name="discriminator")


def feature_layers(discriminator) -> list[str]:
    """Names of D's convolution layers, whose activations §5.1 uses as features."""
    return [la.name for la in discriminator.layers if isinstance(la, layers.Conv2D)]


def sigmoid_cross_entropy(logits, label: float):
    """-[y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))], per example, from logits."""
    return ops.softplus(logits) - label * logits


class DCGAN(AdversarialModel):
    """One discriminator update, then one generator update, per minibatch of real images
    (Goodfellow et al. 2014, Algorithm 1 with k = 1). `weight_decay` adds wd * w to every gradient
    (the authors' code, 1e-5)."""

    def __init__(self, generator, discriminator, latent_dim: int = 100, weight_decay: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.weight_decay = latent_dim, weight_decay
        self.noise = keras.random.SeedGenerator(seed)
        self.track("d_loss", "g_loss")

    def sample_z(self, n):
        """z ~ U(-1, 1)^latent_dim (§4)."""
        return distribute.batch_draw(lambda rows: keras.random.uniform((rows, self.latent_dim), -1.0, 1.0,
                                                                        seed=self.noise), n)

    def _decay(self, variables):
        if not self.weight_decay:
            return 0.0
        return 0.5 * self.weight_decay * ops.sum([ops.sum(ops.square(v)) for v in variables])

    def adversarial_step(self, real, y=None):
        n = ops.shape(real)[0]
        z_d, z_g = self.sample_z(n), self.sample_z(n)

        def d_loss():
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(self.generator(z_d, training=True), training=True)
            return (ops.mean(sigmoid_cross_entropy(real_logits, 1.0))
                    + ops.mean(sigmoid_cross_entropy(fake_logits, 0.0))
                    + self._decay(self.discriminator.trainable_weights))

        def g_loss():
            fake_logits = self.discriminator(self.generator(z_g, training=True), training=True)
            return ops.mean(sigmoid_cross_entropy(fake_logits, 1.0)) + self._decay(self.generator.trainable_weights)

        self.trackers["d_loss"].update_state(self.minimize("discriminator", d_loss))
        self.trackers["g_loss"].update_state(self.minimize("generator", g_loss))
        return self.tracked()

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(players={"discriminator": (d_optimizer, self.discriminator.trainable_weights),
                                 "generator": (g_optimizer, self.generator.trainable_weights)},
                        count="generator", **kwargs)


def build_model(config, image_shape) -> DCGAN:
    """G, D and the compiled DCGAN of a `DCGANConfig`: Adam(learning_rate, beta_1) for each player (§4)."""
    generator = build_generator(image_shape, config.latent_dim, config.ngf, config.init_std)
    discriminator = build_discriminator(image_shape, config.ndf, config.init_std)
    model = DCGAN(generator, discriminator, config.latent_dim, config.weight_decay, seed=config.seed, name="dcgan")

    def adam():
        return keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1)

    model.compile(adam(), adam(), jit_compile=config.jit)
    return model

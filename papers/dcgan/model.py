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

from common import gan
from common.adversarial import AdversarialModel


def build_generator(image_shape=(32, 32, 3), latent_dim: int = 100, ngf: int = 128, init_std: float = 0.02):
    return gan.dcgan_generator(image_shape, latent_dim, ngf, init_std)


def build_discriminator(image_shape=(32, 32, 3), ndf: int = 128, init_std: float = 0.02):
    return gan.dcgan_critic(image_shape, ndf, init_std, norm="batch")


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
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def sample_z(self, n):
        """z ~ U(-1, 1)^latent_dim (§4)."""
        return keras.random.uniform((n, self.latent_dim), -1.0, 1.0, seed=self.noise)

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

        self.d_loss_tracker.update_state(self.minimize("discriminator", d_loss))
        self.g_loss_tracker.update_state(self.minimize("generator", g_loss))
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(players={"discriminator": (d_optimizer, self.discriminator.trainable_weights),
                                 "generator": (g_optimizer, self.generator.trainable_weights)},
                        count="generator", **kwargs)

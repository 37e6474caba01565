"""Wasserstein GANs on 32x32 images: weight clipping (Arjovsky, Chintala & Bottou 2017, Algorithm 1)
and the gradient penalty (Gulrajani et al. 2017, Algorithm 1), with the DCGAN-style generator and
critic below (both papers' CIFAR-10 baseline architecture) or Gulrajani et al.'s ResNet (`resnet_networks.py`).

Both maximise, over the critic f, the estimate of the Wasserstein-1 distance

    W = E_real f(x) - E_z f(G(z)),

which the generator minimises (its loss is -E_z f(G(z))). Lipschitz continuity of f is enforced by
clipping every critic weight to [-c, c] after each critic update (WGAN), or by the penalty
lambda * E_xhat (||grad_xhat f(xhat)||_2 - 1)^2 at points xhat = eps x + (1 - eps) G(z) with
eps ~ U[0, 1] drawn per example, the norm taken per example over all of its pixels (WGAN-GP).

Each train step receives `n_critic` fresh minibatches of real images stacked into one array (the
data pipeline serves batches of n_critic * batch_size), makes one critic update on each, then one
generator update: the loops of both papers' Algorithm 1, with static shapes on TensorFlow and JAX.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from common.adversarial import AdversarialModel, input_gradient
from common.errors import check_choice
from common.layers import BatchNormalization
from common.lifecycle import distribute

LOSSES = ("clip", "gp")
NORMS = ("batch", "layer", "none")
# When the critic takes its generator step: "algorithm1" after every n_critic critic updates (both
# papers' Algorithm 1); "authors" as the WGAN authors' code (main.py, Diters): after 100 critic updates
# for each of the first 25 generator updates and every 500th, otherwise after n_critic.
SCHEDULES = ("algorithm1", "authors")
AUTHORS_SCHEDULE = {"heavy_critic_updates": 100, "first": 25, "every": 500}


def _normal(std: float):
    # A new initializer for every layer: an unseeded Keras initializer takes its seed when it is made.
    return keras.initializers.RandomNormal(stddev=std)


def _norm(kind: str, std: float):
    if kind == "batch":  # the DCGAN authors' code initialises the BN gain from N(1, 0.02) like the weights
        return BatchNormalization(gamma_initializer=keras.initializers.RandomNormal(1.0, std))
    if kind == "layer":  # per example over all of a feature map's positions and channels
        return layers.LayerNormalization(axis=(1, 2, 3))
    return layers.Identity()


def dcgan_generator(image_shape=(32, 32, 3), latent_dim: int = 128, ngf: int = 128, init_std: float = 0.02):
    """DCGAN's generator (Radford et al. 2015), as both papers' DCGAN-architecture runs use it: z ->
    project and reshape to 4x4x(4 ngf) -> BN, ReLU -> 5x5 fractional-strided convolutions to 8x8x(2 ngf),
    16x16x(ngf) (BN, ReLU) -> 32x32xC, tanh. No biases where BN follows."""
    if tuple(image_shape[:2]) != (32, 32):
        raise ValueError(f"this generator makes 32x32 images (pad MNIST to 32x32), got {image_shape}")
    z = keras.Input((latent_dim,), name="z")
    h = layers.Dense(4 * 4 * 4 * ngf, use_bias=False, kernel_initializer=_normal(init_std), name="project")(z)
    h = layers.ReLU()(_norm("batch", init_std)(layers.Reshape((4, 4, 4 * ngf))(h)))
    for filters in (2 * ngf, ngf):
        h = layers.Conv2DTranspose(filters, 5, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_normal(init_std))(h)
        h = layers.ReLU()(_norm("batch", init_std)(h))
    x = layers.Conv2DTranspose(image_shape[2], 5, strides=2, padding="same", activation="tanh",
                               kernel_initializer=_normal(init_std), name="image")(h)
    return keras.Model(z, x, name="generator")


def dcgan_critic(image_shape=(32, 32, 3), ndf: int = 128, init_std: float = 0.02, norm: str = "batch"):
    """DCGAN's discriminator as a critic: 32x32xC -> 5x5 stride-2 convolutions to 16x16x(ndf) (LeakyReLU
    0.2, never normalised), 8x8x(2 ndf), 4x4x(4 ndf) (`norm`, LeakyReLU 0.2) -> flatten -> one unbounded
    value. `norm`: batch (WGAN, as the authors' code), layer or none (WGAN-GP, Gulrajani et al. §4)."""
    check_choice("norm", norm, NORMS)
    x = keras.Input(image_shape, name="image")
    h = layers.Conv2D(ndf, 5, strides=2, padding="same", kernel_initializer=_normal(init_std), name="conv1")(x)
    h = layers.LeakyReLU(0.2)(h)
    for i, filters in enumerate((2 * ndf, 4 * ndf), start=2):
        h = layers.Conv2D(filters, 5, strides=2, padding="same", use_bias=norm == "none",
                          kernel_initializer=_normal(init_std), name=f"conv{i}")(h)
        h = layers.LeakyReLU(0.2)(_norm(norm, init_std)(h))
    out = layers.Dense(1, kernel_initializer=_normal(init_std), name="value")(layers.Flatten()(h))
    return keras.Model(x, out, name="critic")


def critic_updates_before(generator_step: int, n_critic: int, schedule: str) -> int:
    """Critic updates that precede generator update number `generator_step` (counted from 0)."""
    if schedule == "authors" and (generator_step < AUTHORS_SCHEDULE["first"]
                                  or generator_step % AUTHORS_SCHEDULE["every"] == 0):
        return AUTHORS_SCHEDULE["heavy_critic_updates"]
    return n_critic


def train_steps_for(generator_steps: int, n_critic: int, schedule: str) -> int:
    """Train steps (each n_critic critic updates) that make `generator_steps` generator updates."""
    return sum(-(-critic_updates_before(g, n_critic, schedule) // n_critic) for g in range(generator_steps))


def per_example_norm(g, eps: float = 1e-12):
    """||g_i||_2 over all axes but the first. `eps` inside the square root keeps its gradient finite
    where g is 0 (sqrt'(0) is infinite: the NaN of several public implementations); it changes the
    norm by at most sqrt(eps)."""
    return ops.sqrt(ops.sum(ops.square(g), axis=tuple(range(1, len(g.shape)))) + eps)


def gradient_penalty(critic, real, fake, eps_uniform):
    """E (||grad f(xhat)||_2 - 1)^2 at xhat = eps real + (1 - eps) fake; `eps_uniform` has shape (n,)
    and lies in [0, 1]. Returns the mean over the batch."""
    eps = ops.reshape(eps_uniform, (-1,) + (1,) * (len(real.shape) - 1))
    xhat = eps * real + (1.0 - eps) * fake
    grads = input_gradient(lambda x: critic(x, training=True), xhat)
    return ops.mean(ops.square(per_example_norm(grads) - 1.0))


class WGAN(AdversarialModel):
    """`loss`: "clip" (critic weights clipped to [-clip_value, clip_value] after each update) or "gp"
    (penalty weight `gp_weight`). `batch_size` is the size of one critic minibatch; each step's input
    holds `n_critic` of them. `g_batch_size`: latent vectors per generator update (default `batch_size`).
    `critic_schedule` (SCHEDULES): with "authors", a step whose critic has not yet made the updates
    `critic_updates_before` asks for skips the generator update (the data stay n_critic minibatches a step)."""

    def __init__(self, generator, critic, latent_dim: int, loss: str = "gp", n_critic: int = 5,
                 batch_size: int = 64, clip_value: float = 0.01, gp_weight: float = 10.0,
                 seed: int | None = None, g_batch_size: int | None = None, critic_schedule: str = "algorithm1",
                 **kwargs):
        super().__init__(**kwargs)
        check_choice("loss", loss, LOSSES)
        check_choice("critic_schedule", critic_schedule, SCHEDULES)
        if critic_schedule == "authors" and AUTHORS_SCHEDULE["heavy_critic_updates"] % n_critic:
            raise ValueError(f"the authors' schedule needs n_critic to divide "
                             f"{AUTHORS_SCHEDULE['heavy_critic_updates']}, got {n_critic}")
        self.critic_schedule = critic_schedule
        if critic_schedule == "authors":  # critic updates since the last generator update (model state: resumes)
            self.critic_streak = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                                 name="critic_streak")
        self.generator, self.critic = generator, critic
        self.latent_dim, self.loss_kind, self.n_critic, self.batch_size = latent_dim, loss, n_critic, batch_size
        self.clip_value, self.gp_weight = clip_value, gp_weight
        self.g_batch_size = g_batch_size or batch_size
        self.noise = keras.random.SeedGenerator(seed)
        self.track("critic_loss", "g_loss", "w_estimate", "gradient_penalty")

    def sample_z(self, n):
        """z ~ N(0, I) (both papers' released code)."""
        return distribute.batch_draw(lambda rows: keras.random.normal((rows, self.latent_dim), seed=self.noise), n)

    def critic_loss(self, real):
        """(loss, (W estimate, penalty)) of one critic minibatch; the generator's output is a constant here."""
        n = ops.shape(real)[0]
        fake = ops.stop_gradient(self.generator(self.sample_z(n), training=True))
        w = ops.mean(self.critic(real, training=True)) - ops.mean(self.critic(fake, training=True))
        if self.loss_kind == "gp":
            eps = distribute.batch_draw(lambda rows: keras.random.uniform((rows,), seed=self.noise), n)
            penalty = gradient_penalty(self.critic, real, fake, eps)
        else:
            penalty = ops.zeros(())
        return -w + self.gp_weight * penalty if self.loss_kind == "gp" else -w, (w, penalty)

    def clip_critic(self):
        for v in self.critic.trainable_weights:
            v.assign(ops.clip(v, -self.clip_value, self.clip_value))

    def adversarial_step(self, x, y=None):
        n = distribute.share(self.batch_size)  # on TensorFlow replicas: this replica's rows of each minibatch
        for i in range(self.n_critic):
            real = x[i * n:(i + 1) * n]
            loss, (w, penalty) = self.minimize("critic", lambda real=real: self.critic_loss(real), has_aux=True)
            if self.loss_kind == "clip":
                self.clip_critic()
            self.trackers["critic_loss"].update_state(loss)
            self.trackers["w_estimate"].update_state(w)
            self.trackers["gradient_penalty"].update_state(penalty)

        def g_loss():
            z = self.sample_z(distribute.share(self.g_batch_size))
            return -ops.mean(self.critic(self.generator(z, training=True), training=True))

        if self.critic_schedule == "algorithm1":
            self.trackers["g_loss"].update_state(self.minimize("generator", g_loss))
        else:
            step = self.optimizer.players["generator"].iterations
            heavy = ops.logical_or(step < AUTHORS_SCHEDULE["first"], ops.equal(step % AUTHORS_SCHEDULE["every"], 0))
            streak = self.critic_streak + self.n_critic
            ready = streak >= ops.where(heavy, AUTHORS_SCHEDULE["heavy_critic_updates"], self.n_critic)
            self.trackers["g_loss"].update_state(self.minimize_if(ready, "generator", g_loss),
                                                 sample_weight=ops.cast(ready, "float32"))
            self.critic_streak.assign(ops.where(ready, 0, streak))
        logs = self.tracked()
        if self.loss_kind != "gp":
            del logs["gradient_penalty"]
        return logs

    def compile(self, critic_optimizer, g_optimizer, **kwargs):
        super().compile(players={"critic": (critic_optimizer, self.critic.trainable_weights),
                                 "generator": (g_optimizer, self.generator.trainable_weights)},
                        count="generator", **kwargs)


def optimizer(config, updates: int) -> keras.optimizers.Optimizer:
    """The variant's optimizer for a player making `updates` updates in the whole run (for the decay):
    RMSProp for weight clipping (Arjovsky et al. Algorithm 1), Adam for the penalty (Gulrajani et al.)."""
    lr = config.learning_rate
    if config.lr_decay == "true":  # linearly to 0 at the last update (Gulrajani et al.'s ResNet script)
        lr = keras.optimizers.schedules.PolynomialDecay(lr, updates, end_learning_rate=0.0, power=1.0)
    if config.loss == "clip":
        return keras.optimizers.RMSprop(lr, rho=config.rmsprop_rho)
    return keras.optimizers.Adam(lr, beta_1=config.beta_1, beta_2=config.beta_2)


def build_model(config, image_shape) -> WGAN:
    """Generator, critic and the compiled WGAN of a `WGANConfig` (its automatic fields filled in)."""
    from papers.wgan import resnet_networks

    if config.architecture == "resnet":
        generator = resnet_networks.resnet_generator(image_shape, config.latent_dim, config.ngf)
        critic = resnet_networks.resnet_critic(image_shape, config.ndf, norm=config.critic_norm)
    else:
        generator = dcgan_generator(image_shape, config.latent_dim, config.ngf, config.init_std)
        critic = dcgan_critic(image_shape, config.ndf, config.init_std, norm=config.critic_norm)
    model = WGAN(generator, critic, config.latent_dim, loss=config.loss, n_critic=config.n_critic,
                 batch_size=config.batch_size, clip_value=config.clip_value, gp_weight=config.gp_weight,
                 seed=config.seed, g_batch_size=config.generator_batch, critic_schedule=config.critic_schedule,
                 name=f"wgan_{config.loss}")
    steps = config.generator_steps
    critic_updates = config.n_critic * train_steps_for(steps, config.n_critic, config.critic_schedule)
    model.compile(optimizer(config, critic_updates), optimizer(config, steps), jit_compile=config.jit)
    return model

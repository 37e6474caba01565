"""What a WGAN step costs against plain Keras train steps of the same networks.

    python papers/wgan/benchmark.py --preset=quick --loss=clip     # ngf = ndf = 64, batch 64
    python papers/wgan/benchmark.py --preset=quick --loss=gp

One WGAN step = n_critic critic updates, each on B fresh real images and B images G makes in that
update, then one generator update through the critic on B latent vectors. The reference is the same
work as plain `train_on_batch` calls of ordinary compiled Keras models with the same optimizer and the
Wasserstein loss mean(y * f(x)) (y = -1 for real, +1 for generated images):
  plain critic        the critic on 2B images (B real, B generated beforehand), n_critic times;
  plain G->critic     the stack z -> f(G(z)) on B latent vectors, the critic's weights frozen.
Also measured, and shown as a second reading of the overhead but not judged: plain G forward
(`predict_on_batch` of G on B latent vectors), the images each critic update must make for itself.
Overhead = WGAN step / (n_critic x plain critic + plain G->critic) - 1; the issue's bound is 20 %.
It applies to weight clipping, whose extra work (clipping every critic weight after each update) is
part of the algorithm and small. The gradient penalty adds a second-order pass (the gradient of the
norm of an input gradient) that no plain Keras step performs, so for `--loss=gp` that ratio is
reported as the penalty's cost, not judged against the bound. For `--loss=gp` on TensorFlow a second
reference does the penalty's work too, and the bound is judged against it:
  textbook GP critic  the critic update as the Keras WGAN-GP example writes it (`tf.function`, nested
                      `tf.GradientTape`s, the critic on B real and B generated-beforehand images and on
                      B interpolates), n_critic times, + plain G->critic as above.
Kinds are timed in alternation and the fastest repeat of each is kept; compilation is excluded
(`warmup_steps`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import gan
from common.data import image_sets
from common.lifecycle import training
from common.lifecycle.run import benchmark, timing_fields
from papers.wgan.config import PRESETS, WGANConfig
from papers.wgan.model import build_model, optimizer

PAPER = "wgan"
DESCRIPTION = (
    "Cost of one WGAN step (n_critic critic updates on fresh real minibatches, then a G update through the "
    "critic) against the same work as plain `train_on_batch` calls of ordinary compiled Keras models with the "
    "Wasserstein loss: n_critic × *plain critic* (the critic on 2B images) + *plain G→critic* (z → f(G(z)) on B "
    "latent vectors, critic frozen). Overhead = WGAN step / reference − 1; the bound (+20 %) is judged for weight "
    "clipping; for the gradient penalty the ratio includes the penalty's second-order pass, which the reference "
    "lacks, so on TensorFlow the bound is judged against a second reference that does that work too: n_critic × the "
    "*textbook GP critic* update (nested `tf.GradientTape`s in a `tf.function`, as the Keras WGAN-GP example writes "
    "it) + plain G→critic. Fastest of alternating repeats; compilation excluded (`papers/wgan/benchmark.py`).")


@dataclass(frozen=True)
class WGANBenchmarkConfig(timing_fields(5, 2, 3), WGANConfig):
    """The WGAN config and how the steps are timed (one step: n_critic critic updates, then a G update)."""


def wasserstein(y_true, y_pred):
    """mean(y * f): with y = -1 for real and +1 for generated images, the critic's loss E f(G(z)) - E f(x)."""
    return keras.ops.mean(y_true * y_pred)


def plain_models(model, config: WGANConfig):
    """Plain critic and plain G->critic: each player's optimizer for its number of updates (the decay), the
    Wasserstein loss (`gan.plain_references`)."""
    updates = {"discriminator": config.n_critic * config.generator_steps, "generator": config.generator_steps}
    return gan.plain_references(model.generator, model.critic, config.latent_dim,
                                lambda player: optimizer(config, updates[player]), wasserstein)


def textbook_gp_critic_step(model, config: WGANConfig):
    """One WGAN-GP critic update written directly with TensorFlow, the way the Keras WGAN-GP example and
    most public code write it: the floor our train step's plumbing is compared with. It updates a copy
    of the critic with its own optimizer; None on other backends."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    critic = keras.models.clone_model(model.critic)
    opt = optimizer(config, config.n_critic * config.generator_steps)
    opt.build(critic.trainable_variables)
    weight = config.gp_weight

    @tf.function
    def step(real, fake, eps):
        with tf.GradientTape() as tape:
            xhat = eps * real + (1.0 - eps) * fake
            with tf.GradientTape() as inner:
                inner.watch(xhat)
                d_hat = critic(xhat, training=True)
            grad = inner.gradient(d_hat, xhat)
            norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
            loss = (tf.reduce_mean(critic(fake, training=True)) - tf.reduce_mean(critic(real, training=True))
                    + weight * tf.reduce_mean(tf.square(norm - 1.0)))
        grads = tape.gradient(loss, critic.trainable_variables)
        opt.apply_gradients(zip(grads, critic.trainable_variables, strict=True))
        return loss

    return step


@benchmark(PAPER, WGANBenchmarkConfig, PRESETS, description=DESCRIPTION)
def run(config: WGANBenchmarkConfig) -> dict:
    shape = image_sets.SHAPES[config.dataset]
    model = build_model(config, shape)
    critic, stack = plain_models(model, config)
    rng = np.random.default_rng(config.seed)
    b, k = config.batch_size, config.n_critic
    real = rng.uniform(-1, 1, (k * b, *shape)).astype(np.float32)
    both = rng.uniform(-1, 1, (2 * b, *shape)).astype(np.float32)
    signs = np.repeat([[-1.0], [1.0]], b, 0).astype(np.float32)
    z = rng.normal(size=(b, config.latent_dim)).astype(np.float32)
    minus = -np.ones((b, 1), np.float32)
    kinds = {"wgan_step": lambda: model.train_on_batch(real),
             "plain_critic": lambda: critic.train_on_batch(both, signs),
             "plain_g_through_critic": lambda: stack.train_on_batch(z, minus),
             "plain_g_forward": lambda: model.generator.predict_on_batch(z)}
    textbook = textbook_gp_critic_step(model, config) if config.loss == "gp" else None
    if textbook is not None:
        eps = rng.uniform(size=(b, 1, 1, 1)).astype(np.float32)
        kinds["textbook_gp_critic"] = lambda: float(textbook(both[:b], both[b:], eps))  # float(): wait for it
    best, measured = training.time_alternating(kinds, config.steps, config.warmup_steps, config.repeats)
    reference = k * best["plain_critic"] + best["plain_g_through_critic"]
    overhead = best["wgan_step"] / reference - 1
    judged = config.loss == "clip"
    # Each critic update also makes its B generated images (G's forward pass), which the plain critic
    # reference is handed ready-made: measured as a component so the overhead can be read both ways.
    with_g_forward = best["wgan_step"] / (reference + k * best["plain_g_forward"]) - 1
    extra = {}
    if textbook is not None:
        gp_reference = k * best["textbook_gp_critic"] + best["plain_g_through_critic"]
        gp_overhead = best["wgan_step"] / gp_reference - 1
        extra = {"textbook_gp_critic_ms": 1000 * best["textbook_gp_critic"], "overhead_vs_textbook_gp": gp_overhead,
                 "within_20_percent_of_textbook_gp": bool(gp_overhead <= 0.20)}
    final = {"wgan_step_ms": 1000 * best["wgan_step"], "plain_critic_ms": 1000 * best["plain_critic"],
             "plain_g_through_critic_ms": 1000 * best["plain_g_through_critic"], "n_critic": k,
             "plain_g_forward_ms": 1000 * best["plain_g_forward"], "overhead_with_g_forward": with_g_forward,
             "overhead": overhead, "gan_images_per_s": b / best["wgan_step"],
             "bound_applies": judged, "within_20_percent": bool(overhead <= 0.20) if judged else None,
             **extra, "all_measurements_s": measured, "title": "Step cost",
             "summary": {"loss": config.loss, "batch": str(b), "ngf/ndf": f"{config.ngf}/{config.ndf}",
                         "WGAN step (ms)": f"{1000 * best['wgan_step']:.0f}",
                         "n_critic × plain critic + plain G→critic (ms)":
                             f"{k} × {1000 * best['plain_critic']:.0f} + {1000 * best['plain_g_through_critic']:.0f}",
                         "overhead": f"{100 * overhead:+.1f} %" + ("" if judged else " (penalty's extra pass)"),
                         "plain G forward (ms)": f"{1000 * best['plain_g_forward']:.0f}",
                         "overhead, G's forward per critic update counted": f"{100 * with_g_forward:+.1f} %",
                         "n_critic × textbook GP critic + plain G→critic (ms)":
                             f"{k} × {extra['textbook_gp_critic_ms']:.0f} + {1000 * best['plain_g_through_critic']:.0f}"
                             if extra else "–",
                         "overhead vs textbook GP": f"{100 * extra['overhead_vs_textbook_gp']:+.1f} %"
                             if extra else "–"}}
    return final


if __name__ == "__main__":
    sys.exit(run.main())

"""What the adversarial train step costs against plain Keras train steps of the same networks.

    python papers/dcgan/benchmark.py --preset=quick          # ngf = ndf = 64, batch 128
    python papers/dcgan/benchmark.py                         # ngf = ndf = 128

One DCGAN step = a discriminator update on B real and B generated images + a generator update
through the discriminator on B latent vectors. The reference is what the same work costs as two
plain `train_on_batch` calls of ordinary compiled Keras models with the same optimizer:
  plain D      D on 2B images (B real, B generated beforehand), sigmoid cross-entropy;
  plain G->D   the stack z -> D(G(z)) on B latent vectors, D's weights frozen (so only G's gradients
               are applied, as in the generator update; its BN then runs in inference mode, a little
               cheaper than the GAN's, which keeps the reference strict).
Overhead = GAN step time / (plain D + plain G->D) - 1; the issue's bound is 20 %. The three kinds are
timed in alternation, `repeats` times, and the fastest of each kind is kept, so that another job on
the machine slows all three alike. Compilation is excluded (`warmup_steps`).
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
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.model import build_model

PAPER = "dcgan"
DESCRIPTION = (
    "Cost of one DCGAN step (a D update on B real and B generated images, then a G update through D) "
    "against the same work as two plain `train_on_batch` calls of ordinary compiled Keras models: *plain D* "
    "(D on 2B images, sigmoid cross-entropy) and *plain G→D* (z → D(G(z)) on B latent vectors with D frozen). "
    "Overhead = GAN step / (plain D + plain G→D) − 1; the bound is +20 %. The kinds are timed in "
    "alternation and the fastest repeat of each is kept; compilation excluded (`papers/dcgan/benchmark.py`).")


@dataclass(frozen=True)
class GANBenchmarkConfig(timing_fields(10, 3, 3), DCGANConfig):
    """The DCGAN config and how the steps are timed (one step: a D update, then a G update)."""


def plain_models(model, config: DCGANConfig):
    """Plain D and plain G->D: both players' Adam, sigmoid cross-entropy (`gan.plain_references`)."""
    return gan.plain_references(model.generator, model.discriminator, config.latent_dim,
                                lambda player: keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1),
                                keras.losses.BinaryCrossentropy(from_logits=True))


@benchmark(PAPER, GANBenchmarkConfig, PRESETS, description=DESCRIPTION)
def run(config: GANBenchmarkConfig) -> dict:
    shape = image_sets.SHAPES[config.dataset]
    model = build_model(config, shape)
    d, stack = plain_models(model, config)
    rng = np.random.default_rng(config.seed)
    b = config.batch_size
    real = rng.uniform(-1, 1, (b, *shape)).astype(np.float32)
    both, labels = rng.uniform(-1, 1, (2 * b, *shape)).astype(np.float32), np.repeat([[1.0], [0.0]], b, 0)
    z, ones = rng.uniform(-1, 1, (b, config.latent_dim)).astype(np.float32), np.ones((b, 1), np.float32)
    kinds = {"gan_step": lambda: model.train_on_batch(real),
             "plain_d": lambda: d.train_on_batch(both, labels),
             "plain_g_through_d": lambda: stack.train_on_batch(z, ones)}
    best, measured = training.time_alternating(kinds, config.steps, config.warmup_steps, config.repeats)
    reference = best["plain_d"] + best["plain_g_through_d"]
    overhead = best["gan_step"] / reference - 1
    final = {"gan_step_ms": 1000 * best["gan_step"], "plain_d_ms": 1000 * best["plain_d"],
             "plain_g_through_d_ms": 1000 * best["plain_g_through_d"], "overhead": overhead,
             "gan_images_per_s": b / best["gan_step"], "within_20_percent": bool(overhead <= 0.20),
             "all_measurements_s": measured, "title": "Step cost",
             "summary": {"batch": str(b), "ngf/ndf": f"{config.ngf}/{config.ndf}",
                         "GAN step (ms)": f"{1000 * best['gan_step']:.0f}",
                         "plain D + plain G→D (ms)": f"{1000 * best['plain_d']:.0f} + "
                                                     f"{1000 * best['plain_g_through_d']:.0f}",
                         "overhead": f"{100 * overhead:+.1f} %"}}
    return final


if __name__ == "__main__":
    sys.exit(run.main())

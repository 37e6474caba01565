"""How a trained DCGAN is evaluated: §5.1's L2-SVM on its discriminator's features, beside the same
architecture untrained, and the score network's sample scores (`reevaluate.py` re-runs both on a
finished run)."""

from __future__ import annotations

import time

import keras
import numpy as np

from common import gan
from common.lifecycle.repro import seed_everything
from papers.dcgan import features
from papers.dcgan.config import DCGANConfig
from papers.dcgan.model import build_discriminator, build_generator


def initial_discriminator(config: DCGANConfig, image_shape) -> keras.Model:
    """D with the weights this run's seed gives it before training (G is built first, as in `run`)."""
    seed_everything(config.seed)
    build_generator(image_shape, config.latent_dim, config.ngf, config.init_std)
    return build_discriminator(image_shape, config.ndf, config.init_std)


def sample_scores(config: DCGANConfig, generator, network, test: np.ndarray) -> tuple[dict, dict]:
    """The score network's score and FD of `score_samples` samples (z from DCGAN's prior, U(-1, 1), drawn
    from the run's seed) against as many test images: the same protocol as the WGAN runs'."""
    z = np.random.default_rng([config.seed, 3]).uniform(-1, 1, (config.score_samples, config.latent_dim))
    return gan.score_samples(network, generator, z.astype(np.float32), test)


def svm_evaluation(config: DCGANConfig, discriminator, data: dict) -> dict:
    """§5.1: an L2-SVM on D's max-pooled features, for the trained D and for an untrained D of the same
    architecture initialised from this run's seed (the baseline that shows what training added)."""
    untrained = initial_discriminator(config, data["train"].shape[1:])
    (x_train, y_train), (x_test, y_test) = data["svm_train"], data["svm_test"]
    out = {}
    for name, d in (("trained", discriminator), ("untrained", untrained)):
        extractor = features.feature_extractor(d)
        t0 = time.perf_counter()
        f_train = features.features(extractor, data["scale"](x_train))
        f_test = features.features(extractor, data["scale"](x_test))
        print(f"§5.1 L2-SVM on the {name} D's features: {f_train.shape[1]} features of {len(f_train)} training "
              f"and {len(f_test)} test images ({time.perf_counter() - t0:.0f} s)")
        out[name] = features.svm_accuracy(f_train, y_train, f_test, y_test, alphas=config.svm_alphas,
                                          epochs=config.svm_epochs, val_size=config.svm_val_size, seed=config.seed)
        print(f"  test accuracy {100 * out[name]['accuracy']:.2f} % (alpha {out[name]['alpha']:g})")
    return out

"""Table 1's evaluation of a generator: the Parzen-window log-likelihood of its samples (sigma chosen on
validation images), and how often the score network reads a conditional sample as the digit asked for."""

from __future__ import annotations

import numpy as np

from common.metrics import parzen
from papers.cgan.config import CGANConfig
from papers.cgan.model import CGAN, CLASSES


def parzen_samples(model: CGAN, config: CGANConfig, seed) -> tuple[np.ndarray, np.ndarray | None]:
    """Table 1's samples: `parzen_samples_per_class` of each label (as many in all without labels), from
    latent vectors drawn by `seed`."""
    n = CLASSES * config.parzen_samples_per_class
    z = model.latent_array(seed, n)
    labels = np.repeat(np.arange(CLASSES), config.parzen_samples_per_class) if config.conditional else None
    return model.generate(z, labels), labels


def parzen_score(samples: np.ndarray, validation: np.ndarray, points: np.ndarray, config: CGANConfig) -> dict:
    """sigma chosen on the first `sigma_validation_images` validation images, then the log-likelihood of
    `points` (mean and standard error over them)."""
    if points is validation:  # every epoch's score: sigma chosen on the first of the same images, in one pass
        sigma, by_sigma, ll = parzen.choose_sigma_and_log_likelihood(
            samples, points, config.sigma_validation_images, config.sigma_grid, config.eval_batch_size)
    else:
        sigma, by_sigma = parzen.choose_sigma(samples, validation[:config.sigma_validation_images],
                                              config.sigma_grid, config.eval_batch_size)
        ll = parzen.log_likelihood(points, samples, sigma, config.eval_batch_size)
    mean, sem = parzen.mean_and_standard_error(ll)
    return {"ll": mean, "sem": sem, "sigma": sigma, "by_sigma": by_sigma}


def to_classifier_input(x: np.ndarray) -> np.ndarray:
    """Vectors in [0, 1] as the MNIST score network takes them: 28x28 zero-padded to 32x32x1, in [-1, 1]."""
    padded = np.pad(x.reshape(-1, 28, 28, 1), ((0, 0), (2, 2), (2, 2), (0, 0)))
    return padded * 2.0 - 1.0


def conditional_accuracy(network, samples: np.ndarray, labels: np.ndarray) -> float:
    """The share of samples the score network classifies as the label they were generated for."""
    probs, _ = network.run(to_classifier_input(samples), features=False)
    return float((probs.argmax(1) == labels).mean())

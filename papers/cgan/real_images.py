"""Table 1's Parzen protocol with real MNIST training images as the samples, as a results JSON.

    python papers/cgan/real_images.py --seed=0        # 1,000 training images of each class

The samples are `parzen_samples_per_class` images of each class drawn by `--seed` from the 50,000 training
images (the split train.py trains on, so none is a validation or test image); sigma is chosen on the first
`sigma_validation_images` validation images from the same grid, and the 10,000 test images are scored,
exactly as train.py scores a generator (`evaluate.parzen_score`). The number is what a generator that drew
training digits verbatim would get: a yardstick for the generators' numbers, not a bound on them.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import common.tf_env  # noqa: F401

import numpy as np

from common.lifecycle import config as cfg
from common.lifecycle import results
from common.lifecycle.run import write_benchmark
from papers.cgan.config import PRESETS, CGANConfig
from papers.cgan.data import prepare_data
from papers.cgan.evaluate import parzen_score
from papers.cgan.model import CLASSES

DESCRIPTION = (
    "Table 1's protocol (sigma chosen on the first 1,000 validation images from the authors' grid, then the "
    "log-likelihood of the 10,000 test images, ± its standard error) with real MNIST training images as the "
    "samples in place of a generator's: 1,000 of each class drawn by the seed from the 50,000 training images "
    "(`papers/cgan/real_images.py`). It is what a generator that copied training digits would score.")


@dataclass(frozen=True)
class RealImagesConfig(CGANConfig):
    @property
    def variant(self) -> str:
        return "mnist-training-images"


def choose_images(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` images of each class of `labels`, drawn without replacement by `seed`."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(CLASSES):
        of_class = np.flatnonzero(labels == c)
        if len(of_class) < per_class:
            raise cfg.ConfigError(f"--parzen_samples_per_class={per_class}: the training images hold only "
                                  f"{len(of_class)} of class {c}; ask for at most that many")
        chosen.append(rng.choice(of_class, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def run(config: RealImagesConfig, preset: str = "") -> int:
    """`preset` only sets the sizes (the `smoke` preset's are tiny); the record is labelled `benchmark`."""
    started, t0 = results.utc_now(), time.perf_counter()
    splits, data = prepare_data(config)
    (x_train, y_train), (x_val, _), (x_test, _) = splits["train"], splits["validation"], splits["test"]
    index = choose_images(y_train, config.parzen_samples_per_class, config.seed)
    t_parzen = time.perf_counter()
    score = parzen_score(x_train[index], x_val, x_test, config)
    parzen_time = time.perf_counter() - t_parzen
    n = len(index)
    final = {"test_parzen_ll": score["ll"], "test_parzen_ll_sem": score["sem"], "parzen_sigma": score["sigma"],
             "parzen_validation_by_sigma": {str(s): v for s, v in score["by_sigma"].items()},
             "parzen_samples": n, "parzen_time_s": round(parzen_time, 1),
             "title": "The protocol on real images",
             "summary": {"samples": f"{n:,} MNIST training images ({config.parzen_samples_per_class:,} of each "
                                    f"class, seed {config.seed})",
                         "test Parzen log-likelihood": f"{score['ll']:.1f} ± {score['sem']:.1f}",
                         "sigma": f"{score['sigma']:.3f}", "test images": f"{len(x_test):,}"}}
    line = (f"{n} training images as samples: test Parzen log-likelihood {score['ll']:.1f} ± {score['sem']:.1f} "
            f"(sigma {score['sigma']:.3f}, {parzen_time:.1f} s)")
    return write_benchmark(config, "cgan", started, time.perf_counter() - t0, final, line=line,
                           description=DESCRIPTION,
                           data={"source": data.source, "checksums": data.checksums, "verified": data.verified,
                                 "train": len(x_train), "validation": len(x_val), "test": len(x_test)})


def main(argv=None) -> int:
    return cfg.cli_main(RealImagesConfig, PRESETS, run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

"""Train a semi-supervised GAN with feature matching as in Salimans et al. 2016 (§3.1, §5), or the same
discriminator on the labelled images alone, and write its results JSON and figures.

    python papers/semi_supervised_gan/train.py --dataset=mnist --labels=100 --data_seed=1   # Table 1's setting
    python papers/semi_supervised_gan/train.py --dataset=mnist --labelled_only=true         # the baseline
    python papers/semi_supervised_gan/train.py --dataset=cifar10 --preset=quick            # Table 2's, short
    python papers/semi_supervised_gan/train.py --help

Every step: a discriminator update on a labelled, an unlabelled and a generated batch, then a generator
update by feature matching on a second unlabelled batch (the authors' loop; with
--minibatch_discrimination=true, three generator updates on D's output, as their minibatch-discrimination
scripts). After every `eval_every`
epochs the test errors of D's moving-average weights (the authors' test-time weights) and of its
current weights go into the history; the record's number is the last epoch's, never the best one. An
interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

import sys

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import gan, images
from common.lifecycle import config as cfg
from common.lifecycle.run import Run
from papers.semi_supervised_gan.config import PRESETS, SemiSupervisedGANConfig
from papers.semi_supervised_gan.data import Batches, labelled_subset, load_data
from papers.semi_supervised_gan.model import SemiSupervisedGAN, build_model, initialize

PAPER = "semi_supervised_gan"


def eval_batch(config: SemiSupervisedGANConfig) -> int:
    """Test images per forward pass: the training batch (the authors' test batch) where an image's logits
    depend on its batch (minibatch discrimination), else 500 (no effect on the numbers)."""
    return config.batch_size if config.minibatch_discrimination else 500


class TestErrors(keras.callbacks.Callback):
    """Test errors of D's moving-average and current weights every `every` epochs (and at the last)."""

    def __init__(self, model: SemiSupervisedGAN, x, y, every: int, last: int, batch_size: int = 500):
        super().__init__()
        self.ssgan, self.x, self.y, self.every, self.last, self.batch = model, x, y, every, last, batch_size

    def on_epoch_end(self, epoch, logs=None):
        due = (epoch + 1) % self.every == 0 or epoch + 1 == self.last
        logs["test_errors"] = self.ssgan.test_errors(self.x, self.y, batch_size=self.batch) if due else float("nan")
        logs["test_errors_current_weights"] = (
            self.ssgan.test_errors(self.x, self.y, averaged=False, batch_size=self.batch) if due else float("nan"))


def samples(model: SemiSupervisedGAN, z: np.ndarray, dataset: str) -> np.ndarray:
    """G's images for z (its batch normalisation on the batch's statistics, as the authors sample), shaped
    for a grid in [0, 1] (MNIST) or [-1, 1]."""
    x = keras.ops.convert_to_numpy(model.generator(keras.ops.convert_to_tensor(z), training=True))
    return x.reshape(-1, 28, 28) if dataset == "mnist" else x


def train(config: SemiSupervisedGANConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    (x, y), (x_test, y_test), data = load_data(config)
    labelled = labelled_subset(y, config.labels, config.data_seed)
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified, train=len(x),
                      test=len(x_test), labelled=len(labelled), labelled_indices_sha256=_digest(labelled))
    batches = Batches(x, y, labelled, config.batch_size, config.seed)
    model = build_model(config, len(batches))
    print(f"{config.variant}, preset {preset}: {len(labelled)} labelled of {len(x)} training images (data seed "
          f"{config.data_seed}), {len(x_test)} test images from {data.source}; {config.epochs} epochs of "
          f"{len(batches)} steps; working files in {run.dir}")
    if not (run.dir / "backup").exists():  # a fresh run: the authors' data-dependent initialisation
        init_rng = np.random.default_rng([config.seed, 7])
        init_x = x[init_rng.permutation(len(x))[:config.init_examples]]
        initialize(model.discriminator, init_x)
        if config.dataset != "mnist":  # the MNIST script's generator has no data-dependent layer
            initialize(model.generator, init_rng.uniform(0, 1, (config.init_examples, config.latent_dim)))
    fixed_z = np.random.default_rng([config.seed, 1]).uniform(0, 1, (100, config.latent_dim)).astype(np.float32)
    grid = gan.SampleGrid(model.generator, fixed_z, run.dir / "samples", rows=10, every=config.sample_every,
                          value_range=(0, 1) if config.dataset == "mnist" else (-1, 1),
                          image_shape=(28, 28) if config.dataset == "mnist" else None)
    test = TestErrors(model, x_test, y_test, config.eval_every, config.epochs, eval_batch(config))
    dropout_or_noise = [layer.seed_generator for net in (model.discriminator, model.generator) for layer in net.layers
                        if hasattr(layer, "seed_generator")]

    run.fit(model, batches, epochs=config.epochs, images_per_step=config.batch_size,
            callbacks=[test] + ([] if config.labelled_only else [grid]), reseed=[model.noise, *dropout_or_noise])
    final = {"epochs": config.epochs}
    if run.failed:
        return run.finish(final)

    errors = model.test_errors(x_test, y_test, batch_size=eval_batch(config))
    current = model.test_errors(x_test, y_test, averaged=False, batch_size=eval_batch(config))
    final.update(test_errors=errors, test_error=errors / len(x_test), test_errors_current_weights=current,
                 test_images=len(x_test))
    with model.averaged_weights() as classifier:  # the network the test errors count: D, averaged weights
        final["classifier_file"] = str(run.save_model(classifier, "classifier"))
    if not config.labelled_only:
        images.save_grid(run.figure_path("samples"), samples(model, fixed_z, config.dataset), 10, 10,
                         value_range=(0, 1) if config.dataset == "mnist" else (-1, 1))
        final["generator_file"] = str(run.save_model(model.generator, "generator"))
    summary = (f"{errors} test errors of {len(x_test)} ({100 * errors / len(x_test):.2f} %) with D's averaged "
               f"weights, {current} with its current ones")
    return run.finish(final, summary=summary)


def _digest(indices: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.sort(indices).astype("<i8").tobytes()).hexdigest()


def main(argv=None) -> int:
    return cfg.cli_main(SemiSupervisedGANConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

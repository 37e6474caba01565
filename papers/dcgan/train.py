"""Train a DCGAN as in Radford et al. 2015 on CIFAR-10 or MNIST, and write its results JSON and figures.

    python papers/dcgan/train.py --dataset=cifar10 --seed=0      # the paper's recipe
    python papers/dcgan/train.py --preset=quick                  # 2 epochs, smaller networks (REPORT.md: wall time)
    python papers/dcgan/train.py --help                          # every field, default and preset

Written during training: a grid of samples from one fixed set of z after every epoch (run directory).
At the end: samples, a latent-space interpolation (§6.1), and the distance from each of `nn_samples`
generated images to its nearest test image, beside the same distance for real training images, as a
checkable quality and mode-collapse signal. An interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

import sys

import common.tf_env  # noqa: F401

import numpy as np

from common import gan, images
from common.data.pipeline import ArrayBatches
from common.lifecycle import config as cfg
from common.lifecycle.run import Run
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.data import prepare_data
from papers.dcgan.evaluate import sample_scores, svm_evaluation
from papers.dcgan.model import build_model

PAPER = "dcgan"


def train(config: DCGANConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    data = prepare_data(config)
    train_images, test, source = data["train"], data["test"], data["set"].source
    run.describe_data(source=source, checksums=data["set"].checksums, verified=data["set"].verified,
                      train=len(train_images), test=len(test))
    model = build_model(config, train_images.shape[1:])
    network = config.score_network()  # loaded now, so that a wrong path fails before training
    train_ds = ArrayBatches(train_images, None, config.batch_size, seed=config.seed, workers=config.data_workers)
    print(f"{config.variant}, preset {preset}: {len(train_images)} training images from {source}; "
          f"{config.epochs} epochs of {len(train_ds)} steps; working files in {run.dir}")
    fixed_z = np.random.default_rng([config.seed, 1]).uniform(-1, 1, (100, config.latent_dim)).astype(np.float32)
    grid = gan.SampleGrid(model.generator, fixed_z, run.dir / "samples", rows=10, every=config.sample_every)

    run.fit(model, train_ds, epochs=config.epochs, images_per_step=config.batch_size, callbacks=[grid],
            reseed=[model.noise])
    final = {"epochs": config.epochs}
    if run.failed:
        return run.finish(final)

    rng = np.random.default_rng([config.seed, 2])
    z = rng.uniform(-1, 1, (config.nn_samples, config.latent_dim)).astype(np.float32)
    samples = gan.generate(model.generator, z)
    real = train_images[rng.choice(len(train_images), min(config.nn_samples, len(train_images)), replace=False)]
    fake_index = gan.nearest_neighbour_index(samples, test)
    final.update(nn_distance=float(gan.nearest_neighbour_distance(samples, test).mean()),
                 nn_distance_real=float(gan.nearest_neighbour_distance(real, test).mean()),
                 nn_distinct_fraction=len(np.unique(fake_index)) / len(fake_index), nn_samples=len(samples))
    images.save_grid(run.figure_path("samples"), gan.generate(model.generator, fixed_z), 10, 10, value_range=(-1, 1))
    walk = gan.interpolate(fixed_z[:10], fixed_z[10:20], 10)
    images.save_grid(run.figure_path("interpolation"), gan.generate(model.generator, walk), 10, 10,
                     value_range=(-1, 1))
    # The trained networks, so that samples and features can be re-evaluated without retraining.
    for name, net in (("generator", model.generator), ("discriminator", model.discriminator)):
        final[f"{name}_file"] = str(run.save_model(net, name))
    scores, svm = None, None
    if network is not None:
        scores, kept = sample_scores(config, model.generator, network, test)
        final.update(kept)
    if config.svm_eval:
        svm = svm_evaluation(config, model.discriminator, data)
        final.update(svm_test_accuracy=svm["trained"]["accuracy"],
                     svm_test_accuracy_untrained_d=svm["untrained"]["accuracy"])
    summary = "" if not config.svm_eval else (
        f"L2-SVM on D features {100 * final['svm_test_accuracy']:.2f} % test accuracy "
        f"(untrained D {100 * final['svm_test_accuracy_untrained_d']:.2f} %); ")
    summary += (f"nearest test image at {final['nn_distance']:.2f} on average for samples, "
                f"{final['nn_distance_real']:.2f} for real training images; "
                f"{100 * final['nn_distinct_fraction']:.0f} % distinct neighbours")
    if scores:
        summary += f"; {network.name} score {scores['score']:.2f}, FD {scores['frechet_distance']:.2f}"
    return run.finish(final, summary=summary, extra={"svm": svm, "scores": scores})


def main(argv=None) -> int:
    return cfg.cli_main(DCGANConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

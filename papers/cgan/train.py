"""Train a conditional adversarial net on MNIST as in Mirza & Osindero 2014, §4.1 (or, with
--conditional=false, the same networks without the label), and write its results JSON and figures.

    python papers/cgan/train.py --seed=0                        # the paper's recipe (Table 1: 132 ± 1.8)
    python papers/cgan/train.py --conditional=false --seed=0    # the unconditional GAN beside it
    python papers/cgan/train.py --conditional=false --networks=goodfellow2014   # the GAN paper's own model
    python papers/cgan/train.py --preset=quick                  # at most 30 epochs
    python papers/cgan/train.py --help                          # every field, default and preset

After every epoch: the Gaussian Parzen-window log-likelihood of the validation images under 1,000
samples of each label (sigma chosen on the first 1,000 validation images); the best epoch's generator
is kept and training stops `patience` epochs after it. At the end, with that generator: the test
log-likelihood (Table 1's protocol), and, given an MNIST classifier (`--feature_network`, made by
`python -m common.metrics.score_network --dataset=mnist`), how often a sample is the digit it was asked for,
the classifier's score and Fréchet distance; Figure 2's grid (one row per label). An interrupted run
resumes from its last finished epoch.
"""

from __future__ import annotations

import json
import os
import sys

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import gan, images
from common.data.pipeline import ArrayBatches
from common.lifecycle import config as cfg
from common.lifecycle import training
from common.lifecycle.run import Run
from papers.cgan.config import PRESETS, CGANConfig
from papers.cgan.data import prepare_data
from papers.cgan.evaluate import conditional_accuracy, parzen_samples, parzen_score, to_classifier_input
from papers.cgan.model import CGAN, CLASSES, build_model, marginal_logits

PAPER = "cgan"


class KeepBestGenerator(keras.callbacks.Callback):
    """After every epoch: the validation Parzen log-likelihood (into the logs, with its sigma and the
    updates so far) and, given a score network and labels, how often one in ten of those samples is the
    digit it was asked for; the generator of the best epoch is saved, and training stops `patience`
    epochs after it. The best so far is run state (`best.json` and its weights file), so a resumed run
    continues from it."""

    def __init__(self, model: CGAN, config: CGANConfig, validation: np.ndarray, best_json, best_weights,
                 network=None):
        super().__init__()
        self.cgan, self.config, self.validation, self.network = model, config, validation, network
        self.best_json, self.best_weights = best_json, best_weights
        self.best = json.loads(best_json.read_text()) if best_json.exists() else {"ll": -np.inf, "epoch": 0}

    def on_epoch_end(self, epoch, logs=None):
        samples, labels = parzen_samples(self.cgan, self.config, [self.config.seed, 1])
        score = parzen_score(samples, self.validation, self.validation, self.config)
        updates = int(keras.ops.convert_to_numpy(self.cgan.optimizer.iterations))
        logs.update(val_parzen_ll=score["ll"], val_parzen_sigma=score["sigma"], updates=updates)
        if self.network is not None and labels is not None:
            logs["conditional_accuracy"] = conditional_accuracy(self.network, samples[::10], labels[::10])
        if score["ll"] > self.best["ll"]:
            self.best = {"ll": score["ll"], "sem": score["sem"], "sigma": score["sigma"], "epoch": epoch + 1,
                         "updates": updates}
            tmp = self.best_weights.with_name("best.tmp.weights.h5")
            self.cgan.generator.save_weights(tmp)
            os.replace(tmp, self.best_weights)
            self.best_json.with_suffix(".tmp").write_text(json.dumps(self.best))
            os.replace(self.best_json.with_suffix(".tmp"), self.best_json)
        if epoch + 1 - self.best["epoch"] >= self.config.patience:
            print(f"\nNo better validation log-likelihood for {self.config.patience} epochs (best "
                  f"{self.best['ll']:.2f} in epoch {self.best['epoch']}); stopping.")
            self.model.stop_training = True


def train(config: CGANConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    splits, data = prepare_data(config)
    (x_train, y_train), (x_val, _), (x_test, _) = splits["train"], splits["validation"], splits["test"]
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified, train=len(x_train),
                      validation=len(x_val), test=len(x_test))
    network = config.score_network()  # loaded now, so that a wrong path fails before training
    train_ds = ArrayBatches(x_train, y_train, config.batch_size, seed=config.seed)
    model = build_model(config, len(train_ds), output_bias=marginal_logits(x_train))
    print(f"{config.variant}, preset {preset}: {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test "
          f"images from {data.source}; at most {config.epochs} epochs of {len(train_ds)} updates, stopping "
          f"{config.patience} epochs after the best validation log-likelihood; working files in {run.dir}")
    keep = KeepBestGenerator(model, config, x_val, run.state_file("best.json"),
                             run.state_file("best_generator.weights.h5"), network)
    dropout = [layer.seed_generator for net in (model.generator, model.discriminator) for layer in net.layers
               if isinstance(layer, keras.layers.Dropout)]

    run.fit(model, train_ds, epochs=config.epochs, images_per_step=config.batch_size, callbacks=[keep],
            reseed=[model.noise, *dropout])
    final = {"epochs_trained": len(run.history())}
    if run.failed:
        return run.finish(final)

    model.generator.load_weights(keep.best_weights)
    # the evaluation's dropout masks from a state of their own, the same whether or not the run was resumed
    # after its last epoch (when no epoch start reseeds them)
    training.reseed([model.noise, *dropout], config.seed, config.epochs)
    final.update(best_epoch=keep.best["epoch"], best_updates=keep.best["updates"], val_parzen_ll=keep.best["ll"],
                 val_parzen_ll_sem=keep.best["sem"])
    clock = training.RunningTime()
    samples, labels = parzen_samples(model, config, [config.seed, 2])
    test = parzen_score(samples, x_val, x_test, config)
    final.update(test_parzen_ll=test["ll"], test_parzen_ll_sem=test["sem"], parzen_sigma=test["sigma"],
                 parzen_samples=len(samples), parzen_time_s=round(clock.seconds, 1))
    nearest = gan.nearest_neighbour_index(samples[:config.nn_samples], x_test)
    final.update(nn_distance=float(gan.nearest_neighbour_distance(samples[:config.nn_samples], x_test).mean()),
                 nn_distinct_fraction=len(np.unique(nearest)) / len(nearest))
    scores = None
    if network is not None:
        if config.conditional:
            final["conditional_accuracy"] = conditional_accuracy(network, samples, labels)
        chosen = np.random.default_rng([config.seed, 3]).choice(len(samples), min(config.score_samples, len(samples)),
                                                                 replace=False)
        scores = network.scores(to_classifier_input(samples[chosen]), to_classifier_input(x_test[:len(chosen)]),
                                splits=min(10, len(chosen)))
        final.update(sample_score=scores["score"], sample_score_std=scores["score_std"],
                     sample_fd=scores["frechet_distance"], **network.describe())
    grid_z = model.latent_array([config.seed, 4], 100)
    grid_labels = np.repeat(np.arange(CLASSES), 10) if config.conditional else None  # Figure 2: a row per label
    images.save_grid(run.figure_path("figure2"), model.generate(grid_z, grid_labels).reshape(-1, 28, 28), 10, 10)
    final["generator_file"] = str(run.save_model(model.generator, "generator"))
    summary = (f"test Parzen log-likelihood {test['ll']:.1f} ± {test['sem']:.1f} (sigma {test['sigma']:.3f}; best "
               f"validation epoch {keep.best['epoch']})")
    if "conditional_accuracy" in final:
        summary += f"; {100 * final['conditional_accuracy']:.1f} % of samples are the digit asked for"
    return run.finish(final, summary=summary, extra={"scores": scores, "parzen_validation_by_sigma": test["by_sigma"]})


def main(argv=None) -> int:
    return cfg.cli_main(CGANConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

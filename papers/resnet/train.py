"""Train a CIFAR-10 ResNet as in He et al. 2016, §4.2, and write its results JSON.

    python papers/resnet/train.py --depth=20 --seed=0        # the paper's recipe
    python papers/resnet/train.py --preset=quick             # 3,000 iterations (wall time: REPORT.md)
    python papers/resnet/train.py --help                     # every field, default and preset

An interrupted run resumes from its last finished epoch when the same command is run again.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.data.pipeline import ArrayBatches, pad_crop_flip
from common.lifecycle import config as cfg
from common.lifecycle import training
from common.lifecycle.run import Run
from common.metrics import score_network
from papers.resnet.config import PRESETS, ResNetConfig
from papers.resnet.data import prepare_data
from papers.resnet.model import build_model, classifier_card, compile_model, image_classifier

PAPER = "resnet"


def flip_averaged_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Accuracy of the mean class probabilities of each image and its left-right mirror."""
    p = model.predict(x, batch_size=batch_size, verbose=0) + model.predict(x[:, :, ::-1], batch_size=batch_size,
                                                                            verbose=0)
    return float(np.mean(p.argmax(1) == y))


class TestEachEpoch(keras.callbacks.Callback):
    """After every epoch, the test accuracy (`test_accuracy`, mirror-averaged when `flip`) and the seconds it
    took (`test_eval_s`), into the epoch's logs: the points of a time-to-accuracy curve. Nothing is chosen
    on them."""

    def __init__(self, x, y, batch_size: int, flip: bool):
        super().__init__()
        self.x, self.y, self.batch_size, self.flip = x, y, batch_size, flip

    def on_epoch_end(self, epoch, logs=None):
        clock = training.RunningTime()  # less any time the process was stopped, which the epoch's stopped_s holds
        if self.flip:
            logs["test_accuracy"] = flip_averaged_accuracy(self.model, self.x, self.y, self.batch_size)
        else:
            logs["test_accuracy"] = float(np.mean(
                self.model.predict(self.x, batch_size=self.batch_size, verbose=0).argmax(1) == self.y))
        logs["test_eval_s"] = clock.seconds


def time_to_accuracy_figure(path, history: list[dict], target_error: float, title: str) -> None:
    """Test error after each epoch against the training time so far (minutes; test evaluations and the time
    the process was stopped excluded), with the paper's error as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in history if row.get("test_accuracy") is not None and row.get("epoch_time_s") is not None]
    minutes = np.cumsum([row["epoch_time_s"] - (row.get("test_eval_s") or 0.0) - (row.get("stopped_s") or 0.0)
                         for row in rows]) / 60
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    errors = [100 * (1 - row["test_accuracy"]) for row in rows]
    ax.plot(minutes, errors, marker=".", label="test error")
    ax.axhline(100 * target_error, color="C3", ls="--", lw=1, label=f"paper: {100 * target_error:.2f} %")
    top = min(100, max(errors) + 5)
    ax.set(xlabel="training time (min)", ylabel="test error (%)", title=title, ylim=(0, top))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def train(config: ResNetConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, deterministic=config.deterministic, callbacks=extra_callbacks)
    arrays, data = prepare_data(config)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = arrays["train"], arrays["val"], arrays["test"]
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified, train=len(x_train),
                      val=len(x_val), test=len(x_test))
    train_ds = ArrayBatches(x_train, y_train, config.batch_size, seed=config.seed, workers=config.data_workers,
                            augment=pad_crop_flip(config.pad) if config.augment else None)
    epochs = math.ceil(config.max_iterations / len(train_ds))
    model = compile_model(build_model(config.depth, weight_decay=config.weight_decay,
                                      precision=config.precision), config)
    print(f"{config.variant}, preset {preset}: {len(x_train)} train / {len(x_val)} val / {len(x_test)} test "
          f"images from {data.source}; {config.max_iterations} iterations = {epochs} epochs of {len(train_ds)} "
          f"steps; working files in {run.dir}")

    tested = [TestEachEpoch(x_test, y_test, config.eval_batch_size, config.flip_test)] if config.test_each_epoch else []
    run.fit(model, train_ds, epochs=epochs, images_per_step=config.batch_size, max_steps=config.max_iterations,
            validation_data=(x_val, y_val) if len(x_val) else None, validation_batch_size=config.eval_batch_size,
            callbacks=tested)
    history = run.history()
    final = {"epochs": epochs}
    if history and history[-1].get("accuracy") is not None:
        final["train_error"] = 1.0 - history[-1]["accuracy"]
    if history and history[-1].get("val_accuracy") is not None:
        final["val_error"] = 1.0 - history[-1]["val_accuracy"]
    if run.failed:
        return run.finish(final)

    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=config.eval_batch_size, verbose=0)
    if config.flip_test:
        final["test_error_without_flip"] = 1.0 - float(test_acc)
        test_acc = flip_averaged_accuracy(model, x_test, y_test, config.eval_batch_size)
    if config.test_each_epoch:
        table6 = json.loads((Path(__file__).parent / "paper.json").read_text())["paper_values"]  # Table 6, %
        time_to_accuracy_figure(run.figure_path("time_to_accuracy"), run.history(), table6[config.variant] / 100,
                                f"{config.variant}, preset {preset}, seed {config.seed}")
    classifier = run.save_model(image_classifier(model, arrays["pixel_mean"]), "classifier")
    final.update(test_error=1.0 - float(test_acc), test_loss=float(test_loss), classifier_file=str(classifier))
    status = run.finish(final, summary=f"test error {100 * final['test_error']:.2f} %")
    score_network.write_card(classifier, classifier_card(run.record))
    return status


def main(argv=None) -> int:
    return cfg.cli_main(ResNetConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

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

from common import config as cfg
from common import score_network, training
from common.data import cifar10
from common.data.pipeline import ArrayBatches, pad_crop_flip
from common.run import Run
from papers.resnet.config import PRESETS, ResNetConfig
from papers.resnet.model import OneCycle, SmoothedSparseCrossentropy, build_model

PAPER = "resnet"


def lr_schedule(config: ResNetConfig):
    """The learning rate as a function of the iteration count: §4.2's steps, or the fast preset's one cycle."""
    if config.lr_schedule == "onecycle":
        return OneCycle(config.learning_rate, round(config.lr_peak_share * config.max_iterations),
                        config.max_iterations)
    return step_schedule(config)


def step_schedule(config: ResNetConfig):
    """Step schedule over iterations (§4.2): lr / 10 at each boundary, after an optional warm-up at
    `warmup_lr`. A pure function of the iteration count, so it compiles into the train step on
    every backend and resumes exactly with the optimizer's state."""
    values = [config.learning_rate * 0.1**i for i in range(len(config.lr_boundaries) + 1)]
    boundaries = list(config.lr_boundaries)
    warmup = config.warmup_iterations
    if warmup:
        boundaries, values = [warmup, *boundaries], [config.warmup_lr, *values]
    if not boundaries:
        return config.learning_rate
    # The optimizer asks for the rate with the number of updates already made, and
    # PiecewiseConstantDecay switches *after* a boundary (step > b): b - 1 makes update number b + 1
    # the first at the new rate, i.e. "divide it by 10 at 32k iterations".
    return keras.optimizers.schedules.PiecewiseConstantDecay([b - 1 for b in boundaries], values)


def compile_model(model: keras.Model, config: ResNetConfig) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.SGD(lr_schedule(config), momentum=config.momentum, nesterov=config.nesterov),
        loss=(SmoothedSparseCrossentropy(config.label_smoothing) if config.label_smoothing
              else keras.losses.SparseCategoricalCrossentropy()),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit,
    )
    return model


def prepare_data(config: ResNetConfig):
    """Train / val / test arrays with the per-pixel training mean subtracted (§4.2), in [0, 1] units."""
    data = cifar10.load(config.data_dir or None, download=config.download, verify=config.verify_data)
    train, val = cifar10.train_val_split(data.train, config.val_size)
    test = data.test
    if config.train_subset:
        train = train.take(np.arange(min(config.train_subset, len(train))))
    if config.test_subset:
        test = test.take(np.arange(min(config.test_subset, len(test))))
    mean = train.x.mean(axis=0, dtype=np.float64) / 255.0

    def prep(x):
        return (x.astype(np.float32) / 255.0 - mean).astype(np.float32)

    arrays = {"train": (prep(train.x), train.y), "val": (prep(val.x), val.y), "test": (prep(test.x), test.y),
              "pixel_mean": mean.astype(np.float32)}
    return arrays, data


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


def image_classifier(model: keras.Model, pixel_mean: np.ndarray) -> keras.Model:
    """The trained network as a self-contained classifier of CIFAR-10 images in [-1, 1] (the range of
    a GAN generator's tanh) with its preprocessing inside: -> [0, 1] -> minus the per-pixel training
    mean -> class probabilities. Saved as `classifier.keras` in the run directory, it is the feature
    network the GAN papers' scores load by path (`common.gen_metrics.FeatureNetwork.from_model_file`)."""
    x = keras.Input((32, 32, 3), name="image_minus1_to_1")
    h = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
    h = keras.layers.Normalization(axis=(1, 2, 3), mean=pixel_mean, variance=np.ones_like(pixel_mean),
                                   name="minus_pixel_mean")(h)
    return keras.Model(x, model(h), name=f"{model.name}_cifar10_classifier")


def classifier_card(record: dict) -> dict:
    """The card of a run's `classifier.keras` (read by `common.gen_metrics.FeatureNetwork`, so that GAN
    scores made with it carry its test accuracy), taken from the run's results record."""
    final, config = record["final"], record["config"]
    return {"what": f"CIFAR-10 {record['variant']} classifier ({record['preset']} preset, seed {record['seed']}), "
                    "saved by papers/resnet/train.py",
            "dataset": "cifar10", "source": record["data"]["source"], "train_images": record["data"]["train"],
            "test_images": record["data"]["test"], "test_accuracy": 1.0 - final["test_error"],
            "input": "images in [-1, 1], 32x32x3", "seed": record["seed"], "preset": record["preset"],
            "iterations": final["iterations"], "batch_size": config["batch_size"], "git": record["git"],
            "versions": record["versions"], "device": record["device"], "started": record["started"],
            "wall_time_s": record["wall_time_s"]}


def run(config: ResNetConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
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
    return cfg.cli_main(ResNetConfig, PRESETS, run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

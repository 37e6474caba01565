"""Train U-Net on the ISBI 2012 EM stacks as in Ronneberger et al. 2015, evaluate it on held-out
training slices with the challenge's metrics, and write its results JSON and figures.

    python papers/unet/train.py --fold=0 --seed=0        # the paper's recipe (a GPU job)
    python papers/unet/train.py --preset=quick --fold=0  # 1,500 steps, smaller network (REPORT.md: wall time)
    python papers/unet/train.py --help                   # every field, default and preset

Training: one augmented tile per step (a random slice of the 24 training slices, a random rotation
or flip, an elastic deformation, grey-value changes, then a tile cut at a random position of the
mirrored image), pixel-wise softmax cross-entropy weighted by Eq. 2's map. Evaluation: overlap-tile
prediction of the 6 held-out slices, the cell probability scored by warping error, Rand error (1 -
V_rand), V_info and pixel error, each at its best threshold, as the challenge did. The 30 test slices are predicted and
written as a TIFF stack for submission. An interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.data import isbi2012
from common.lifecycle import config as cfg
from common.lifecycle.run import Run
from common.metrics import segmentation
from papers.unet import augment, weight_maps
from papers.unet.config import PRESETS, UNetConfig
from papers.unet.data import TileBatches
from papers.unet.model import build_unet, cell_probability, check_tile

PAPER = "unet"


class HeldOut(keras.callbacks.Callback):
    """Every `every` epochs (and at the last), pixel error and V_rand at threshold 0.5 on the held-out
    slices, added to the logs before the CSV logger writes them."""

    def __init__(self, images, labels, config: UNetConfig, every: int, last_epoch: int):
        super().__init__()
        self.images, self.labels, self.config, self.every, self.last = images, labels, config, every, last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if epoch == 0 or (epoch + 1) % self.every == 0 or epoch + 1 == self.last:
            probs = [cell_probability(self.model, im, self.config) for im in self.images]
            scores = [segmentation.evaluate(p, t, 0.5, warping=False) for p, t in zip(probs, self.labels, strict=True)]
            logs["val_pixel_error"] = float(np.mean([s["pixel_error"] for s in scores]))
            logs["val_rand_error"] = float(np.mean([s["rand_error"] for s in scores]))
        else:
            logs["val_pixel_error"] = logs["val_rand_error"] = float("nan")


def figure3(path: Path, image, truth, probability, wmap) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    panels = [(image, "input", "gray"), (truth, "ground truth (white: cell)", "gray"),
              (probability, "prediction: P(cell)", "gray"), (wmap, "loss weight map (Eq. 2)", "jet")]
    for ax, (data, title, cmap) in zip(axes, panels, strict=True):
        im = ax.imshow(data, cmap=cmap)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[-1], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def deformation_figure(path: Path, image, labels, config: UNetConfig, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng([seed, 99])
    disp = augment.dense_displacement(augment.coarse_displacement(rng, config.elastic_grid, config.elastic_sigma),
                                      image.shape)
    grid = np.ones_like(image)
    grid[::32] = grid[:, ::32] = 0
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    panels = [(image, "slice"), (augment.warp(image, disp, 3), "elastically deformed"),
              (augment.warp(labels.astype(np.float32), disp, 0), "its labels, same warp"),
              (augment.warp(grid, disp, 1), f"the warp on a grid (3x3 coarse, {config.elastic_sigma:g} px)")]
    for ax, (data, title) in zip(axes, panels, strict=True):
        ax.imshow(data, cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_submission(path: Path, probabilities: np.ndarray) -> str:
    """The test prediction as the challenge took it: a 30-slice 32-bit float TIFF stack in [0, 1],
    in the polarity of the training labels (1 = cell, white; 0 = membrane, black)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.tif")
    tifffile.imwrite(tmp, probabilities.astype(np.float32))
    tmp.replace(path)
    return str(path)


def train(config: UNetConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, throughput_key="train_tiles_per_s", callbacks=extra_callbacks)
    data = isbi2012.load(config.data_dir or None, verify=config.verify_data)
    images = data.train_images.astype(np.float32) / 255.0
    labels = data.train_labels
    train_idx, val_idx = config.training_slices, config.held_out
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified,
                      training_slices=train_idx, held_out_slices=val_idx)
    t_w = time.perf_counter()
    maps = [weight_maps.weight_map(labels[i], config.w0, config.sigma) for i in train_idx]
    print(f"weight maps of {len(train_idx)} training slices: {time.perf_counter() - t_w:.0f} s")
    model = build_unet(config.tile, filters=config.filters, dropout=config.dropout)
    model.compile(keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=config.jit)
    train_ds = TileBatches(images[train_idx], labels[train_idx], maps, config, workers=config.data_workers)
    epochs = -(-config.steps // config.steps_per_epoch)
    out = check_tile(config.tile)
    print(f"{config.variant}, preset {preset}, fold {config.fold} (held out slices {val_idx[0]}-{val_idx[-1]}): "
          f"{config.tile}x{config.tile} tiles -> {out}x{out}, {config.steps} steps ({epochs} epochs of "
          f"{config.steps_per_epoch}); working files in {run.dir}")

    held_out = HeldOut(images[val_idx], labels[val_idx], config, config.val_every, epochs)
    run.fit(model, train_ds, epochs=epochs, images_per_step=config.batch_size, max_steps=config.steps,
            callbacks=[held_out])
    if run.failed:
        return run.finish()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_inf = time.perf_counter()
    probs = np.stack([cell_probability(model, im, config) for im in images[val_idx]])
    per_slice_s = (time.perf_counter() - t_inf) / len(val_idx)
    tiles_per_slice = (-(-512 // out)) ** 2
    scores = segmentation.best_over_thresholds(probs, labels[val_idx], warping=config.warping_error)
    final = {"rand_error": scores["rand_error"], "v_rand": scores["v_rand"], "v_info": scores["v_info"],
             "pixel_error": scores["pixel_error"], "warping_error": scores["warping_error"],
             "rand_error_at_0_5": 1 - scores["at_0.5"]["v_rand"], "pixel_error_at_0_5": scores["at_0.5"]["pixel_error"],
             "thresholds": {k: scores[k] for k in ("v_rand_threshold", "v_info_threshold", "pixel_error_threshold",
                                                   "warping_error_threshold")},
             "inference_s_per_slice": per_slice_s, "inference_tiles_per_s": tiles_per_slice / per_slice_s,
             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "peak_rss_mb_before_inference": rss_before / 1024}
    k = val_idx[0]
    wmap = weight_maps.weight_map(labels[k], config.w0, config.sigma)
    figure3(run.figure_path("figure3"), images[k], labels[k], probs[0], wmap)
    deformation_figure(run.figure_path("elastic"), images[k], labels[k], config, config.seed)
    summary = (f"fold {config.fold}, held-out Rand error {final['rand_error']:.4f}, V_info {final['v_info']:.4f}, "
               f"pixel error {final['pixel_error']:.4f}, warping error {final['warping_error'] or float('nan'):.6f} "
               f"(best thresholds); {final['inference_s_per_slice']:.1f} s per 512x512 slice")
    if config.predict_test:
        test = data.test_images.astype(np.float32) / 255.0
        stack = np.stack([cell_probability(model, im, config) for im in test])
        final["test_prediction"] = write_submission(run.dir / "test-prediction.tif", stack)
        summary += f"\nTest-volume prediction for the challenge: {final['test_prediction']}"
    final["network_file"] = str(run.save_model(model, "unet"))  # over the budget: results/unet/networks/ has its card
    return run.finish(final, summary=summary)


def main(argv=None) -> int:
    return cfg.cli_main(UNetConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

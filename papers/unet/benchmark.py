"""Time and memory of U-Net's overlap-tile inference on one 512x512 slice, and of its train step.

    python papers/unet/benchmark.py                    # the paper's network, 572x572 tiles
    python papers/unet/benchmark.py --preset=quick     # 16 filters, 380x380 tiles

Run it as its own process: the peak resident memory it reports (the process's maximum RSS, read
from the kernel) then covers the model, the slice and the tiles in flight, not a training run's
leftovers. Inference keeps `eval_batch_size` tiles in memory at a time whatever the slice size; the
memory is measured before and after predicting the slice so that its growth can be read off.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.lifecycle.config import param
from common.lifecycle.run import benchmark
from papers.unet.config import PRESETS, UNetConfig
from papers.unet.model import build_unet, cell_probability, check_tile

PAPER = "unet"
DESCRIPTION = (
    "Overlap-tile inference of one 512×512 slice with untrained weights of the given size (the cost does not "
    "depend on the weights), and the training step on one tile, in a process of its own "
    "(`papers/unet/benchmark.py`). Peak memory is the process's maximum resident set size: model, slice and "
    "`eval_batch_size` tiles at a time; growth is the increase over the memory before the slice was predicted.")


@dataclass(frozen=True)
class UNetBenchmarkConfig(UNetConfig):
    repeats: int = param(2, "timed predictions of the slice (after one untimed, which compiles)")
    train_steps: int = param(3, "timed train steps (after one untimed)")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@benchmark(PAPER, UNetBenchmarkConfig, PRESETS, description=DESCRIPTION)
def run(config: UNetBenchmarkConfig) -> dict:
    out = check_tile(config.tile)
    model = build_unet(config.tile, filters=config.filters, dropout=config.dropout)
    image = np.random.default_rng(0).uniform(size=(512, 512)).astype(np.float32)
    cell_probability(model, image, config)  # compile
    before = _rss_mb()
    times = []
    for _ in range(config.repeats):
        start = time.perf_counter()
        cell_probability(model, image, config)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles = (-(-512 // out)) ** 2
    model.compile(keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).uniform(size=(config.batch_size, config.tile, config.tile, 1)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 2, (config.batch_size, out, out))
    w = np.ones((config.batch_size, out, out), np.float32)
    model.train_on_batch(x, y, sample_weight=w)
    start = time.perf_counter()
    for _ in range(config.train_steps):
        model.train_on_batch(x, y, sample_weight=w)
    step_s = (time.perf_counter() - start) / config.train_steps
    best = min(times)
    final = {"title": "Inference and train-step cost", "slice_s": best, "inference_tiles_per_s": tiles / best,
             "tiles_per_slice": tiles, "peak_rss_mb": peak, "rss_before_slice_mb": before,
             "train_step_s": step_s, "train_tiles_per_s": config.batch_size / step_s,
             "summary": {"tile → output": f"{config.tile} → {out}", "filters": str(config.filters),
                         "tiles per slice": str(tiles), "eval batch": str(config.eval_batch_size),
                         "s per 512² slice": f"{best:.2f}", "inference tiles/s": f"{tiles / best:.2f}",
                         "train step (s)": f"{step_s:.2f}", "peak memory (MB)": f"{peak:.0f}",
                         "memory before the slice (MB)": f"{before:.0f}"}}
    return final


if __name__ == "__main__":
    sys.exit(run.main())

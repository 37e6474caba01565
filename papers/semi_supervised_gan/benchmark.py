"""What a train step costs on each dataset, and what the authors' recipe would take at that rate, as a
results JSON.

    python papers/semi_supervised_gan/benchmark.py                   # MNIST and CIFAR-10, batch 100
    python papers/semi_supervised_gan/benchmark.py --datasets=cifar10 --steps=3

One step is train.py's: a discriminator update on a labelled, an unlabelled and a generated batch, the
moving average of its weights, then a generator update by feature matching on a second unlabelled batch
(`train_on_batch` on random images of the dataset's shape). The datasets are timed in alternation, `repeats`
times, and the fastest repeat of each is kept; compilation is excluded (`warmup_steps`). The record also
gives what the authors' epochs (MNIST 300, CIFAR-10 1,200, of training images / batch steps each) would take
at that rate: a projection of the train steps alone (no per-epoch test evaluation), not a run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import common.tf_env  # noqa: F401

import numpy as np

from common.lifecycle import training
from common.lifecycle.config import param
from common.lifecycle.run import benchmark, timing_fields
from papers.semi_supervised_gan.config import PRESETS, SemiSupervisedGANConfig
from papers.semi_supervised_gan.model import build_model

PAPER = "semi_supervised_gan"

TRAIN_IMAGES = {"mnist": 60_000, "cifar10": 50_000}
SHAPES = {"mnist": ((784,), (0.0, 1.0)), "cifar10": ((32, 32, 3), (-1.0, 1.0))}
DESCRIPTION = (
    "One train step (a discriminator update on a labelled, an unlabelled and a generated batch, then a generator "
    "update by feature matching) on each dataset, timed in alternation, the fastest repeat of each kept, "
    "compilation excluded; the hours project the authors' epochs (MNIST 300, CIFAR-10 1,200) at that rate, train "
    "steps alone (`papers/semi_supervised_gan/benchmark.py`).")


@dataclass(frozen=True)
class StepBenchmarkConfig(timing_fields(10, 3, 2), SemiSupervisedGANConfig):
    datasets: tuple[str, ...] = param(("mnist", "cifar10"), "datasets whose step to time", choices=TRAIN_IMAGES,
                                      distinct=1)

    @property
    def variant(self) -> str:
        return "+".join(self.datasets)


@benchmark(PAPER, StepBenchmarkConfig, PRESETS, description=DESCRIPTION)
def run(config: StepBenchmarkConfig) -> dict:
    rng = np.random.default_rng(config.seed)
    b = config.batch_size
    kinds, epochs = {}, {}
    for dataset in config.datasets:
        recipe = SemiSupervisedGANConfig(dataset=dataset, batch_size=b, seed=config.seed)  # the authors' settings
        epochs[dataset] = recipe.epochs
        model = build_model(recipe, TRAIN_IMAGES[dataset] // b)
        shape, (low, high) = SHAPES[dataset]
        x = tuple(rng.uniform(low, high, (b, *shape)).astype(np.float32) for _ in range(3))
        y = rng.integers(0, 10, b)
        kinds[dataset] = (lambda model=model, x=x, y=y: model.train_on_batch(x, y))
    best, measured = training.time_alternating(kinds, config.steps, config.warmup_steps, config.repeats)
    steps_per_epoch = {d: TRAIN_IMAGES[d] // b for d in best}
    hours = {d: epochs[d] * steps_per_epoch[d] * s / 3600 for d, s in best.items()}
    first = config.datasets[0]
    final = {"step_s": best, "images_per_s": {d: b / s for d, s in best.items()}, "all_measurements_s": measured,
             "cost_vs_first": {d: s / best[first] for d, s in best.items()}, "paper_epochs": epochs,
             "steps_per_epoch": steps_per_epoch, "paper_recipe_hours_projected": hours, "title": "Step cost",
             "summary_rows": [{"dataset": d, "step (ms)": f"{1000 * s:.0f}", "images/s": f"{b / s:.0f}",
                               f"cost vs {first}": f"{s / best[first]:.1f}x",
                               "authors' epochs x steps": f"{epochs[d]} x {steps_per_epoch[d]}",
                               "authors' recipe (projected)": f"{hours[d]:.1f} h", "batch": str(b)}
                              for d, s in best.items()]}
    return final


if __name__ == "__main__":
    sys.exit(run.main())

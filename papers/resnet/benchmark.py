"""Training throughput of a CIFAR ResNet, and what the input pipeline costs, as a results JSON.

    python papers/resnet/benchmark.py --depth=20
    python papers/resnet/benchmark.py --depth=110 --steps=20

Two measurements of the same compiled train step, same model and batch size:
  pipeline   `fit` on the training pipeline (shuffled, padded-cropped-flipped CIFAR-10 batches built by
             worker threads), as train.py runs it;
  in memory  `fit` on the same number of batches already augmented and held in one array, fed by
             Keras' array adapter (on TensorFlow a tf.data pipeline with no Python in the loop).
Pipeline overhead = 1 - pipeline / in memory. The first `warmup_steps` steps (compilation) are not timed.
Also timed, after each pair: a validation pass as a paper-recipe epoch ends, `evaluate` on `val_size` of the
images (seconds; `--tf_data_autotune=true` shows what tf.data's autotuning costs there).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.data.pipeline import ArrayBatches, pad_crop_flip
from common.lifecycle import config as cfg
from common.lifecycle.run import benchmark, timing_fields
from papers.resnet.config import ResNetConfig
from papers.resnet.data import prepare_data
from papers.resnet.model import build_model, compile_model

PAPER = "resnet"


@dataclass(frozen=True)
class BenchmarkConfig(timing_fields(50, 5, 2), ResNetConfig):
    """The ResNet config and how its train steps are timed (through the pipeline, and from memory)."""


class _BatchClock(keras.callbacks.Callback):
    def __init__(self, warmup: int):
        super().__init__()
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def _timed_fit(model, steps, warmup, images_per_step, **fit_kwargs) -> float:
    clock = _BatchClock(warmup)
    model.fit(epochs=1, verbose=0, callbacks=[clock], **fit_kwargs)
    # The last step's result is read back so that an asynchronous backend has really finished it.
    float(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return steps * images_per_step / (time.perf_counter() - clock.start)


@benchmark(PAPER, BenchmarkConfig, {})
def run(config: BenchmarkConfig) -> tuple[dict, str, dict]:
    arrays, data = prepare_data(config)
    x_train, y_train = arrays["train"]
    bs, total = config.batch_size, config.warmup_steps + config.steps
    pipeline = ArrayBatches(x_train, y_train, bs, seed=config.seed, workers=config.data_workers,
                            augment=pad_crop_flip(config.pad) if config.augment else None)
    if total > len(pipeline):
        raise cfg.ConfigError(f"warmup_steps + steps = {total} exceeds one epoch ({len(pipeline)} batches)")
    # The in-memory feed: exactly the batches the pipeline would produce, built beforehand.
    batches = [pipeline[i] for i in range(total)]
    x_mem, y_mem = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    model = compile_model(build_model(config.depth, weight_decay=config.weight_decay,
                                      precision=config.precision), config)
    measured = {"pipeline": [], "in_memory": [], "validation_pass_s": []}
    x_eval, y_eval = x_train[:config.val_size], y_train[:config.val_size]
    if len(x_eval):  # compiled first
        model.evaluate(x_eval[:config.eval_batch_size], y_eval[:config.eval_batch_size], verbose=0)
    for _ in range(config.repeats):
        measured["pipeline"].append(_timed_fit(model, config.steps, config.warmup_steps, bs, x=pipeline,
                                               steps_per_epoch=total, shuffle=False))
        measured["in_memory"].append(_timed_fit(model, config.steps, config.warmup_steps, bs, x=x_mem, y=y_mem,
                                                batch_size=bs, shuffle=False))
        if len(x_eval):
            start = time.perf_counter()
            model.evaluate(x_eval, y_eval, batch_size=config.eval_batch_size, verbose=0)
            measured["validation_pass_s"].append(time.perf_counter() - start)
    best_pipe, best_mem = max(measured["pipeline"]), max(measured["in_memory"])
    final = {"pipeline_images_per_s": best_pipe, "in_memory_images_per_s": best_mem,
             "pipeline_overhead": 1 - best_pipe / best_mem, "step_ms": 1000 * bs / best_pipe,
             "all_measurements": measured}
    if measured["validation_pass_s"]:
        final.update(validation_pass_s=min(measured["validation_pass_s"]), validation_images=len(x_eval))
    line = (f"{config.variant}, batch {bs}: pipeline {best_pipe:.0f} images/s, in memory {best_mem:.0f} images/s, "
            f"overhead {100 * final['pipeline_overhead']:.1f} %")
    return final, line, {"data": {"source": data.source, "checksums": data.checksums}}


if __name__ == "__main__":
    sys.exit(run.main())

"""What the input size costs the FER-2013 stage: train steps of the same network at ours (48x48) and at the
paper's (224x224), timed in turn, as a results JSON.

    python papers/emotion_transfer/benchmark.py                      # sizes 48 and 224, batch 64
    python papers/emotion_transfer/benchmark.py --sizes=48,96,224 --steps=3

Each size is the classifier that train.py builds for the FER-2013 stage (faces resized to the input, the
backbone, dropout, seven logits; random weights, which cost what ImageNet's do) and its compiled SGD step,
run by `train_on_batch` on a batch of random 48x48 faces. The sizes are timed in alternation, `repeats`
times, and the fastest repeat of each is kept; compilation is excluded (`warmup_steps`). From each rate the
record also gives what one epoch of FER-2013's 28,709 training images, and the preset's `fer_epochs`, would
take at that rate: a projection from the measured step, not a run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import common.tf_env  # noqa: F401

import numpy as np

from common.lifecycle import training
from common.lifecycle.config import param
from common.lifecycle.run import benchmark, timing_fields
from papers.emotion_transfer.config import PRESETS, EmotionTransferConfig
from papers.emotion_transfer.model import build_classifier, compile_model

PAPER = "emotion_transfer"

FER_TRAIN_IMAGES = 28_709
DESCRIPTION = (
    "Train steps of the FER-2013 stage's classifier (resize, backbone, dropout, seven logits; SGD with "
    "momentum) at each input size, on batches of random 48x48 faces, the sizes timed in alternation and the "
    "fastest repeat of each kept, compilation excluded; the hours are what the stage's epochs of 28,709 "
    "images would take at that rate, a projection (`papers/emotion_transfer/benchmark.py`).")


@dataclass(frozen=True)
class InputSizeBenchmarkConfig(timing_fields(5, 2, 2), EmotionTransferConfig):
    scheme: str = param("fer", "the stage timed: fer (stage one), whose step every scheme's resembles")
    sizes: tuple[int, ...] = param((48, 224), "input sides to time (48: ours; 224: the paper's networks')", low=48,
                                   distinct=1)


@benchmark(PAPER, InputSizeBenchmarkConfig, PRESETS, description=DESCRIPTION)
def run(config: InputSizeBenchmarkConfig) -> dict:
    rng = np.random.default_rng(config.seed)
    b = config.batch_size
    faces = rng.integers(0, 256, (b, 48, 48, 1)).astype(np.float32)
    labels = rng.integers(0, 7, b)
    kinds = {}
    for size in config.sizes:
        model = compile_model(build_classifier(replace(config, input_size=size), imagenet=False),
                              config.fer_learning_rate, 1000, config)
        kinds[f"{size}x{size}"] = (lambda model=model: model.train_on_batch(faces, labels))
    best, measured = training.time_alternating(kinds, config.steps, config.warmup_steps, config.repeats)
    rates = {k: b / s for k, s in best.items()}
    ours = f"{config.sizes[0]}x{config.sizes[0]}"
    hours = {k: config.fer_epochs * FER_TRAIN_IMAGES / r / 3600 for k, r in rates.items()}
    final = {"images_per_s": rates, "step_s": best, "all_measurements_s": measured,
             "cost_vs_first": {k: rates[ours] / r for k, r in rates.items()},
             "fer_stage_hours_projected": hours, "fer_epochs": config.fer_epochs, "title": "Cost of the input size",
             "summary_rows": [{"input": k, "images/s": f"{r:.1f}", f"cost vs {ours}": f"{rates[ours] / r:.1f}x",
                               f"FER stage, {config.fer_epochs} epoch(s) (projected)": f"{hours[k]:.1f} h",
                               "batch": str(b)} for k, r in rates.items()]}
    return final


if __name__ == "__main__":
    sys.exit(run.main())

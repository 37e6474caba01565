"""Configuration of the CIFAR-10 ResNets (He et al. 2016, §4.2). The defaults are the paper's recipe.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend; GPU: one H100, JAX):

  paper   python papers/resnet/train.py --depth=20 --seed=0
          64k iterations of batch 128 (182 epochs of 45k). README.md projects the time on the 2-core CPU
          from the measured throughput; REPORT.md has each finished run's wall time. Not yet run on a GPU.
          Paper, Table 6: 8.75 % test error (ResNet-20).
  quick   python papers/resnet/train.py --preset=quick
          The same recipe with the schedule compressed to 3,000 iterations (8.5 epochs), lr / 10
          at 50 % and 75 % of it, as in the paper (each run's wall time: REPORT.md).
          Far from the paper's number (see REPORT.md for what it reaches), but it shows that model,
          data and schedule work together.
  fast    python papers/resnet/train.py --preset=fast --seed=0
          ResNet-20 on a sixth of the paper's training images (27.3 epochs of all 50k), aiming at the
          paper's 8.75 %: batch 256, a one-cycle learning rate peaking at 0.2, Nesterov momentum,
          weight decay 5e-4, label smoothing 0.1, no validation split, mirror-averaged test predictions;
          the test error after every epoch gives a time-to-accuracy figure. Not the paper's recipe
          (README.md, Deviations); REPORT.md has what it reaches.
  smoke   python papers/resnet/train.py --preset=smoke
          ResNet-8 on 96 images for 6 iterations (2 epochs): seconds. Checks the plumbing; the number means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, RunConfig, param
from papers.resnet.model import blocks_per_stage

LR_SCHEDULES = ("step", "onecycle")
PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class ResNetConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"depth", "eval_batch_size", "deterministic", "data_workers",
                                                 "test_each_epoch"}
    HASHED_UNLESS_DEFAULT = {**RunConfig.HASHED_UNLESS_DEFAULT, "precision": "float32", "label_smoothing": 0.0}

    depth: int = param(20, "6n+2 layers; the paper's are 20, 32, 44, 56, 110 (§4.2, Table 6)", low=8)
    batch_size: int = param(128, "minibatch size (§4.2)", low=1)
    learning_rate: float = param(0.1, "initial learning rate (§4.2)", above=0)
    lr_boundaries: tuple[int, ...] = param((32000, 48000), "iterations at which lr is divided by 10 (§4.2)")
    max_iterations: int = param(64000, "training stops after this many iterations (§4.2)", low=1)
    warmup_iterations: int = param(-1, "lr 0.01 for this many iterations first; -1: 400 for ResNet-110, "
                                       "else 0 (§4.2: 'until the training error is below 80%, about 400 iterations')",
                                 low=-1)
    warmup_lr: float = param(0.01, "learning rate during warm-up (§4.2)", above=0)
    momentum: float = param(0.9, "SGD momentum (§4.2)", below=1)
    weight_decay: float = param(1e-4, "weight decay, added to the gradient as wd * w (§4.2); see model.py")
    val_size: int = param(5000, "images held out of the 50k training set for validation (§4.2: 45k/5k split)")
    augment: bool = param(True, "4-pixel zero padding, random 32x32 crop, random horizontal flip (§4.2)")
    pad: int = param(4, "padding in pixels for the random crop (§4.2); less than the 32-pixel image", below=32)
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke tests")
    test_subset: int = param(0, "evaluate on the first N test images (0: all 10,000); for smoke tests")
    eval_batch_size: int = param(500, "batch size for validation and test (no effect on results)", low=1)
    lr_schedule: str = param("step", "step: lr / 10 at each of lr_boundaries, after any warm-up (§4.2); onecycle "
                                     "(ours, the fast preset): a linear rise from 0 to learning_rate over the first "
                                     "lr_peak_share of max_iterations, then a linear fall to 0", choices=LR_SCHEDULES)
    lr_peak_share: float = param(0.2, "onecycle: where the learning rate peaks, as a share of max_iterations",
                                 above=0, below=1)
    nesterov: bool = param(False, "Nesterov momentum (ours, the fast preset; §4.2: plain momentum)")
    label_smoothing: float = param(0.0, "share of each target spread evenly over the classes (ours, the fast "
                                        "preset; §4.2: none)", low=0, below=1)
    flip_test: bool = param(False, "test error of the mean prediction for each image and its mirror image (ours, "
                                   "the fast preset; §4.2: the image alone)")
    test_each_epoch: bool = param(False, "also measure the test error after every epoch, for a time-to-accuracy "
                                         "curve (nothing is chosen on it; the fast preset, which has no validation "
                                         "split, turns it on)")
    precision: str = param("float32", "arithmetic of the network: float32 (§4.2) or mixed_bfloat16 (ours: bfloat16 "
                                      "arithmetic, float32 weights and softmax; changes the numbers: a recipe change)",
                           choices=PRECISIONS)
    deterministic: bool = param(True, "deterministic kernels on TensorFlow, so that a resumed run matches")
    data_workers: int = param(2, "threads that build augmented batches ahead of the train step", low=1)

    def automatic(self) -> dict:
        """warmup_iterations -1: §4.2's 400 for ResNet-110, none for the others."""
        return {"warmup_iterations": 400 if self.depth >= 110 else 0} if self.warmup_iterations < 0 else {}

    def validate(self) -> None:
        super().validate()
        try:
            blocks_per_stage(self.depth)
        except ValueError as e:
            raise ConfigError(f"--depth: {e}") from None
        if list(self.lr_boundaries) != sorted(self.lr_boundaries):
            raise ConfigError(f"lr_boundaries must be increasing, got {self.lr_boundaries}")
        if self.lr_schedule == "onecycle" and (self.lr_boundaries or self.warmup_iterations):
            raise ConfigError("--lr_schedule=onecycle has its own shape: set --lr_boundaries=() and "
                              "--warmup_iterations=0")
        if self.val_size % 10:
            raise ConfigError(f"--val_size={self.val_size} must be a multiple of 10 (the same share of every class)")

    @property
    def variant(self) -> str:
        return f"resnet{self.depth}"



# fast: ResNet-20 itself, aimed at the paper's 8.75 % with at most a sixth of the paper's training images
# (64,000 x 128 / 6: 5,333 iterations of 256 = 1,365,248 images, 27.3 epochs of the 50,000), with our
# schedule; each departure is under Deviations in README.md.
FAST_BATCH = 256
PRESETS = {
    "quick": {"max_iterations": 3000, "lr_boundaries": (1500, 2250)},
    "fast": {"batch_size": FAST_BATCH, "max_iterations": 64_000 * 128 // 6 // FAST_BATCH, "val_size": 0,
             "lr_schedule": "onecycle", "lr_boundaries": (), "learning_rate": 0.2, "lr_peak_share": 0.2,
             "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1, "flip_test": True,
             "test_each_epoch": True},
    "smoke": {"depth": 8, "batch_size": 32, "max_iterations": 6, "lr_boundaries": (3, 5), "val_size": 50,
              "train_subset": 96, "test_subset": 100, "eval_batch_size": 50},
}

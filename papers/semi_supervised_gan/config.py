"""Configuration of semi-supervised learning with a feature-matching GAN (Salimans et al. 2016, §3.1, §5).
Defaults: the authors' scripts (openai/improved-gan, train_mnist_feature_matching.py and
train_cifar_feature_matching.py), which the paper's numbers come from; README, Deviations.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend; costs in REPORT.md):

  paper   python papers/semi_supervised_gan/train.py --dataset=mnist --labels=100 --data_seed=1 --seed=0
          MNIST: 100 labels (10 per class, drawn by --data_seed), all 60,000 training images unlabelled,
          300 epochs of 600 steps, Adam 0.003 (beta_1 0.5). Table 1: 93 ± 6.5 test errors over 10 draws.
          --dataset=cifar10: 4,000 labels, 1,200 epochs of 500 steps, Adam 3e-4 falling linearly to 0 over
          the last 400 epochs (Table 2: 18.63 ± 2.32 %). --labelled_only=true: the same D on the labels alone.
          --minibatch_discrimination=true: the authors' minibatch-discrimination variant (for samples).
  quick   python papers/semi_supervised_gan/train.py --preset=quick --dataset=mnist
          20 epochs on MNIST, 2 on CIFAR-10 (its last third with the falling learning rate, as the paper's).
  smoke   python papers/semi_supervised_gan/train.py --preset=smoke
          2 epochs of 5 steps on a few hundred images: seconds. The numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, RunConfig, param

DATASETS = ("mnist", "cifar10", "svhn")
# The authors' per-dataset settings (their scripts' defaults; SVHN's: train_svhn_feature_matching.py as of its
# last revision, 900 epochs, where earlier ones ran 501).
# decay_share: the share of the epochs at the end over which the learning rate falls linearly to 0 (CIFAR-10:
# the last 400 of 1,200, lr * min(3 - epoch / 400, 1); SVHN: the last 300 of 900; a shortened run keeps the
# proportion).
# quick_epochs: the quick preset's length (on the project's CPU a CIFAR-10 step takes 66 times an MNIST one and an
# epoch has 500 steps against 600: results/semi_supervised_gan/mnist+cifar10_benchmark_seed0_20261130T150321Z.json).
PER_DATASET = {"mnist": {"labels": 100, "epochs": 300, "learning_rate": 0.003, "decay_share": 0.0, "quick_epochs": 20},
               "cifar10": {"labels": 4000, "epochs": 1200, "learning_rate": 0.0003, "decay_share": 1 / 3,
                           "quick_epochs": 2},
               "svhn": {"labels": 1000, "epochs": 900, "learning_rate": 0.0003, "decay_share": 1 / 3,
                        "quick_epochs": 2}}


# With minibatch discrimination: the rate of both of the authors' minibatch-discrimination scripts (CIFAR-10,
# SVHN). They published none for MNIST, whose feature-matching rate (0.003) let D win within the first epochs
# in a trial (README, Deviations).
MINIBATCH_LEARNING_RATE = 3e-4


@dataclass(frozen=True)
class SemiSupervisedGANConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"dataset", "labels", "data_seed", "labelled_only",
                                                 "minibatch_discrimination", "label_smoothing", "historical_averaging",
                                                 "eval_every", "sample_every"}
    HASHED_UNLESS_DEFAULT = {**RunConfig.HASHED_UNLESS_DEFAULT, "minibatch_discrimination": False,
                             "label_smoothing": 0.0, "historical_averaging": 0.0}
    # Renamed after runs were recorded (spelt as labelled_only beside it): RunConfig.RENAMED.
    RENAMED = {**RunConfig.RENAMED, "unlabeled_weight": "unlabelled_weight"}

    dataset: str = param("mnist", "mnist, cifar10 or svhn (its .mat files are not available offline here)",
                         choices=DATASETS)
    labels: int = param(0, "labelled training images, the same number per class; 0: the paper's (MNIST 100, "
                           "CIFAR-10 4,000, SVHN 1,000)", low=0)
    data_seed: int = param(1, "draws the labelled subset (the authors' --seed_data, default 1); --seed is the run's")
    labelled_only: bool = param(False, "the baseline: the same discriminator trained on the labelled images alone, "
                                       "for the same steps (no unlabelled images, no generator)")
    minibatch_discrimination: bool = param(False, "minibatch discrimination (§3.2) for sample quality, as the "
                                                  "authors' minibatch-discrimination scripts: the layer before D's "
                                                  "output, G trained on D's output (3 updates per D update) instead "
                                                  "of by feature matching; one device or JAX")
    label_smoothing: float = param(0.0, "one-sided label smoothing (§3.4): real images' target 1 - s in D's "
                                        "unsupervised loss, generated ones' 0 (0: off, as the authors' scripts of "
                                        "Tables 1-2; the paper's example is s = 0.1)", low=0, below=1)
    historical_averaging: float = param(0.0, "historical averaging (§3.3): each player's loss plus this weight "
                                             "times ||theta - mean of its past values||^2 (0: off, as the "
                                             "authors' code; the paper gives no weight)", low=0)
    batch_size: int = param(100, "labelled, unlabelled and generated images per step each (authors: 100)", low=1)
    epochs: int = param(0, "epochs of (unlabelled images / batch) steps; 0: the authors' (MNIST 300, CIFAR-10 "
                           "1,200, SVHN 900); -1: the quick preset's (MNIST 20, CIFAR-10 and SVHN 2)", low=-1)
    learning_rate: float = param(0.0, "Adam's rate for both players; 0: the authors' (MNIST 0.003, else 3e-4; "
                                      "3e-4 with minibatch discrimination)")
    lr_decay_epochs: int = param(-1, "the rate falls linearly to 0 over this many final epochs; -1: the "
                                     "authors' share (the last third: CIFAR-10 400 of 1,200, SVHN 300 of 900; "
                                     "MNIST none)", low=-1)
    beta_1: float = param(0.5, "Adam's beta_1 for both players (authors: mom1 = 0.5)", below=1)
    unlabelled_weight: float = param(1.0, "weight of the unsupervised loss in D's loss (authors' default 1)")
    average_rate: float = param(1e-4, "D's test-time weights: a moving average of its weights at this rate",
                                  above=0, high=1)
    init_examples: int = param(500, "images of the data-dependent initialisation (authors: 500)", low=1)
    latent_dim: int = param(100, "dimension of z, uniform in [0, 1]", low=1)
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke runs")
    test_subset: int = param(0, "test on the first N test images (0: all)")
    eval_every: int = param(1, "epochs between test-error evaluations (history)", low=1)
    sample_every: int = param(10, "epochs between sample grids in the run directory", low=1)

    def automatic(self) -> dict:
        if self.dataset not in PER_DATASET:
            return {}
        defaults = PER_DATASET[self.dataset]
        chosen = {k: defaults[k] for k in ("labels", "epochs", "learning_rate") if getattr(self, k) == 0}
        if "learning_rate" in chosen and self.minibatch_discrimination:
            chosen["learning_rate"] = MINIBATCH_LEARNING_RATE
        if self.epochs == -1:
            chosen["epochs"] = defaults["quick_epochs"]
        if self.lr_decay_epochs == -1:
            chosen["lr_decay_epochs"] = round(chosen.get("epochs", self.epochs) * defaults["decay_share"])
        return chosen

    def validate(self) -> None:
        super().validate()
        if self.labels < 10 or self.labels % 10:
            raise ConfigError(f"--labels must be a positive multiple of 10 (the same number per class), "
                              f"got {self.labels}")
        if self.lr_decay_epochs > self.epochs:
            raise ConfigError(f"--lr_decay_epochs={self.lr_decay_epochs} is more than --epochs={self.epochs}")
        if self.label_smoothing and self.labelled_only:
            raise ConfigError("--label_smoothing acts on D's real/generated loss; the --labelled_only baseline has "
                              "none: set one of them")
        if self.minibatch_discrimination and self.labelled_only:
            raise ConfigError("--minibatch_discrimination trains the generator; the --labelled_only baseline has "
                              "none: set one of them")

    @property
    def variant(self) -> str:
        return (f"{self.dataset}-{self.labels}labels" + ("-labelled-only" if self.labelled_only else "")
                + ("-minibatch" if self.minibatch_discrimination else "")
                + (f"-smooth{self.label_smoothing:g}" if self.label_smoothing else "")
                + (f"-histavg{self.historical_averaging:g}" if self.historical_averaging else ""))


PRESETS = {
    "quick": {"epochs": -1},
    "smoke": {"epochs": 2, "labels": 100, "train_subset": 500, "test_subset": 200, "init_examples": 100,
              "sample_every": 1},
}

"""Configuration of cascaded fine-tuning for facial expressions on a small target set (Ng, Nguyen, Vonikakis
& Winkler, ICMI 2015), with EfficientNet-Lite0 (ported ImageNet weights) standing in for the paper's
ImageNet CNNs, FER-2013 as the auxiliary set and CK+48 standing in for SFEW 2.0 (README); `--target=sfew` runs
the schemes on a licensed copy of SFEW 2.0 itself (trained on its Train split, tested on Val).

Schemes (`--scheme`), each on the same 10 subject-wise folds of CK+48 (or SFEW 2.0's Train/Val split):
  fer  ImageNet -> FER-2013 (stage one): trained once per seed, its FER-2013 validation and test accuracy
       recorded, the network saved for the schemes below (run it first)
  a    ImageNet -> target                      b  ImageNet -> FER-2013 -> target (the paper's cascade)
  c    ImageNet -> FER-2013 + target, one stage d  random initialisation -> target
  e    ImageNet -> FER-2013, tested on the target with no target training

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend; costs in REPORT.md):
  paper   python papers/emotion_transfer/train.py --scheme=fer --seed=0, then --scheme=a ... e
          48x48 input (FER-2013's own size), 5 FER-2013 epochs, 30 target epochs per fold.
  quick   python papers/emotion_transfer/train.py --preset=quick --scheme=...
          1 FER-2013 epoch, 10 target epochs, 3 folds.
  smoke   python papers/emotion_transfer/train.py --preset=smoke --scheme=...
          a few hundred images, 1 epoch, 2 folds: seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.lifecycle.config import ConfigError, RunConfig, param

SCHEMES = ("fer", "a", "b", "c", "d", "e")
TARGETS = ("ckplus", "sfew")
CK_FOLDS = 10  # CK+48's subject-wise folds (the target set is ours: README, Deviation 1)
BN_STATISTICS = ("auto", "moving", "population")
BACKBONES = ("efficientnet_lite0", "vgg16")
DEFAULT_WEIGHTS = {"efficientnet_lite0": "imagenet/efficientnet_lite0_imagenet.weights.h5",  # under runs_dir
                   "vgg16": "imagenet/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"}
# The stage-one fields: a saved FER-2013 network is reused only by runs that agree on all of them.
STAGE_ONE = ("backbone", "imagenet_weights", "input_size", "augment", "fer_epochs", "fer_learning_rate",
             "batch_size", "momentum", "dropout", "seed", "fer_subset")


@dataclass(frozen=True)
class EmotionTransferConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"scheme", "backbone", "imagenet_weights"}
    HASHED_UNLESS_DEFAULT = {**RunConfig.HASHED_UNLESS_DEFAULT, "bn_statistics": "moving", "target": "ckplus"}
    ONE_DEVICE_ONLY = "every epoch keeps every image, so its last batch need not split over devices"

    scheme: str = param("b", "fer (stage one), a, b (the paper's cascade), c, d or e; see the module docstring",
                        choices=SCHEMES)
    target: str = param("ckplus", "the target set of schemes a-e: ckplus (CK+48's subject-wise folds; ours, README "
                                  "Deviation 1) or sfew (SFEW 2.0, the paper's: train on Train, test on Val; "
                                  "licence-gated, common/data/sfew.py reads its release layout)", choices=TARGETS)
    backbone: str = param("efficientnet_lite0", "efficientnet_lite0 (ImageNet weights ported by port_weights.py) or "
                                                "vgg16 (keras.applications, given its ImageNet weights file)",
                          choices=BACKBONES)
    imagenet_weights: str = param("", "the backbone's ImageNet weights file; empty: <runs_dir>/imagenet/<the "
                                      "backbone's file> (port_weights.py writes EfficientNet-Lite0's there)")
    input_size: int = param(48, "the network's input side: 48x48 grey faces, resized if larger and repeated to "
                                "three channels (the paper: 224; README, Cost)", low=48)
    augment: bool = param(True, "random horizontal flips and 4-pixel shifts of training images")
    fer_epochs: int = param(5, "epochs on FER-2013's 28,709 training images (stage one; scheme c: on FER-2013 "
                               "and the target fold together)", low=1)
    fer_learning_rate: float = param(0.01, "SGD learning rate of stage one, cosine-decayed to 0", above=0)
    target_epochs: int = param(30, "epochs on a target training fold (schemes a, b, d)", low=1)
    target_learning_rate: float = param(0.005, "SGD learning rate on the target, cosine-decayed to 0", above=0)
    batch_size: int = param(64, "minibatch size", low=1)
    momentum: float = param(0.9, "SGD momentum", below=1)
    dropout: float = param(0.2, "dropout before the classifier", below=1)
    bn_statistics: str = param("auto", "the batch-norm statistics a network is tested with: moving (the averages "
                                       "training kept) or population (recomputed on the training images, Ioffe & "
                                       "Szegedy 2015, Alg. 2; ours); auto: population for scheme d, whose averages "
                                       "start from a random network's and lag (README, Deviations), else moving",
                               choices=BN_STATISTICS)
    folds: int = param(CK_FOLDS, "subject-wise folds of CK+48 (not with --target=sfew: SFEW 2.0 has one split, "
                                 "Train/Val)", low=2)
    max_folds: int = param(0, "run only the first N folds (0: all); for short runs")
    fer_subset: int = param(0, "use only the first N FER-2013 images of each split (0: all); for smoke runs")

    def automatic(self) -> dict:
        chosen = {}
        if self.bn_statistics == "auto":
            chosen["bn_statistics"] = "population" if self.scheme == "d" else "moving"
        if not self.imagenet_weights and self.backbone in DEFAULT_WEIGHTS:
            chosen["imagenet_weights"] = str(Path(self.runs_dir) / DEFAULT_WEIGHTS[self.backbone])
        return chosen

    def validate(self) -> None:
        super().validate()
        if self.target == "sfew" and self.folds != CK_FOLDS:
            raise ConfigError(f"--folds={self.folds} splits CK+48; SFEW 2.0 has one split (trained on Train, tested "
                              "on Val): leave --folds out with --target=sfew")

    @property
    def variant(self) -> str:
        return f"{self.backbone}-{'fer2013' if self.scheme == 'fer' else f'{self.target}-scheme-{self.scheme}'}"


PRESETS = {
    "quick": {"fer_epochs": 1, "target_epochs": 10, "max_folds": 3},
    "smoke": {"fer_epochs": 1, "target_epochs": 1, "max_folds": 2, "fer_subset": 256, "batch_size": 32},
}

"""Configuration of conditional adversarial nets on MNIST (Mirza & Osindero 2014, §4.1). Defaults: the
paper's recipe, completed where it is silent from the GAN paper's pylearn2 code that §4.1 follows
(goodfeli/adversarial, mnist.yaml; README, Deviations).

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend; measured costs are in REPORT.md):

  paper   python papers/cgan/train.py --seed=0                       # CGAN, Table 1: 132 ± 1.8
          python papers/cgan/train.py --conditional=false --seed=0   # the same networks minus y (GAN: 225 ± 2)
          python papers/cgan/train.py --conditional=false --networks=goodfellow2014 --seed=0
                                     # the GAN paper's own MNIST model, the one behind Table 1's 225 ± 2
                                     # (its rate decays by 1.000004: 0.032 at epoch 576)
          SGD on 50,000 training images in minibatches of 100 (500 updates an epoch), learning rate 0.1
          decayed by 1.00004 per update to its floor of 1e-6 (reached after about 288,000 updates, epoch
          576), momentum 0.5 rising to 0.7 by epoch 250. After every epoch, the Gaussian Parzen-window
          log-likelihood of the 10,000 validation images under 10,000 samples (sigma chosen on the first
          1,000 of them); the generator of the best epoch is kept and training stops after `patience`
          epochs without a better one. The test log-likelihood is measured with that generator.
  quick   python papers/cgan/train.py --preset=quick
          The same recipe for at most 30 epochs (15,000 updates): a short run that shows the pieces work;
          its numbers are not the paper's.
  smoke   python papers/cgan/train.py --preset=smoke
          Tiny networks on 300 images for 2 epochs: seconds. Checks the plumbing; the numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, param
from common.metrics import parzen
from common.metrics.generative import SampleScoreConfig

TRAIN_IMAGES = 50_000  # the first 50,000 MNIST training images; the last 10,000 are the validation set
NETWORKS = ("cgan", "goodfellow2014")
# The learning rate's decay per update: §4.1's, and the GAN paper's mnist.yaml's (ExponentialDecay 1.000004).
LR_DECAY = {"cgan": 1.00004, "goodfellow2014": 1.000004}


@dataclass(frozen=True)
class CGANConfig(SampleScoreConfig):
    RECIPE_NEUTRAL = SampleScoreConfig.RECIPE_NEUTRAL | {"conditional", "networks", "eval_batch_size", "nn_samples"}
    HASHED_UNLESS_DEFAULT = {**SampleScoreConfig.HASHED_UNLESS_DEFAULT, "networks": "cgan"}
    # Renamed after runs were recorded (one name for the evaluation's batch in every paper): RunConfig.RENAMED.
    RENAMED = {**SampleScoreConfig.RENAMED, "eval_block": "eval_batch_size"}

    conditional: bool = param(True, "condition G and D on the one-hot label (CGAN); false: the same networks "
                                    "without y, the unconditional GAN of the paper's Table 1 comparison")
    networks: str = param("cgan", "cgan: §4.1's networks (without y when --conditional=false); goodfellow2014: "
                                  "the model behind Table 1's GAN row (225 ± 2), from the GAN paper's mnist.yaml: "
                                  "G z ~ N(0, I) -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid without dropout, D maxout "
                                  "240 x 5 -> maxout 240 x 5 -> 1 sigmoid, the learning rate decayed by 1.000004; "
                                  "unconditional only", choices=NETWORKS)
    latent_dim: int = param(100, "dimension of z, uniform in the unit hypercube (§4.1; goodfellow2014: standard "
                                 "normal, the GAN code's Generator)", low=1)
    batch_size: int = param(100, "minibatch size (§4.1)", low=1)
    learning_rate: float = param(0.1, "initial SGD learning rate (§4.1)", above=0)
    lr_decay: float = param(0.0, "the learning rate is divided by this after every update; 0: the networks' "
                                 "(§4.1: 1.00004; goodfellow2014: mnist.yaml's 1.000004)", low=0)
    min_learning_rate: float = param(1e-6, "the decay's floor (§4.1: 'down to .000001')", above=0)
    initial_momentum: float = param(0.5, "momentum in the first epoch (§4.1)", below=1)
    final_momentum: float = param(0.7, "momentum it rises to (§4.1)", below=1)
    momentum_start_epoch: int = param(1, "the rise starts after this epoch (GAN code: MomentumAdjustor start 1)")
    momentum_saturate_epoch: int = param(250, "and reaches final_momentum at this one (GAN code: saturate 250)")
    dropout: float = param(0.5, "dropout on every hidden layer of G and D (§4.1)", below=1)
    d_input_dropout: float = param(0.2, "dropout on D's inputs x and y (GAN code: input include probability 0.8)",
                                    below=1)
    g_init_scale: float = param(0.05, "G's weights uniform in [-s, s] (GAN code: irange .05)", above=0)
    d_init_scale: float = param(0.005, "D's weights uniform in [-s, s] (GAN code: irange .005)", above=0)
    epochs: int = param(576, "most epochs: the learning rate reaches its floor in epoch 576 (288,000 updates)", low=1)
    patience: int = param(50, "stop after this many epochs without a better validation log-likelihood (the "
                              "paper stops at the best; the patience is ours)", low=1)
    parzen_samples_per_class: int = param(1000, "generated samples per label for the Parzen window (Table 1: 1,000 "
                                                "each of 10 classes; unconditional: 10 x this many)", low=1)
    sigma_validation_images: int = param(1000, "validation images on which sigma is chosen (the authors' "
                                               "parzen_ll.py: the first 1,000)", low=1)
    sigma_grid: tuple[float, ...] = param(tuple(round(s, 4) for s in parzen.SIGMA_GRID),
                                          "sigmas tried (parzen_ll.py: 10 values log-spaced in [0.1, 1])", above=0,
                                          distinct=1)
    train_subset: int = param(0, "use only the first N of the 50,000 training images (0: all); for smoke tests")
    validation_subset: int = param(0, "use only the first N of the 10,000 validation images (0: all)")
    test_subset: int = param(0, "use only the first N test images (0: all 10,000)")
    eval_batch_size: int = param(250, "test points per block of the Parzen computation (memory only)", low=1)
    nn_samples: int = param(1000, "samples whose nearest test image is measured at the end", low=1)

    def automatic(self) -> dict:
        chosen = super().automatic()  # the score network
        if self.lr_decay == 0 and self.networks in LR_DECAY:
            chosen["lr_decay"] = LR_DECAY[self.networks]
        return chosen

    def validate(self) -> None:
        super().validate()
        if self.networks == "goodfellow2014" and self.conditional:
            raise ConfigError("--networks=goodfellow2014 is the GAN paper's unconditional model: add "
                              "--conditional=false")
        if self.lr_decay < 1:  # after automatic(): 0 stands for the networks' value
            raise ConfigError(f"--lr_decay must be at least 1 (or 0: the networks'), got {self.lr_decay:g}")
        if self.momentum_saturate_epoch < self.momentum_start_epoch:
            raise ConfigError("momentum_saturate_epoch must not come before momentum_start_epoch")
        self.validate_scores()

    @property
    def variant(self) -> str:
        if self.conditional:
            return "cgan-mnist"
        return "gan-mnist" + ("-goodfellow2014" if self.networks == "goodfellow2014" else "")


PRESETS = {
    "quick": {"epochs": 30},
    "smoke": {"epochs": 2, "train_subset": 300, "validation_subset": 200, "test_subset": 200,
              "parzen_samples_per_class": 20, "sigma_validation_images": 100, "nn_samples": 50, "score_samples": 50},
}

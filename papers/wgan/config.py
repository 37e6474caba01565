"""Configuration of WGAN (Arjovsky, Chintala & Bottou 2017) and WGAN-GP (Gulrajani et al. 2017) on
CIFAR-10 and MNIST with the DCGAN-style generator and critic, or Gulrajani et al.'s ResNet ones
(`--architecture=resnet`). Defaults: each paper's Algorithm 1,
completed from the authors' released code where the paper is silent (README, Deviations). Fields whose
value differs between the variants or architectures default to 0 / "auto", meaning "this variant's
value": `WGANConfig.automatic` fills them in when the config is made, and the record lists them.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend):

  paper   python papers/wgan/train.py --loss=gp --dataset=cifar10 --seed=0
          200,000 generator steps of 5 critic steps each (batch 64), ngf = ndf = 128: days on the
          CPU, a GPU job. Not yet run. With --architecture=resnet: Gulrajani et al.'s ResNet script
          (100,000 generator steps, lr 2e-4 decayed linearly to 0, generator minibatch 128).
  quick   python papers/wgan/train.py --preset=quick --loss=gp
          ngf = ndf = 64 for 1,000 generator steps: enough for the critic's estimate and the sample
          quality to move together, far from converged samples.
  smoke   python papers/wgan/train.py --preset=smoke
          tiny networks on 128 images for 4 generator steps: seconds. The numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.data.image_sets import DATASETS
from common.lifecycle.config import ConfigError, param
from common.metrics.generative import SampleScoreConfig
from papers.wgan.model import AUTHORS_SCHEDULE, LOSSES, NORMS, SCHEDULES

# The two papers' values where they differ (Arjovsky et al. Algorithm 1; Gulrajani et al. Algorithm 1).
VARIANT_DEFAULTS = {"clip": {"learning_rate": 5e-5, "critic_norm": "batch"},
                    "gp": {"learning_rate": 1e-4, "critic_norm": "none"}}
ARCHITECTURES = ("dcgan", "resnet")
# What Gulrajani et al.'s released CIFAR-10 scripts run for each architecture (gan_cifar.py: DCGAN,
# 200,000 generator steps; gan_cifar_resnet.py: ResNet, 100,000 steps, both learning rates decayed
# linearly to 0, generator minibatches twice the critic's); the ResNet script's Adam lr is 2e-4.
ARCHITECTURE_DEFAULTS = {"dcgan": {"generator_steps": 200_000, "lr_decay": "false", "generator_batch_multiple": 1},
                         "resnet": {"generator_steps": 100_000, "lr_decay": "true", "generator_batch_multiple": 2}}
JOINT_DEFAULTS = {("gp", "resnet"): {"learning_rate": 2e-4}}
# The fields whose 0 / "auto" means "this variant's and architecture's value".
AUTOMATIC = ("learning_rate", "critic_norm", "generator_steps", "generator_batch", "lr_decay")


@dataclass(frozen=True)
class WGANConfig(SampleScoreConfig):
    RECIPE_NEUTRAL = SampleScoreConfig.RECIPE_NEUTRAL | {"loss", "dataset", "architecture", "data_workers",
                                                         "sample_every", "track_samples"}
    # Renamed after runs were recorded (Adam's betas, named as DCGAN's and the semi-supervised GAN's configs name
    # them): RunConfig.RENAMED.
    RENAMED = {**SampleScoreConfig.RENAMED, "adam_beta_1": "beta_1", "adam_beta_2": "beta_2"}

    loss: str = param("gp", "clip: weight clipping (Arjovsky et al.); gp: gradient penalty (Gulrajani et al.)",
                      choices=LOSSES)
    dataset: str = param("cifar10", "cifar10 (32x32x3) or mnist (28x28 zero-padded to 32x32x1)", choices=DATASETS)
    architecture: str = param("dcgan", "dcgan: the DCGAN-style G and critic (model.py; the DCGAN architecture "
                                       "both papers train as a baseline); "
                                       "resnet: Gulrajani et al.'s ResNet G and critic (Appendix C; Table 3's 7.86)",
                              choices=ARCHITECTURES)
    latent_dim: int = param(128, "dimension of z ~ N(0, I) (Gulrajani et al.'s code: 128)", low=1)
    ngf: int = param(128, "G's filters before the output layer (4 ngf, 2 ngf, ngf; Gulrajani et al.'s DIM = 128)",
                     low=1)
    ndf: int = param(128, "the critic's filters in its first layer (ndf, 2 ndf, 4 ndf)", low=1)
    batch_size: int = param(64, "critic and generator minibatch m (both papers: 64)", low=1)
    n_critic: int = param(5, "critic updates per generator update, each on a fresh real minibatch (both: 5)", low=1)
    critic_schedule: str = param("algorithm1", "algorithm1: n_critic critic updates before every generator update "
                                               "(both papers' Algorithm 1); authors: as the WGAN authors' code, "
                                               "100 before each of the first 25 generator updates and every 500th",
                                 choices=SCHEDULES)
    clip_value: float = param(0.01, "clip: critic weights to [-c, c] after each update (Arjovsky et al.: 0.01)",
                               above=0)
    gp_weight: float = param(10.0, "gp: penalty coefficient lambda (Gulrajani et al.: 10)")
    learning_rate: float = param(0.0, "0: the variant's (clip: RMSProp 5e-5; gp: Adam 1e-4)")
    beta_1: float = param(0.0, "gp: Adam beta_1 (Gulrajani et al., Algorithm 1: 0)", below=1)
    beta_2: float = param(0.9, "gp: Adam beta_2 (Gulrajani et al.: 0.9)", below=1)
    rmsprop_rho: float = param(0.99, "clip: RMSProp decay of the squared-gradient average (PyTorch's 0.99, "
                                     "which the WGAN authors' code used)", below=1)
    critic_norm: str = param("auto", "auto: the variant's (clip: batch, as the WGAN code; gp: none, "
                                     "Gulrajani et al. §4); or batch, layer, none", choices=("auto", *NORMS))
    init_std: float = param(0.02, "weights from N(0, 0.02) (DCGAN §4)", above=0)
    generator_steps: int = param(0, "generator updates; 0: the architecture's (Gulrajani et al.'s CIFAR-10 scripts: "
                                    "DCGAN 200,000, ResNet 100,000)")
    generator_batch: int = param(0, "G's minibatch per generator update; 0: the architecture's (DCGAN: batch_size; "
                                    "ResNet: 2 x batch_size, as their ResNet script)")
    lr_decay: str = param("auto", "decay both learning rates linearly to 0 over the run: true, false, or auto: the "
                                  "architecture's (ResNet: true, as their ResNet script; DCGAN: false)",
                            choices=("auto", "true", "false"))
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke tests")
    sample_every: int = param(1, "write the fixed-noise sample grid every N epochs (run directory)", low=1)
    track_every: int = param(1, "every N epochs: critic estimate on held-out images and sample quality", low=1)
    track_samples: int = param(500, "samples and held-out images for that tracking", low=1)
    data_workers: int = param(2, "threads that build batches ahead of the train step", low=1)

    def automatic(self) -> dict:
        """This variant's and architecture's values for the fields left at 0 / "auto"."""
        chosen = super().automatic()  # the score network
        if self.loss not in LOSSES or self.architecture not in ARCHITECTURES:
            return chosen  # validate() says what is wrong
        arch = ARCHITECTURE_DEFAULTS[self.architecture]
        table = {**VARIANT_DEFAULTS[self.loss], **arch, **JOINT_DEFAULTS.get((self.loss, self.architecture), {}),
                 "generator_batch": self.batch_size * arch["generator_batch_multiple"]}
        return {**chosen, **{name: table[name] for name in AUTOMATIC if getattr(self, name) in (0, 0.0, "auto")}}

    def validate(self) -> None:
        super().validate()
        heavy = AUTHORS_SCHEDULE["heavy_critic_updates"]
        if self.critic_schedule == "authors" and heavy % self.n_critic:
            raise ConfigError(f"--critic_schedule=authors needs n_critic to divide {heavy}, got {self.n_critic}")
        if self.critic_norm == "batch" and self.loss == "gp":
            raise ConfigError("the gradient penalty is per example; batch normalisation in the critic couples "
                              "the examples (Gulrajani et al. §4): use --critic_norm=layer or none")
        self.validate_scores()

    @property
    def variant(self) -> str:
        arch = "" if self.architecture == "dcgan" else f"{self.architecture}-"
        return f"wgan-{self.loss}-{arch}{self.dataset}"


PRESETS = {
    "quick": {"ngf": 64, "ndf": 64, "generator_steps": 1000},
    "smoke": {"ngf": 8, "ndf": 8, "batch_size": 16, "n_critic": 2, "generator_steps": 4, "train_subset": 128,
              "track_samples": 64, "score_samples": 64},
}

"""Configuration of WGAN (Arjovsky, Chintala & Bottou 2017) and WGAN-GP (Gulrajani et al. 2017) on
CIFAR-10 and MNIST with the DCGAN-style generator and critic. Defaults: each paper's Algorithm 1,
completed from the authors' released code where the paper is silent (README, Deviations). Fields whose
value differs between the two variants default to 0 / "auto", meaning "this variant's value".

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend):

  paper   python papers/wgan/train.py --loss=gp --dataset=cifar10 --seed=0
          200,000 generator steps of 5 critic steps each (batch 64), ngf = ndf = 128: days on the
          CPU, a GPU job. Not yet run.
  quick   python papers/wgan/train.py --preset=quick --loss=gp
          ngf = ndf = 64 for 1,000 generator steps: enough for the critic's estimate and the sample
          quality to move together, far from converged samples.
  smoke   python papers/wgan/train.py --preset=smoke
          tiny networks on 128 images for 4 generator steps: seconds. The numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import ConfigError, RunConfig, param
from common.gan import DATASETS, NORMS
from papers.wgan.model import LOSSES

# The two papers' values where they differ (Arjovsky et al. Algorithm 1; Gulrajani et al. Algorithm 1).
VARIANT_DEFAULTS = {"clip": {"learning_rate": 5e-5, "critic_norm": "batch"},
                    "gp": {"learning_rate": 1e-4, "critic_norm": "none"}}


@dataclass(frozen=True)
class WGANConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"loss", "dataset", "data_workers", "sample_every",
                                                 "track_samples", "feature_network", "feature_network_name",
                                                 "inception_weights"}

    loss: str = param("gp", "clip: weight clipping (Arjovsky et al.); gp: gradient penalty (Gulrajani et al.)")
    dataset: str = param("cifar10", "cifar10 (32x32x3) or mnist (28x28 zero-padded to 32x32x1)")
    latent_dim: int = param(128, "dimension of z ~ N(0, I) (Gulrajani et al.'s code: 128)")
    ngf: int = param(128, "G's filters before the output layer (4 ngf, 2 ngf, ngf; Gulrajani et al.'s DIM = 128)")
    ndf: int = param(128, "the critic's filters in its first layer (ndf, 2 ndf, 4 ndf)")
    batch_size: int = param(64, "critic and generator minibatch m (both papers: 64)")
    n_critic: int = param(5, "critic updates per generator update, each on a fresh real minibatch (both: 5)")
    clip_value: float = param(0.01, "clip: critic weights to [-c, c] after each update (Arjovsky et al.: 0.01)")
    gp_weight: float = param(10.0, "gp: penalty coefficient lambda (Gulrajani et al.: 10)")
    learning_rate: float = param(0.0, "0: the variant's (clip: RMSProp 5e-5; gp: Adam 1e-4)")
    adam_beta_1: float = param(0.0, "gp: Adam beta_1 (Gulrajani et al., Algorithm 1: 0)")
    adam_beta_2: float = param(0.9, "gp: Adam beta_2 (Gulrajani et al.: 0.9)")
    rmsprop_rho: float = param(0.99, "clip: RMSProp decay of the squared-gradient average (PyTorch's 0.99, "
                                     "which the WGAN authors' code used)")
    critic_norm: str = param("auto", "auto: the variant's (clip: batch, as the WGAN code; gp: none, "
                                     "Gulrajani et al. §4); or batch, layer, none")
    init_std: float = param(0.02, "weights from N(0, 0.02) (DCGAN §4)")
    generator_steps: int = param(200_000, "generator updates (Gulrajani et al.'s CIFAR-10 runs: 200,000)")
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke tests")
    sample_every: int = param(1, "write the fixed-noise sample grid every N epochs (run directory)")
    track_every: int = param(1, "every N epochs: critic estimate on held-out images and sample quality")
    track_samples: int = param(500, "samples and held-out images for that tracking")
    feature_network: str = param("", "a saved classifier (.keras) for a classifier score and FD of samples")
    feature_network_name: str = param("", "how its scores are named, e.g. 'CIFAR-10 classifier'")
    inception_weights: str = param("", "Inception-v3 ImageNet weights (.h5): the real Inception Score and FID")
    score_samples: int = param(5000, "samples for the final scores (the Inception Score protocol: 50,000)")
    data_workers: int = param(2, "threads that build batches ahead of the train step")

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.dataset not in DATASETS:
            raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.critic_norm not in ("auto", *NORMS):
            raise ConfigError(f"--critic_norm must be auto or one of {', '.join(NORMS)}, got {self.critic_norm!r}")
        if self.resolved("critic_norm") == "batch" and self.loss == "gp":
            raise ConfigError("the gradient penalty is per example; batch normalisation in the critic couples "
                              "the examples (Gulrajani et al. §4): use --critic_norm=layer or none")
        if min(self.latent_dim, self.ngf, self.ndf, self.batch_size, self.n_critic, self.generator_steps) < 1:
            raise ConfigError("latent_dim, ngf, ndf, batch_size, n_critic and generator_steps must be positive")
        if self.learning_rate < 0 or self.clip_value <= 0 or self.gp_weight < 0:
            raise ConfigError("learning_rate must be >= 0 (0: the variant's), clip_value > 0, gp_weight >= 0")
        if self.feature_network and not self.feature_network_name:
            raise ConfigError("--feature_network needs --feature_network_name (e.g. 'CIFAR-10 classifier'), "
                              "so that its scores are not mistaken for the Inception Score")
        if self.jit_compile not in ("auto", "true", "false"):
            raise ConfigError(f"jit_compile must be auto, true or false, got {self.jit_compile!r}")

    def resolved(self, name: str):
        """The value in effect: a field left at 0 / "auto" takes this variant's default."""
        value = getattr(self, name)
        return VARIANT_DEFAULTS[self.loss][name] if value in (0, 0.0, "auto") else value

    @property
    def variant(self) -> str:
        return f"wgan-{self.loss}-{self.dataset}"


PRESETS = {
    "quick": {"ngf": 64, "ndf": 64, "generator_steps": 1000},
    "smoke": {"ngf": 8, "ndf": 8, "batch_size": 16, "n_critic": 2, "generator_steps": 4, "train_subset": 128,
              "track_samples": 64, "score_samples": 64},
}

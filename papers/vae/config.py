"""Configuration of the VAE experiments (Kingma & Welling 2013, §5 and Appendix C). Defaults: the paper's recipe.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend):

  paper   python papers/vae/train.py --dataset=mnist --latent_dim=20 --seed=0
          10^8 training samples for MNIST (the end of Figure 2's horizontal axis; 1,667 passes over
          60k images), 10^7 for Frey Face. The MNIST N_z = 20 run's wall time, samples/s and log p(x)
          time (k = 5000 on all 10,000 test images) are in REPORT.md. The paper has no table for these
          experiments, only Figure 2's curves; Burda et al. 2015 report -86.76 nats (k = 5000) for a
          different VAE (see README.md).
  quick   python papers/vae/train.py --preset=quick --dataset=mnist --latent_dim=20
          The same model, estimator and step-size search for 2 x 10^6 samples (33 passes over MNIST,
          1,250 over Frey Face's 1,600 frames), log p(x) on the first 1,000 test images: about 7 min
          for MNIST, less for Frey Face. Shows the shape of Figure 2's curves and the ordering of N_z,
          not the paper's final bound.
  smoke   python papers/vae/train.py --preset=smoke
          A 16-unit VAE on 200 images for 20 steps: seconds. Checks the plumbing; the numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, RunConfig, param

DATASETS = ("mnist", "frey_face")
BINARIZATIONS = ("dynamic", "fixed", "threshold", "none")
PAPER_HIDDEN = {"mnist": 500, "frey_face": 200}
PAPER_SAMPLES = {"mnist": 10**8, "frey_face": 10**7}
PAPER_LATENT = {"mnist": (3, 5, 10, 20, 200), "frey_face": (2, 5, 10, 20)}


@dataclass(frozen=True)
class VAEConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"dataset", "latent_dim", "eval_batch_size", "ll_chunk",
                                                 "data_workers"}

    dataset: str = param("mnist", "mnist (Bernoulli decoder) or frey_face (Gaussian decoder) (§5)", choices=DATASETS)
    latent_dim: int = param(20, "N_z; the paper's: 3, 5, 10, 20, 200 for MNIST, 2, 5, 10, 20 for Frey Face "
                                "(Fig. 2), and 2 for the manifolds of Fig. 4", low=1)
    hidden_units: int = param(0, "units of the one tanh hidden layer in encoder and decoder; 0: the paper's "
                                 "500 for MNIST, 200 for Frey Face (§5)")
    batch_size: int = param(100, "minibatch size M (§5: M = 100)", low=1)
    learning_rate: float = param(0.0, "Adagrad step size; 0: pick from lr_candidates by the training bound "
                                      "after lr_search_samples (§5)")
    lr_candidates: tuple[float, ...] = param((0.01, 0.02, 0.1), "step sizes to choose from (§5)", above=0)
    lr_search_samples: int = param(50_000, "training samples each candidate step size is run for (§5: 'the "
                                           "first few iterations')", low=1)
    adagrad_initial_accumulator: float = param(0.0, "Adagrad's starting sum of squared gradients (Duchi et "
                                                    "al. 2011 start at 0; Keras' default is 0.1)")
    max_samples: int = param(0, "training samples to see, iterations x M; 0: the paper's, 10^8 for MNIST "
                                "and 10^7 for Frey Face (Fig. 2, horizontal axis)")
    passes_per_epoch: int = param(0, "passes over the training set between evaluations and checkpoints; "
                                     "0: 1 for MNIST, 10 for Frey Face")
    binarization: str = param("dynamic", "MNIST pixels as Bernoulli data: dynamic (a fresh sample of the grey "
                                         "values each time an image is used; test images sampled once), "
                                         "fixed (all sampled once), threshold (> 0.5), none (grey values)",
                              choices=BINARIZATIONS)
    init_std: float = param(0.01, "every weight and bias starts from N(0, 0.01), 0.01 read as the standard "
                                  "deviation (§5)", above=0)
    prior_std: float = param(1.0, "weight decay as an N(0, prior_std^2 I) prior on the parameters (§5): L2 of "
                                  "1 / (2 N prior_std^2) on the per-datapoint loss; 0: none")
    frey_train_size: int = param(1600, "Frey Face frames used for training; the other 365 are the test set "
                                       "(split of the authors' released code; the paper gives none)", low=1, high=1964)
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke tests")
    test_subset: int = param(0, "use only the first N test images (0: all); for smoke tests")
    train_eval_size: int = param(10_000, "training images on which the train bound is evaluated after each "
                                         "epoch (Fig. 2's train curve); 0: all")
    ll_samples: int = param(5000, "k, importance samples per test point for log p(x) (Burda et al. 2015)", low=1)
    ll_test_points: int = param(0, "test points for log p(x) (the first N of the test set); 0: all")
    ll_chunk: int = param(500, "importance samples per compiled call (memory and speed only)", low=1)
    eval_batch_size: int = param(1000, "batch size for evaluation (no effect on results)", low=1)
    data_workers: int = param(1, "threads that build (binarised) batches ahead of the train step", low=1)

    def automatic(self) -> dict:
        """The paper's values for the fields left at 0: hidden units and training samples per dataset
        (§5, Fig. 2); an epoch of 1 pass over MNIST, 10 over Frey Face's 1,600 frames."""
        if self.dataset not in DATASETS:
            return {}  # validate() says what is wrong
        paper = {"hidden_units": PAPER_HIDDEN[self.dataset], "max_samples": PAPER_SAMPLES[self.dataset],
                 "passes_per_epoch": 1 if self.dataset == "mnist" else 10}
        return {name: value for name, value in paper.items() if getattr(self, name) == 0}

    def validate(self) -> None:
        super().validate()
        if self.learning_rate == 0 and not self.lr_candidates:
            raise ConfigError("--learning_rate=0 picks from --lr_candidates: give at least one, or a learning rate")

    @property
    def variant(self) -> str:
        return f"{self.dataset}-z{self.latent_dim}"


PRESETS = {
    "quick": {"max_samples": 2_000_000, "ll_test_points": 1000},
    "smoke": {"hidden_units": 16, "batch_size": 20, "max_samples": 400, "lr_search_samples": 40,
              "passes_per_epoch": 1, "train_subset": 200, "test_subset": 100, "train_eval_size": 100,
              "ll_samples": 20, "ll_chunk": 10, "frey_train_size": 200, "eval_batch_size": 100},
}

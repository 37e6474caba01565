"""Configuration of DCGAN on CIFAR-10 and MNIST (Radford, Metz & Chintala 2015, §3-§4). Defaults: the
paper's recipe, completed from the authors' released code (Newmu/dcgan_code) where the paper is silent.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend):

  paper   python papers/dcgan/train.py --dataset=cifar10 --seed=0
          25 epochs of batch 128 over the 50,000 CIFAR-10 training images, ngf = ndf = 128. A GPU job:
          the step-cost benchmark at this size (REPORT.md, "Step cost") gives its images/s on the 2-core
          CPU, from which 25 epochs take about a day. Not yet run.
  quick   python papers/dcgan/train.py --preset=quick --dataset=cifar10
          ngf = ndf = 64 for 2 epochs (each run's wall time and images/s: REPORT.md). Samples show colour
          blobs and rough shapes; the preset checks the pipeline, it does not reproduce the paper.
  smoke   python papers/dcgan/train.py --preset=smoke
          ngf = ndf = 8 on 128 images: seconds. The numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.data.image_sets import DATASETS
from common.lifecycle.config import ConfigError, param
from common.metrics.generative import SampleScoreConfig


@dataclass(frozen=True)
class DCGANConfig(SampleScoreConfig):
    RECIPE_NEUTRAL = SampleScoreConfig.RECIPE_NEUTRAL | {"dataset", "data_workers", "sample_every", "nn_samples"}

    dataset: str = param("cifar10", "cifar10 (32x32x3) or mnist (28x28 zero-padded to 32x32x1)", choices=DATASETS)
    latent_dim: int = param(100, "dimension of z ~ U(-1, 1) (§4)", low=1)
    ngf: int = param(128, "G's filters before the output layer (4 ngf, 2 ngf, ngf; Fig. 1 and the authors' code)",
                     low=1)
    ndf: int = param(128, "D's filters in its first layer (ndf, 2 ndf, 4 ndf)", low=1)
    batch_size: int = param(128, "minibatch size (§4)", low=1)
    learning_rate: float = param(2e-4, "Adam learning rate for G and D (§4)", above=0)
    beta_1: float = param(0.5, "Adam's momentum term (§4: 0.5 instead of 0.9)", below=1)
    init_std: float = param(0.02, "weights from N(0, 0.02) (§4)", above=0)
    weight_decay: float = param(1e-5, "wd * w added to every gradient (the authors' code; the paper does not say)")
    epochs: int = param(25, "passes over the training images (the authors' code: niter = 25)", low=1)
    train_subset: int = param(0, "use only the first N training images (0: all); for smoke tests")
    sample_every: int = param(1, "write the fixed-noise sample grid every N epochs (run directory)", low=1)
    nn_samples: int = param(1000, "generated images whose nearest real neighbour is measured at the end", low=1)
    data_workers: int = param(2, "threads that build batches ahead of the train step", low=1)
    svm_eval: bool = param(True, "§5.1: L2-SVM on max-pooled D features, trained and tested on the dataset's "
                                 "labels, for the trained D and an untrained D of the same seed")
    svm_alphas: tuple[float, ...] = param((1e-7, 1e-6, 1e-5, 1e-4, 1e-3),
                                          "L2 penalties the SVM chooses from on held-out training images (the "
                                          "first grid, 1e-5 ... 1e-2, chose its lowest value in every run)", above=0)
    svm_epochs: int = param(20, "SGD epochs of each SVM fit", low=1)
    svm_val_size: int = param(5000, "training images held out to choose the SVM's penalty", low=1)
    svm_train_subset: int = param(0, "train the SVM on the first N labelled training images (0: all)")

    def validate(self) -> None:
        super().validate()
        if self.svm_eval and not self.svm_alphas:
            raise ConfigError("--svm_alphas needs at least one value when --svm_eval=true")
        self.validate_scores()

    @property
    def variant(self) -> str:
        return f"dcgan-{self.dataset}"


PRESETS = {
    "quick": {"ngf": 64, "ndf": 64, "epochs": 2},
    "smoke": {"ngf": 8, "ndf": 8, "batch_size": 32, "epochs": 2, "train_subset": 128, "nn_samples": 64,
              "svm_train_subset": 300, "svm_val_size": 100, "svm_epochs": 5, "svm_alphas": (1e-3, 1e-2),
              "score_samples": 64},
}

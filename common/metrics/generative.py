"""Sample-quality scores of a generator computed over a feature network given as a model file.

Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), the mean and standard deviation
over `splits` disjoint parts of the samples (10 parts of 50,000 samples in the original protocol).
Fréchet distance (Heusel et al. 2017): ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between
Gaussians fitted to the features of two sets of images.

Both definitions are only comparable with published numbers when the network is Inception-v3 with
its ImageNet weights ("Inception Score", "FID"). Those weights cannot be downloaded on an offline
machine, so `FeatureNetwork.inception_v3(weights_file)` uses them when the user points at the file,
and `FeatureNetwork.from_model_file(path, ...)` uses any saved Keras classifier instead, for example
one this repository trained on the same dataset; its scores carry the network's name (for example
"CIFAR-10 classifier score", "CIFAR-10 classifier FD") so that nobody mistakes them for the Inception
Score. A saved model file is the interface: it is loaded with stock Keras layers only (the networks
this repository saves as score networks are built from them), so loading one never imports a paper's
code, and a paper folder never imports another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import common.layers  # noqa: F401  (registers the kpb layers a saved network may hold)
from common.data.files import file_digest
from common.lifecycle.config import ConfigError, RunConfig, param

INCEPTION_V3_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"  # Keras' ImageNet weights file


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) of class probabilities (n, classes): mean and standard deviation
    over `splits` equal parts. 1 for identical predictions; n for confident, evenly used n classes."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) < splits:
        raise ValueError(f"need (n >= splits, classes) probabilities, got {probs.shape} with splits={splits}")
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None))), axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n, d): 0 for a set with itself."""
    import scipy.linalg

    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular product: regularise as in Heusel et al.'s code
        eps = 1e-6 * np.eye(len(cov_a))
        root = scipy.linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = np.real(root)  # round-off gives tiny imaginary parts
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))


def _penultimate(model: keras.Model) -> keras.Model:
    """A model giving the input of `model`'s last layer; when that layer is itself a model (a
    classifier wrapped with its preprocessing), the input of its last layer, recursively."""
    last = model.layers[-1]
    if not isinstance(last, keras.Model):
        return keras.Model(model.inputs, last.input)
    before = keras.Model(model.inputs, model.layers[-2].output)
    inner = _penultimate(last)
    x = keras.Input(model.inputs[0].shape[1:])
    return keras.Model(x, inner(before(x)))


@dataclass
class FeatureNetwork:
    """A classifier that gives class probabilities and features for images in [-1, 1] (n, h, w, c).
    `name` names the scores: "Inception" only for Inception-v3 with ImageNet weights."""

    probabilities: keras.Model
    features: keras.Model
    name: str
    source: str
    input_size: tuple[int, int] | None = None  # resize to this first (Inception-v3: 299 x 299)
    input_range: tuple[float, float] = (-1.0, 1.0)  # what the network expects
    sha256: str | None = None  # of the file it was loaded from: which network defined the scores
    card: dict | None = None  # common.metrics.score_network's card of the file: its dataset and test accuracy

    def describe(self) -> dict:
        """What a results record needs to say which network its scores came from."""
        described = {"score_network": self.name, "score_network_file": self.source,
                     "score_network_sha256": self.sha256}
        if self.card:
            described["score_network_test_accuracy"] = self.card.get("test_accuracy")
            described["score_network_card"] = {k: self.card.get(k) for k in
                                               ("dataset", "test_accuracy", "seed", "epochs", "git", "started")}
        return described

    @classmethod
    def from_model_file(cls, path: str | Path, name: str, feature_layer: str | None = None) -> FeatureNetwork:
        """A saved Keras classifier (`.keras`) whose output is class probabilities (a softmax) and whose
        input is the generator's image in [-1, 1]. Features: the output of `feature_layer`, by default
        the input of the last layer (the penultimate activations)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"feature network {path} does not exist; train one (see the paper's README) "
                                    f"or point at an existing .keras file")
        model = keras.saving.load_model(path, compile=False)
        if feature_layer:
            features = keras.Model(model.inputs, model.get_layer(feature_layer).output)
        else:
            features = _penultimate(model)
        from common.metrics.score_network import read_card

        return cls(model, features, name=name, source=str(path), sha256=file_digest(path), card=read_card(path))

    @classmethod
    def inception_v3(cls, weights_file: str | Path) -> FeatureNetwork:
        """Inception-v3 with the ImageNet weights in `weights_file` (Keras' `INCEPTION_V3_WEIGHTS`, with
        the top): the network of the published Inception Score and FID. Pool-3 features (2048-d)."""
        weights_file = Path(weights_file)
        if not weights_file.exists():
            raise FileNotFoundError(f"Inception-v3 weights {weights_file} do not exist: download "
                                    f"{INCEPTION_V3_WEIGHTS} from the Keras applications release and point at it")
        model = keras.applications.InceptionV3(weights=str(weights_file), include_top=True)
        pool = model.get_layer("avg_pool").output
        return cls(model, keras.Model(model.inputs, pool), name="Inception", source=str(weights_file),
                   input_size=(299, 299), sha256=file_digest(weights_file))

    def _prepare(self, images: np.ndarray):
        x = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
        if x.shape[-1] == 1 and self.probabilities.inputs[0].shape[-1] == 3:
            x = keras.ops.repeat(x, 3, axis=-1)
        if self.input_size is not None:
            x = keras.ops.image.resize(x, self.input_size, interpolation="bilinear")
        low, high = self.input_range
        return (x + 1.0) / 2.0 * (high - low) + low

    def run(self, images: np.ndarray, batch_size: int = 250, features: bool = True
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, features) of images in [-1, 1]; features None when not asked for (they take a
        second pass through the network)."""
        probs, feats = [], []
        for i in range(0, len(images), batch_size):
            x = self._prepare(images[i:i + batch_size])
            probs.append(keras.ops.convert_to_numpy(self.probabilities(x, training=False)))
            if features:
                feats.append(keras.ops.convert_to_numpy(self.features(x, training=False)))
        return np.concatenate(probs), np.concatenate(feats) if features else None

    def scores(self, samples: np.ndarray, real: np.ndarray, splits: int = 10) -> dict:
        """Score (IS-style) of the samples and the Fréchet distance between samples and real images,
        named after the network; the same score of the real images is given as the ceiling."""
        p_fake, f_fake = self.run(samples)
        p_real, f_real = self.run(real)
        score, score_std = inception_score(p_fake, splits)
        real_score, _ = inception_score(p_real, splits)
        return {"network": self.name, "network_source": self.source, "samples": len(samples), "real": len(real),
                "score": score, "score_std": score_std, "score_real": real_score,
                "frechet_distance": frechet_distance(f_fake, f_real)}


# The score network every new run of a dataset uses unless told otherwise: a network committed to this repository
# (common.networks), so that runs on different machines score with the same file.
PUBLISHED_SCORE_NETWORKS = {"mnist": ("cgan/mnist-score-classifier", "MNIST classifier"),
                            "cifar10": ("resnet/resnet20-fast-seed4", "CIFAR-10 ResNet-20 classifier")}


def published_or_file(name: str) -> Path:
    """A published network's file (`<paper>/<name>`, its SHA-256 checked against its card) or the path given."""
    from common import networks

    if not name.endswith(".keras") and not Path(name).exists():
        networks.load(name)  # checks the file against its card (and says what is wrong when it is not there)
        return networks.path_of(name)
    return Path(name)


@dataclass(frozen=True)
class SampleScoreConfig(RunConfig):
    """The config fields of a GAN paper's sample scores: which network scores the samples, and how many.
    A paper's config derives from this and calls `validate_scores()` from its `validate()`."""

    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"feature_network", "feature_network_name", "inception_weights"}

    feature_network: str = param("auto", "the classifier for a classifier score and FD of samples: a published "
                                          "network (<paper>/<name>: python -m common.networks list) or a saved .keras "
                                          "file; auto: the dataset's published score network (PUBLISHED_SCORE_"
                                          "NETWORKS), none where there is none; empty: no scores")
    feature_network_name: str = param("", "how its scores are named, e.g. 'CIFAR-10 classifier' (auto: the "
                                          "published network's)")
    inception_weights: str = param("", "Inception-v3 ImageNet weights (.h5): the real Inception Score and FID")
    score_samples: int = param(5000, "samples for the final scores (the Inception Score protocol: 50,000)", low=10)

    @property
    def score_dataset(self) -> str:
        """The dataset whose samples are scored (a paper without a `dataset` field is MNIST's)."""
        return getattr(self, "dataset", "mnist")

    def automatic(self) -> dict:
        """feature_network auto: the dataset's published score network and its name, or none."""
        if self.feature_network != "auto":
            return {}
        network, label = PUBLISHED_SCORE_NETWORKS.get(self.score_dataset, ("", ""))
        return {"feature_network": network, "feature_network_name": self.feature_network_name or label}

    def validate_scores(self) -> None:
        if self.feature_network and not self.feature_network_name:
            raise ConfigError("--feature_network needs --feature_network_name (e.g. 'CIFAR-10 classifier'), "
                              "so that its scores are not mistaken for the Inception Score")

    def score_network(self) -> FeatureNetwork | None:
        """The network the config names (Inception-v3 first), or None when it names none."""
        if self.inception_weights:
            return FeatureNetwork.inception_v3(self.inception_weights)
        if self.feature_network:
            return FeatureNetwork.from_model_file(published_or_file(self.feature_network),
                                                  name=self.feature_network_name)
        return None


"""Han, Yu & Tashev 2014: the segment-level DNN (§2.1) and the utterance-level extreme learning machines
(§2.3): a basic ELM (one random hidden layer, output weights by regularised least squares) and a kernel
ELM. Both ELMs are scikit-learn estimators, so that their hyper-parameters are chosen by the same
speaker-grouped grid search as the SVM baselines'.

ELM (Huang et al. 2006/2012): H = sigmoid(X W + b) with W, b uniform in [-1, 1] and fixed; output
weights beta = (I / C + H^T H)^-1 H^T T for one-hot targets T; class = argmax H(x) beta.
Kernel ELM (Huang et al. 2012): beta = (I / C + K)^-1 T with K the RBF kernel of the training
utterances; class = argmax k(x, X) beta, i.e. kernel ridge regression on one-hot targets with
alpha = 1 / C.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics.pairwise import rbf_kernel


def build_dnn(inputs: int, classes: int, hidden: tuple[int, ...] = (256, 256, 256), name: str = "segment_dnn"):
    """§2.1: `hidden` ReLU layers (three of 256), a softmax over the emotions, P(emotion | segment)."""
    x = keras.Input((inputs,), name="segment")
    h = x
    for i, units in enumerate(hidden, start=1):
        h = layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"hidden{i}")(h)
    return keras.Model(x, layers.Dense(classes, activation="softmax", name="emotion")(h), name=name)


def _one_hot(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return (np.asarray(y)[:, None] == classes[None, :]).astype(np.float64)


class ELMClassifier(ClassifierMixin, BaseEstimator):
    """A basic extreme learning machine with `hidden` sigmoid units and ridge parameter C."""

    def __init__(self, hidden: int = 120, C: float = 1.0, random_state: int = 0):
        self.hidden, self.C, self.random_state = hidden, C, random_state

    def _hidden(self, X):
        from scipy.special import expit  # the logistic sigmoid, without overflow warnings for large inputs

        return expit(np.asarray(X, np.float64) @ self.weights_ + self.biases_)

    def fit(self, X, y):
        X = np.asarray(X, np.float64)
        rng = np.random.default_rng(self.random_state)
        self.weights_ = rng.uniform(-1.0, 1.0, (X.shape[1], self.hidden))
        self.biases_ = rng.uniform(-1.0, 1.0, self.hidden)
        self.classes_ = np.unique(y)
        H = self._hidden(X)
        self.beta_ = np.linalg.solve(np.eye(self.hidden) / self.C + H.T @ H, H.T @ _one_hot(y, self.classes_))
        return self

    def decision_function(self, X):
        return self._hidden(X) @ self.beta_

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


class KernelELMClassifier(ClassifierMixin, BaseEstimator):
    """A kernel extreme learning machine with an RBF kernel of width `gamma` and ridge parameter C."""

    def __init__(self, C: float = 1.0, gamma: float = 0.1):
        self.C, self.gamma = C, gamma

    def fit(self, X, y):
        self.X_ = np.asarray(X, np.float64)
        self.classes_ = np.unique(y)
        K = rbf_kernel(self.X_, gamma=self.gamma)
        self.beta_ = np.linalg.solve(np.eye(len(K)) / self.C + K, _one_hot(y, self.classes_))
        return self

    def decision_function(self, X):
        return rbf_kernel(np.asarray(X, np.float64), self.X_, gamma=self.gamma) @ self.beta_

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


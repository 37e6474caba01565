"""The variational auto-encoder of Kingma & Welling 2013 (Auto-Encoding Variational Bayes), §3 and Appendix C.

Encoder q(z|x) and decoder p(x|z) are MLPs with one tanh hidden layer (Appendix C.2):

    h = tanh(W1 x + b1),   mu = W2 h + b2,   log sigma^2 = W3 h + b3       (Eq. 12, the encoder)
    z = mu + sigma * eps,  eps ~ N(0, I)                                    (§2.4, the reparameterisation)
    Bernoulli decoder (MNIST):  log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i),  y = sigmoid(...)   (C.1)
    Gaussian decoder (Frey Face): N(x; mu_x, sigma_x^2 I) with mu_x = sigmoid(...) in (0, 1)              (C.2)

The SGVB estimator with the analytic KL term (Eq. 10), L = 1 sample per datapoint:

    L(x) = -KL(q(z|x) || N(0, I)) + log p(x | z),   -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)

Only `keras.ops` / `keras.random`: `fit` uses the backend's own train step, and the model supplies
the loss (`compute_loss`) and its metrics (`compute_metrics`), so the same code trains on
TensorFlow and JAX.
"""

from __future__ import annotations

import math
import sys
import time

import keras
import numpy as np
from keras import ops

from common.lifecycle import distribute

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over the latent dimensions (Eq. 10)."""
    return -0.5 * ops.sum(1.0 + logvar - ops.square(mean) - ops.exp(logvar), axis=-1)


def bernoulli_log_likelihood(x, logits):
    """sum_i x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i)), written stably as x l - softplus(l) (C.1)."""
    return ops.sum(x * logits - ops.softplus(logits), axis=-1)


def gaussian_log_density(x, mean, logvar):
    """log N(x; mean, diag(exp(logvar))), summed over the last axis (C.2)."""
    return ops.sum(-0.5 * (LOG_2PI + logvar + ops.square(x - mean) * ops.exp(-logvar)), axis=-1)


def standard_normal_log_density(z):
    return ops.sum(-0.5 * (LOG_2PI + ops.square(z)), axis=-1)


class VAE(keras.Model):
    """Gaussian-MLP encoder, Bernoulli- or Gaussian-MLP decoder. `call(x)` returns per-example
    `elbo`, `reconstruction` (the one-sample estimate of E_q log p(x|z)) and `kl`.

    `l2` is the weight decay on every weight and bias: the N(0, I) prior on the parameters, divided
    by the number of training points because the loss is the per-datapoint mean (§5)."""

    def __init__(self, data_dim: int, latent_dim: int, hidden_units: int, likelihood: str = "bernoulli",
                 init_std: float = 0.01, l2: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.data_dim, self.latent_dim, self.hidden_units = data_dim, latent_dim, hidden_units
        self.likelihood, self.init_std, self.l2 = likelihood, init_std, l2

        def dense(units, activation=None, name=None):
            init = keras.initializers.RandomNormal(stddev=init_std)
            reg = keras.regularizers.L2(l2) if l2 else None
            return keras.layers.Dense(units, activation=activation, kernel_initializer=init, bias_initializer=init,
                                      kernel_regularizer=reg, bias_regularizer=reg, name=name)

        self.encoder_hidden = dense(hidden_units, "tanh", "encoder_hidden")
        self.encoder_mean = dense(latent_dim, name="encoder_mean")
        self.encoder_logvar = dense(latent_dim, name="encoder_logvar")
        self.decoder_hidden = dense(hidden_units, "tanh", "decoder_hidden")
        # Bernoulli logits, or the Gaussian mean before its sigmoid.
        self.decoder_out = dense(data_dim, name="decoder_out")
        self.decoder_logvar = dense(data_dim, name="decoder_logvar") if likelihood == "gaussian" else None
        self.noise = keras.random.SeedGenerator(seed)
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def build(self, input_shape):
        self.encoder_hidden.build((None, self.data_dim))
        self.encoder_mean.build((None, self.hidden_units))
        self.encoder_logvar.build((None, self.hidden_units))
        self.decoder_hidden.build((None, self.latent_dim))
        self.decoder_out.build((None, self.hidden_units))
        if self.decoder_logvar is not None:
            self.decoder_logvar.build((None, self.hidden_units))

    def encode(self, x):
        """Mean and log-variance of q(z|x)."""
        h = self.encoder_hidden(ops.reshape(x, (-1, self.data_dim)))
        return self.encoder_mean(h), self.encoder_logvar(h)

    def decode(self, z):
        """The decoder's parameters: Bernoulli logits, or (mean, log-variance) of the Gaussian."""
        h = self.decoder_hidden(z)
        out = self.decoder_out(h)
        if self.likelihood == "bernoulli":
            return out
        return ops.sigmoid(out), self.decoder_logvar(h)

    def mean_image(self, z):
        """E[x|z]: the Bernoulli probabilities or the Gaussian mean, in [0, 1]."""
        out = self.decode(z)
        return ops.sigmoid(out) if self.likelihood == "bernoulli" else out[0]

    def log_likelihood(self, x, decoded):
        """log p(x|z) per example, from the output of `decode`."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x, decoded)
        return gaussian_log_density(x, *decoded)

    def call(self, x, training=False):
        x = ops.reshape(ops.cast(x, "float32"), (-1, self.data_dim))
        mean, logvar = self.encode(x)
        eps = distribute.batch_draw(lambda rows: keras.random.normal((rows, self.latent_dim), seed=self.noise),
                                    ops.shape(mean)[0])
        z = mean + ops.exp(0.5 * logvar) * eps
        reconstruction = self.log_likelihood(x, self.decode(z))
        kl = gaussian_kl(mean, logvar)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Minus the mean lower bound per datapoint, plus the weight prior (as L2 regularisation)."""
        loss = -ops.mean(y_pred["elbo"])
        for extra in self.losses:
            loss = loss + ops.sum(extra)
        return distribute.replica_loss(loss)  # as Keras scales its compiled losses under a TensorFlow strategy

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.elbo_tracker.update_state(y_pred["elbo"])
        self.reconstruction_tracker.update_state(y_pred["reconstruction"])
        self.kl_tracker.update_state(y_pred["kl"])
        return self.get_metrics_result()

    def log_importance_weights(self, x, eps):
        """log p(x, z_i) - log q(z_i|x) for z_i = mu + sigma * eps_i: x (b, D), eps (b, k, latent) -> (b, k)."""
        x = ops.reshape(ops.cast(x, "float32"), (-1, self.data_dim))
        mean, logvar = self.encode(x)
        z = mean[:, None, :] + ops.exp(0.5 * logvar)[:, None, :] * eps
        # Dense layers act on the last axis, so (b, k, latent) decodes to (b, k, D) and x broadcasts over k.
        log_px_z = self.log_likelihood(x[:, None, :], self.decode(z))
        log_pz = standard_normal_log_density(z)
        log_qz_x = gaussian_log_density(z, mean[:, None, :], logvar[:, None, :])
        return log_px_z + log_pz - log_qz_x

    def get_config(self):
        return {**super().get_config(), "data_dim": self.data_dim, "latent_dim": self.latent_dim,
                "hidden_units": self.hidden_units, "likelihood": self.likelihood, "init_std": self.init_std,
                "l2": self.l2}


def inference_networks(vae: VAE) -> tuple[keras.Model, keras.Model]:
    """The trained encoder and decoder as plain Keras models (Dense layers with the trained weights; no noise,
    loss or weight prior), the files a run saves and the repository publishes:

        encoder: x (data_dim,) in [0, 1] -> [mean, log-variance] of q(z|x), each (latent_dim,)
        decoder: z (latent_dim,) -> Bernoulli logits (sigmoid gives E[x|z]), or for the Gaussian decoder
                 [mean in (0, 1), log-variance] of p(x|z), each (data_dim,)"""

    def copy(layer, activation, inputs):
        dense = keras.layers.Dense(layer.units, activation=activation, name=layer.name)
        out = dense(inputs)
        dense.set_weights(layer.get_weights())
        return out

    x = keras.Input((vae.data_dim,), name="x")
    h = copy(vae.encoder_hidden, "tanh", x)
    encoder = keras.Model(x, [copy(vae.encoder_mean, None, h), copy(vae.encoder_logvar, None, h)], name="encoder")
    z = keras.Input((vae.latent_dim,), name="z")
    h = copy(vae.decoder_hidden, "tanh", z)
    if vae.likelihood == "bernoulli":
        outputs = copy(vae.decoder_out, None, h)
    else:
        outputs = [copy(vae.decoder_out, "sigmoid", h), copy(vae.decoder_logvar, None, h)]
    return encoder, keras.Model(z, outputs, name="decoder")


def bound_of_networks(encoder: keras.Model, decoder: keras.Model, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The lower bound per datapoint (Eq. 10, one sample z = mu + sigma * eps) of the networks that
    `inference_networks` gives, with eps from NumPy's generator seeded by `seed`: the check a published
    VAE's card gives and the tests repeat on the files as published."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    mean, logvar = encoder.predict(x, batch_size=500, verbose=0)
    eps = np.random.default_rng(seed).standard_normal(mean.shape, dtype=np.float32)
    decoded = decoder.predict(mean + np.exp(0.5 * logvar) * eps, batch_size=500, verbose=0)
    log_px_z = (bernoulli_log_likelihood(x, decoded) if isinstance(decoded, np.ndarray)
                else gaussian_log_density(x, *decoded))
    return keras.ops.convert_to_numpy(log_px_z - gaussian_kl(mean, logvar))


class _ImportanceWeights(keras.Model):
    """`vae.log_importance_weights` as a model, so that `predict_on_batch` compiles it on every backend."""

    def __init__(self, vae: VAE, **kwargs):
        super().__init__(**kwargs)
        self.vae = vae

    def call(self, inputs):
        x, eps = inputs
        return self.vae.log_importance_weights(x, eps)


def marginal_log_likelihood(vae: VAE, x: np.ndarray, k: int = 5000, *, chunk: int = 500, points_per_call: int = 100,
                            seed: int = 0, progress: bool = True) -> np.ndarray:
    """Importance-sampled log p(x) per example (Burda et al. 2015, Eq. 8 with q(z|x) as the proposal):

        log p(x) ~= log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x),   z_i ~ q(z|x).

    The estimate is a stochastic lower bound on log p(x) whose expectation rises with k (k = 1 is
    the ELBO with a one-sample KL). The noise comes from NumPy seeded by `seed`, in chunks of
    `chunk` samples, so the result does not depend on the backend's random stream."""
    if k < 1 or chunk < 1:
        raise ValueError("k and chunk must be positive")
    weights_model = _ImportanceWeights(vae, name="importance_weights")
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    out = np.empty(len(x))
    start, last_print = time.perf_counter(), time.perf_counter()
    for lo in range(0, len(x), points_per_call):
        xb = x[lo:lo + points_per_call]
        parts = []
        for done in range(0, k, chunk):
            n = min(chunk, k - done)
            eps = rng.standard_normal((len(xb), n, vae.latent_dim), dtype=np.float32)
            parts.append(np.asarray(weights_model.predict_on_batch((xb, eps)), np.float64))
        log_w = np.concatenate(parts, axis=1)
        top = log_w.max(axis=1, keepdims=True)
        out[lo:lo + len(xb)] = top[:, 0] + np.log(np.exp(log_w - top).mean(axis=1))
        now = time.perf_counter()
        if progress and (now - last_print > 30 or lo + len(xb) == len(x)):
            last_print = now
            rate = (lo + len(xb)) / (now - start)
            print(f"  log p(x), k = {k}: {lo + len(xb)}/{len(x)} test points, {rate:.1f} points/s, "
                  f"mean so far {out[:lo + len(xb)].mean():.2f} nats", flush=True, file=sys.stdout)
    return out

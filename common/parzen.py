"""Gaussian Parzen-window log-likelihood of test data under samples of a generative model.

The estimate of Goodfellow et al. 2014 (GAN, Table 1), used by Mirza & Osindero 2014 (CGAN, Table 1) and
others: an isotropic Gaussian of width sigma on each of the n samples mu_j, and for a test point x

    log p(x) = log (1/n) sum_j N(x; mu_j, sigma^2 I)
             = logmeanexp_j( -||x - mu_j||^2 / (2 sigma^2) ) - d log(sigma sqrt(2 pi)),

reported as the mean over test points ± its standard error (the authors' `parzen_ll.py`: `ll.std() /
sqrt(n)`, the population standard deviation). sigma is chosen on a validation set from a grid (theirs:
10 values log-spaced from 0.1 to 1, on the first 1,000 validation images).

What it is worth: Theis, van den Oord & Bethge 2016 ("A note on the evaluation of generative models",
§3.2) show that in 784 dimensions the estimate is far from the true log-likelihood even with 10^7
samples, and that it can rank models wrongly (k-means centroids beat the true model). Report it to
compare with published tables, never as a likelihood.

Everything is computed in float64 with a log-sum-exp, in blocks of test points x samples, so that a far
point gives a very negative number, never -inf, and memory stays at `block * n_samples` doubles.
"""

from __future__ import annotations

import math

import numpy as np

# The authors' grid (parzen_ll.py: numpy.logspace(-1, 0, num=10)).
SIGMA_GRID = tuple(float(s) for s in np.logspace(-1.0, 0.0, 10))


def _blocks(x: np.ndarray, samples: np.ndarray, block: int):
    """(rows, squared distances of those rows of x to every sample), a block of x at a time."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    mu = np.asarray(samples, np.float64).reshape(len(samples), -1)
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"test points have {x.shape[1]} dimensions, samples {mu.shape[1]}")
    mu_sq = np.einsum("ij,ij->i", mu, mu)
    for lo in range(0, len(x), block):
        part = x[lo:lo + block]
        # ||x - mu||^2 = ||x||^2 - 2 x.mu + ||mu||^2, clipped at 0 against round-off.
        yield slice(lo, lo + len(part)), np.maximum(
            np.einsum("ij,ij->i", part, part)[:, None] - 2.0 * part @ mu.T + mu_sq[None, :], 0.0)


def _log_sum_exp_rows(a: np.ndarray) -> np.ndarray:
    """log sum_j exp(a_ij) for each row, shifted by the row's maximum so that nothing overflows or becomes
    -inf; `a` (a temporary) is overwritten. numpy, not scipy.special.logsumexp: the same arithmetic, but
    scipy 1.17's checks and dtype handling made it 5.5x slower here (0.44 s against 0.08 s for four
    250 x 10,000 blocks), and this sum runs 40 + 40 times in every epoch of the CGAN's validation."""
    top = a.max(axis=1, keepdims=True)
    np.subtract(a, top, out=a)
    np.exp(a, out=a)
    return np.log(a.sum(axis=1)) + top[:, 0]


def _from_sq(sq: np.ndarray, sigma: float, n: int, d: int) -> np.ndarray:
    return _log_sum_exp_rows(-sq / (2.0 * sigma**2)) - math.log(n) - d * math.log(sigma * math.sqrt(2.0 * math.pi))


def log_likelihood(x: np.ndarray, samples: np.ndarray, sigma: float, block: int = 250) -> np.ndarray:
    """log p(x_i) under the Parzen window of width `sigma` on `samples`, for each row of `x` (n, d)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    n, d = len(samples), int(np.prod(np.shape(samples)[1:]))
    out = np.empty(len(x))
    for rows, sq in _blocks(x, samples, block):
        out[rows] = _from_sq(sq, sigma, n, d)
    return out


def choose_sigma(samples: np.ndarray, validation: np.ndarray, sigmas=SIGMA_GRID, block: int = 250
                 ) -> tuple[float, dict[float, float]]:
    """The sigma of `sigmas` with the highest mean log-likelihood of `validation`, and each sigma's mean
    (the distances are computed once for all sigmas)."""
    if min(sigmas) <= 0:
        raise ValueError(f"sigmas must be positive, got {sigmas}")
    n, d = len(samples), int(np.prod(np.shape(samples)[1:]))
    totals = dict.fromkeys((float(s) for s in sigmas), 0.0)
    for _, sq in _blocks(validation, samples, block):
        for s in totals:
            totals[s] += float(_from_sq(sq, s, n, d).sum())
    scores = {s: total / len(validation) for s, total in totals.items()}
    return max(scores, key=scores.get), scores


def mean_and_standard_error(ll: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of per-point log-likelihoods, as the authors report them (std / sqrt(n))."""
    ll = np.asarray(ll, np.float64)
    return float(ll.mean()), float(ll.std() / math.sqrt(len(ll)))

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


def _distances(samples: np.ndarray, d: int):
    """A function of a block of points (rows) to its squared distances to every sample: a new array, worked
    on in place with the operations of the expression in the comment, in its order, without its four
    temporaries of `block * n_samples` doubles."""
    mu = np.asarray(samples, np.float64).reshape(len(samples), -1)
    if d != mu.shape[1]:
        raise ValueError(f"test points have {d} dimensions, samples {mu.shape[1]}")
    mu_sq = np.einsum("ij,ij->i", mu, mu)

    def of(part: np.ndarray) -> np.ndarray:
        # ||x - mu||^2 = max(||x||^2 - 2 x.mu + ||mu||^2, 0), clipped at 0 against round-off
        sq = part @ mu.T
        np.multiply(sq, 2.0, out=sq)
        np.subtract(np.einsum("ij,ij->i", part, part)[:, None], sq, out=sq)
        np.add(sq, mu_sq[None, :], out=sq)
        return np.maximum(sq, 0.0, out=sq)

    return of


def _blocks(x: np.ndarray, samples: np.ndarray, block: int):
    """(rows, squared distances of those rows of x to every sample), `block` rows of x at a time."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    distances = _distances(samples, x.shape[1])
    for lo in range(0, len(x), block):
        yield slice(lo, min(lo + block, len(x))), distances(x[lo:lo + block])


def _from_sq(sq: np.ndarray, sigma: float, n: int, d: int, out: np.ndarray | None = None,
             nearest: np.ndarray | None = None) -> np.ndarray:
    """Each row's log-likelihood from its squared distances: log sum_j exp(a_j) with a_j = -sq_j / (2 sigma^2),
    shifted by the row's largest a_j so that nothing overflows or becomes -inf. The a_j go into `out` (a
    buffer the shape of `sq`, which may be `sq` itself when it is not needed again), else a new array.
    `nearest`: each row's smallest squared distance (keepdims), when it is known (one for every sigma).

    The passes over the block are fewer than the formula's, the numbers the same bit for bit: sq / (-c) is
    -sq / c exactly (IEEE division is sign-symmetric), and the largest a_j is -min_j(sq_j) / c (dividing by
    c > 0 and negating keep the order, and rounding is monotonic). numpy, not scipy.special.logsumexp: the
    same arithmetic, but scipy 1.17's checks and dtype handling made it 5.5x slower here (0.44 s against
    0.08 s for four 250 x 10,000 blocks), and this runs 80 times in every epoch of the CGAN's validation."""
    c = 2.0 * sigma**2
    top = np.negative(sq.min(axis=1, keepdims=True) if nearest is None else nearest) / c
    a = np.divide(sq, -c, out=out)
    np.subtract(a, top, out=a)
    np.exp(a, out=a)
    return np.log(a.sum(axis=1)) + top[:, 0] - math.log(n) - d * math.log(sigma * math.sqrt(2.0 * math.pi))


def log_likelihood(x: np.ndarray, samples: np.ndarray, sigma: float, block: int = 250) -> np.ndarray:
    """log p(x_i) under the Parzen window of width `sigma` on `samples`, for each row of `x` (n, d)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    n, d = len(samples), int(np.prod(np.shape(samples)[1:]))
    out = np.empty(len(x))
    for rows, sq in _blocks(x, samples, block):
        out[rows] = _from_sq(sq, sigma, n, d, out=sq)
    return out


def choose_sigma(samples: np.ndarray, validation: np.ndarray, sigmas=SIGMA_GRID, block: int = 250
                 ) -> tuple[float, dict[float, float]]:
    """The sigma of `sigmas` with the highest mean log-likelihood of `validation`, and each sigma's mean
    (the distances are computed once for all sigmas)."""
    sigma, scores, _ = choose_sigma_and_log_likelihood(samples, validation, len(validation), sigmas, block)
    return sigma, scores


def choose_sigma_and_log_likelihood(samples: np.ndarray, points: np.ndarray, sigma_points: int, sigmas=SIGMA_GRID,
                                    block: int = 250) -> tuple[float, dict[float, float], np.ndarray]:
    """`choose_sigma` on the first `sigma_points` of `points`, then `log_likelihood` of every point at that
    sigma, with each distance computed once (a validation score that chooses its sigma on part of the same
    images: the CGAN's, every epoch): the same numbers as the two calls, bit for bit. The blocks are theirs:
    a block that holds the last sigma point and points after it is computed a second time up to that point,
    as `choose_sigma` has it. The distances of the blocks holding sigma points are kept until sigma is
    chosen (about `sigma_points * len(samples)` doubles)."""
    if min(sigmas) <= 0:
        raise ValueError(f"sigmas must be positive, got {sigmas}")
    n, d = len(samples), int(np.prod(np.shape(samples)[1:]))
    sigma_points = min(sigma_points, len(points))
    totals = dict.fromkeys((float(s) for s in sigmas), 0.0)

    def add_to_totals(sq):
        buffer, nearest = np.empty_like(sq), sq.min(axis=1, keepdims=True)
        for s in totals:
            totals[s] += float(_from_sq(sq, s, n, d, out=buffer, nearest=nearest).sum())

    kept, out, sigma = [], np.empty(len(points)), None
    x = np.asarray(points, np.float64).reshape(len(points), -1)
    distances = _distances(samples, x.shape[1])
    for lo in range(0, len(x), block):
        rows = slice(lo, min(lo + block, len(x)))
        sq = distances(x[rows])
        if rows.stop <= sigma_points:
            add_to_totals(sq)
        elif lo < sigma_points:  # the block straddles the last sigma point
            add_to_totals(distances(x[lo:sigma_points]))
        if lo < sigma_points:
            kept.append((rows, sq))
            continue
        if sigma is None:
            sigma = _best(totals, sigma_points)
        out[rows] = _from_sq(sq, sigma, n, d, out=sq)
        while kept:  # their distances can go
            kept_rows, kept_sq = kept.pop()
            out[kept_rows] = _from_sq(kept_sq, sigma, n, d, out=kept_sq)
    sigma = _best(totals, sigma_points)
    for kept_rows, kept_sq in kept:  # every block held sigma points
        out[kept_rows] = _from_sq(kept_sq, sigma, n, d, out=kept_sq)
    return sigma, {s: total / sigma_points for s, total in totals.items()}, out


def _best(totals: dict[float, float], count: int) -> float:
    """The sigma of the highest mean log-likelihood."""
    scores = {s: total / count for s, total in totals.items()}
    return max(scores, key=scores.get)


def mean_and_standard_error(ll: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of per-point log-likelihoods, as the authors report them (std / sqrt(n))."""
    ll = np.asarray(ll, np.float64)
    return float(ll.mean()), float(ll.std() / math.sqrt(len(ll)))

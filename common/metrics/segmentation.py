"""Segmentation metrics of the ISBI 2012 EM challenge (Arganda-Carreras et al. 2015, Frontiers in
Neuroanatomy 9:142): pixel error, the warping error (Jain et al. 2010; below), and the
foreground-restricted Rand and information-theoretic scores V_rand and V_info of the segments (cells)
a boundary map implies.

A boundary map (1 = cell interior, 0 = membrane) is turned into segments by labelling the connected
components of its cell pixels (4-connectivity). With p_ij the fraction of pixels in ground-truth
segment i and predicted segment j, counted only where the ground truth is a cell (the "foreground
restriction"), t_i = sum_j p_ij (ground truth T) and s_j = sum_i p_ij (prediction S):

    V_rand_split = sum p_ij^2 / sum t_i^2      V_rand_merge = sum p_ij^2 / sum s_j^2
    V_info_split = I(S;T) / H(S)               V_info_merge = I(S;T) / H(T)

(the split scores fall when the prediction cuts a true cell apart, the merge scores when it joins
cells), and V_rand, V_info are the harmonic means of split and merge;
the Rand error is 1 - V_rand. Pixels that the prediction calls membrane but the ground truth calls
cell are counted as single-pixel segments, so that predicting membrane everywhere scores badly rather
than being ignored (the convention of the challenge organisers' later SNEMI3D scripts; their Python
version divides these singletons' contribution by the pixel count, which we do not).
The challenge reports the best score over thresholds of a probability map (`best_over_thresholds`).
"""

from __future__ import annotations

import numpy as np


def pixel_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pixels whose binary label differs."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    if prediction.shape != truth.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {truth.shape}")
    return float(np.mean((prediction > 0) != (truth > 0)))


def segments(cells: np.ndarray) -> np.ndarray:
    """Connected components (4-connectivity) of the cell pixels of a 2-D binary map: labels 1..n,
    0 on membrane."""
    import scipy.ndimage

    labels, _ = scipy.ndimage.label(np.asarray(cells) > 0)
    return labels


def contingency(truth_segments: np.ndarray, pred_segments: np.ndarray) -> np.ndarray:
    """Joint pixel counts n_ij (truth segment i, predicted segment j) over ground-truth foreground
    (truth label > 0), predicted background pixels there counted as single-pixel segments. Returned
    as the nonzero counts with their row and column ids: (counts, i, j)."""
    t, p = np.ravel(truth_segments), np.ravel(pred_segments).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"shapes differ: {np.shape(truth_segments)} vs {np.shape(pred_segments)}")
    fg = t > 0
    t, p = t[fg], p[fg]
    background = p == 0
    p = p.copy()
    p[background] = p.max(initial=0) + 1 + np.arange(background.sum())  # singletons
    base = np.int64(p.max(initial=0)) + 1
    keys, counts = np.unique(t.astype(np.int64) * base + p, return_counts=True)
    return counts.astype(np.float64), keys // base, keys % base


def _marginals(counts, rows, cols):
    _, s = np.unique(rows, return_inverse=True)
    _, t = np.unique(cols, return_inverse=True)
    return np.bincount(s, weights=counts), np.bincount(t, weights=counts)


def _harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _joint(truth_segments: np.ndarray, pred_segments: np.ndarray, table=None):
    """The joint distribution of (truth, prediction) labels over the foreground pixels, as the
    nonzero cells of the contingency table (`table` if given): probabilities, row and column labels."""
    counts, rows, cols = table if table is not None else contingency(truth_segments, pred_segments)
    if counts.sum() == 0:
        raise ValueError("the ground truth has no foreground pixels")
    return counts / counts.sum(), rows, cols


def rand_scores(truth_segments: np.ndarray, pred_segments: np.ndarray, table=None) -> dict:
    p, rows, cols = _joint(truth_segments, pred_segments, table)
    truth_marginal, pred_marginal = _marginals(p, rows, cols)
    joint = np.sum(p**2)
    split, merge = joint / np.sum(truth_marginal**2), joint / np.sum(pred_marginal**2)
    v = _harmonic(split, merge)
    return {"v_rand": v, "v_rand_split": split, "v_rand_merge": merge, "rand_error": 1 - v}


def info_scores(truth_segments: np.ndarray, pred_segments: np.ndarray, table=None) -> dict:
    p, rows, cols = _joint(truth_segments, pred_segments, table)
    s, t = _marginals(p, rows, cols)
    _, si = np.unique(rows, return_inverse=True)
    _, tj = np.unique(cols, return_inverse=True)
    h_truth, h_pred = -np.sum(s * np.log(s)), -np.sum(t * np.log(t))
    mutual = np.sum(p * (np.log(p) - np.log(s[si]) - np.log(t[tj])))
    split = mutual / h_pred if h_pred > 0 else 1.0
    merge = mutual / h_truth if h_truth > 0 else 1.0
    return {"v_info": _harmonic(split, merge), "v_info_split": split, "v_info_merge": merge,
            "info_error": 1 - _harmonic(split, merge)}


def evaluate(cell_probability: np.ndarray, truth: np.ndarray, threshold: float = 0.5, warping: bool = True) -> dict:
    """All metrics of one 2-D slice: `cell_probability` in [0, 1], `truth` 1 = cell, 0 = membrane.
    `warping=False` leaves out the warping error, the slowest (a Python loop over disagreeing pixels:
    about 0.3 s for a trained network's 512x512 slice, minutes for an untrained one's)."""
    prediction = np.asarray(cell_probability) > threshold
    truth_seg, pred_seg = segments(truth), segments(prediction)
    table = contingency(truth_seg, pred_seg)
    return {"pixel_error": pixel_error(prediction, truth), **rand_scores(truth_seg, pred_seg, table),
            **info_scores(truth_seg, pred_seg, table),
            **({"warping_error": warping_error(prediction, truth, np.abs(np.asarray(cell_probability) - threshold))}
               if warping else {}),
            "threshold": threshold}


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def best_over_thresholds(cell_probability: np.ndarray, truth: np.ndarray, thresholds=THRESHOLDS,
                         warping: bool = True) -> dict:
    """The challenge's protocol: each score at its best threshold of the probability map, averaged
    over the slices of a stack (n, h, w); also the scores at 0.5."""
    probs, truths = np.asarray(cell_probability), np.asarray(truth)
    if probs.ndim == 2:
        probs, truths = probs[None], truths[None]
    per_threshold = {th: [evaluate(p, t, th, warping) for p, t in zip(probs, truths, strict=True)]
                     for th in thresholds}
    mean = {th: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for th, rows in per_threshold.items()}
    best_rand = max(thresholds, key=lambda th: mean[th]["v_rand"])
    best_info = max(thresholds, key=lambda th: mean[th]["v_info"])
    best_pixel = min(thresholds, key=lambda th: mean[th]["pixel_error"])
    best_warping = min(thresholds, key=lambda th: mean[th]["warping_error"]) if warping else None
    half = per_threshold.get(0.5) or [evaluate(p, t, 0.5, warping) for p, t in zip(probs, truths, strict=True)]
    at_half = {k: float(np.mean([r[k] for r in half])) for k in ("pixel_error", "v_rand", "v_info", "warping_error")
               if k in half[0]}
    return {"rand_error": 1 - mean[best_rand]["v_rand"], "v_rand": mean[best_rand]["v_rand"],
            "v_rand_threshold": best_rand, "v_info": mean[best_info]["v_info"], "v_info_threshold": best_info,
            "pixel_error": mean[best_pixel]["pixel_error"], "pixel_error_threshold": best_pixel,
            "warping_error": mean[best_warping]["warping_error"] if warping else None,
            "warping_error_threshold": best_warping,
            "at_0.5": at_half, "slices": len(probs)}


# --- Warping error (Jain et al. 2010, "Boundary learning by optimization with topological constraints").
# The ground truth is warped towards the prediction by flipping "simple" pixels, whose flip changes no
# object's topology (no cell split, merged, created or deleted, no hole opened or closed); what still
# disagrees afterwards is a topological error. Cells are 4-connected and membranes 8-connected, as in
# `segments`. Whether a pixel is simple depends only on its 8 neighbours, so it is a table lookup.

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _simple_table() -> np.ndarray:
    """For each of the 256 configurations of a pixel's 8 neighbours (bit i: neighbour i is a cell), is
    the pixel simple: exactly one 4-connected component of cell neighbours 4-adjacent to it, and
    exactly one 8-connected component of membrane neighbours (Bertrand & Malandain 1994, T4 = T8 = 1)."""
    import scipy.ndimage

    four = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    eight = np.ones((3, 3), int)
    table = np.zeros(256, bool)
    for code in range(256):
        window = np.zeros((3, 3), bool)
        for bit, (dy, dx) in enumerate(_NEIGHBOURS):
            window[1 + dy, 1 + dx] = bool(code >> bit & 1)
        cells = window.copy()
        membrane = ~window
        membrane[1, 1] = False
        labels, _ = scipy.ndimage.label(cells, four)
        t4 = len({labels[1 + dy, 1 + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))} - {0})
        labels, _ = scipy.ndimage.label(membrane, eight)
        t8 = len(set(labels[membrane].tolist()))
        table[code] = t4 == 1 and t8 == 1
    return table


_SIMPLE = None


def _code(a: np.ndarray, y: int, x: int) -> int:
    code = 0
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        if a[y + dy, x + dx]:
            code |= 1 << bit
    return code


def warp_to(truth: np.ndarray, prediction: np.ndarray, priority: np.ndarray | None = None) -> np.ndarray:
    """The ground truth (1 = cell) warped towards the binary prediction by simple-pixel flips, until no
    disagreeing pixel is simple. `priority` (e.g. |p - 0.5|) orders the candidates, highest first."""
    global _SIMPLE
    if _SIMPLE is None:
        _SIMPLE = _simple_table()
    # A one-pixel membrane border outside the image, fixed: flips never reach past the image.
    warped = np.pad(np.asarray(truth) > 0, 1)
    target = np.pad(np.asarray(prediction) > 0, 1)
    order_key = None if priority is None else np.pad(np.asarray(priority, np.float64), 1)
    while True:
        ys, xs = np.nonzero(warped != target)
        inside = (ys > 0) & (xs > 0) & (ys < warped.shape[0] - 1) & (xs < warped.shape[1] - 1)
        ys, xs = ys[inside], xs[inside]
        if order_key is not None:
            order = np.argsort(-order_key[ys, xs], kind="stable")
            ys, xs = ys[order], xs[order]
        flipped = 0
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            if warped[y, x] != target[y, x] and _SIMPLE[_code(warped, y, x)]:
                warped[y, x] = target[y, x]
                flipped += 1
        if not flipped:
            return warped[1:-1, 1:-1].astype(np.uint8)


def warping_error(prediction: np.ndarray, truth: np.ndarray, priority: np.ndarray | None = None) -> float:
    """Fraction of pixels where the prediction still disagrees with the topology-preservingly warped
    ground truth: 0 when the prediction differs from the truth only by moved borders."""
    warped = warp_to(truth, prediction, priority)
    return float(np.mean(warped != (np.asarray(prediction) > 0)))

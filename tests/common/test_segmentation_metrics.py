import numpy as np
import pytest

from common.metrics import segmentation as sm


def _two_cells():
    return np.array([[1, 1, 0, 1, 1]])


def test_identical_segmentations_are_perfect():
    truth = np.random.default_rng(0).uniform(size=(40, 40)) > 0.3
    out = sm.evaluate(truth.astype(float), truth)
    assert out["pixel_error"] == 0 and out["v_rand"] == pytest.approx(1) and out["v_info"] == pytest.approx(1)
    assert out["rand_error"] == pytest.approx(0)


def test_a_merge_by_hand():
    """Truth: two cells of two pixels; prediction: one cell over all five pixels. Over the truth's
    foreground p = (1/2, 1/2) in one predicted segment: no split, only a merge."""
    truth, pred = sm.segments(_two_cells()), sm.segments(np.ones((1, 5)))
    rand = sm.rand_scores(truth, pred)
    # sum p^2 = 1/2; truth marginals (1/2, 1/2): sum 1/2; prediction marginal (1): sum 1.
    assert rand["v_rand_split"] == pytest.approx(1.0) and rand["v_rand_merge"] == pytest.approx(0.5)
    assert rand["v_rand"] == pytest.approx(2 / 3)
    info = sm.info_scores(truth, pred)
    assert info["v_info_merge"] == pytest.approx(0.0) and info["v_info"] == pytest.approx(0.0)
    assert sm.pixel_error(np.ones((1, 5)), _two_cells()) == pytest.approx(0.2)


def test_a_split_by_hand():
    """Truth: one cell of four pixels; prediction: cells of two and one pixel: no merge, only splits."""
    truth, pred = sm.segments(np.ones((1, 4))), sm.segments(np.array([[1, 1, 0, 1]]))
    # The membrane pixel the prediction draws inside the cell is a singleton segment: p = (1/2, 1/4, 1/4).
    rand = sm.rand_scores(truth, pred)
    joint = 0.25 + 0.0625 + 0.0625
    assert rand["v_rand_split"] == pytest.approx(joint / 1.0)
    assert rand["v_rand_merge"] == pytest.approx(1.0)
    info = sm.info_scores(truth, pred)
    h_pred = -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25))
    assert info["v_info_split"] == pytest.approx(0.0 / h_pred) and info["v_info_merge"] == pytest.approx(1.0)


def test_membrane_everywhere_is_not_ignored():
    truth = sm.segments(_two_cells())
    rand = sm.rand_scores(truth, np.zeros((1, 5), int))
    # Four singletons: sum p^2 = 4/16, prediction marginals 4/16, truth marginals 2 * (1/2)^2: all splits.
    assert rand["v_rand_split"] == pytest.approx(0.5) and rand["v_rand_merge"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no foreground"):
        sm.rand_scores(np.zeros((2, 2), int), np.ones((2, 2), int))


def test_best_over_thresholds_picks_each_scores_best_threshold():
    truth = np.zeros((2, 20, 20), np.uint8)
    truth[:, 2:9, 2:18] = 1
    truth[:, 11:18, 2:18] = 1
    probs = np.where(truth == 1, 0.7, 0.2)
    probs[:, 9:11, 5] = 0.4  # a weak bridge between the two cells: merged at thresholds below 0.4
    out = sm.best_over_thresholds(probs, truth)
    assert out["v_rand"] == pytest.approx(1.0) and out["pixel_error"] == pytest.approx(0.0)
    assert 0.4 <= out["v_rand_threshold"] < 0.7 and out["slices"] == 2
    assert out["at_0.5"]["v_rand"] == pytest.approx(1.0)
    assert sm.evaluate(probs[0], truth[0], 0.3)["v_rand"] < 0.9


def _cells_image():
    truth = np.zeros((20, 30), np.uint8)
    truth[2:18, 2:14] = 1
    truth[2:18, 16:28] = 1
    return truth


def test_simple_pixels_by_hand():
    table = sm._simple_table()
    assert not table[0] and not table[255]  # isolated pixel / interior pixel: flipping changes topology
    assert table[0b00000010]  # one cell neighbour above: the pixel can join or leave that cell
    assert not table[0b00100010]  # cell neighbours above and below only: a bridge between two parts


def test_warping_error_ignores_moved_borders_and_counts_splits_and_merges():
    truth = _cells_image()
    assert sm.warping_error(truth, truth) == 0
    moved = np.zeros_like(truth)
    moved[3:18, 2:15] = 1
    moved[2:17, 17:28] = 1
    assert sm.pixel_error(moved, truth) > 0.05 and sm.warping_error(moved, truth) == 0
    split = truth.copy()
    split[10, 2:14] = 0  # a membrane cutting the first cell in two
    assert sm.warping_error(split, truth) > 0
    merged = truth.copy()
    merged[2:18, 14:16] = 1  # the membrane between the cells missing: one cell
    assert 0 < sm.warping_error(merged, truth) <= 2 * 16 / truth.size + 1e-9

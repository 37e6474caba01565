"""`python -m common.update_cost`: an update's time against its train step's, inside a run."""

import time

import keras
import pytest

from common import update_cost
from tests.common.test_run import _config, _SlowAfterEachStep, _train


class _SlowEpochEnd(keras.callbacks.Callback):
    """Work at every epoch's end (as an evaluation or a checkpoint would be)."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.3)


def test_the_second_epoch_s_updates_and_the_whole_epoch_are_measured_and_the_run_stopped(tmp_path):
    """The whole epoch includes its end's work. The test compared the epoch's ratio with the updates' alone,
    which the steps' own spread could reverse on a busy machine (it failed once beside two training runs):
    300 ms at the epoch's end and lower bounds made of sleeps hold however slow the machine is."""
    measure = update_cost.MeasureUpdates()
    with pytest.raises(update_cost._Measured):  # at the start of epoch 3 of 3
        _train(_config(tmp_path, epochs=3), callbacks=[_SlowAfterEachStep(), _SlowEpochEnd(), measure])
    got = measure.result()
    # epoch 2's 4 updates: 3 periods from one update's start to the next, each with a 50 ms sleep after its step
    assert got["updates"] == 3 and got["epoch_updates"] == 4
    assert got["update_ms_median"] - got["step_ms_median"] >= 50
    assert got["update_over_step"] > 2 and got["epoch_s"] >= 4 * 0.05 + 0.3
    assert got["epoch_over_step"] > got["update_over_step"]


def test_updates_measures_the_first_epoch_after_its_first_updates_without_an_epoch_figure(tmp_path):
    measure = update_cost.MeasureUpdates(updates=2, skip=1)
    with pytest.raises(update_cost._Measured):  # in epoch 1: after update 1, updates 2-4 give 2 periods
        _train(_config(tmp_path, epochs=3), callbacks=[_SlowAfterEachStep(), measure])
    got = measure.result()
    assert got["updates"] == 2 and "epoch_over_step" not in got and len(measure.epoch_stamps) == 1
    assert got["update_ms_median"] - got["step_ms_median"] >= 50


def test_a_paper_that_is_not_there_is_one_line(capsys):
    with pytest.raises(SystemExit):
        update_cost.main(["no_such_paper"])
    assert "no papers/no_such_paper/train.py" in capsys.readouterr().err

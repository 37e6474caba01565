import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from common.lifecycle import results
from common.lifecycle.config import RunConfig


@dataclass(frozen=True)
class Cfg(RunConfig):
    pass


def record(**kw):
    base = dict(paper="toy", variant="v1", preset="quick", config=Cfg(seed=3), started=results.utc_now(),
                wall_time_s=1.5, history=[{"epoch": 1, "loss": 1.0}], final={"error": 0.25}, status="completed")
    base.update(kw)
    r = results.make_record(**base)
    r["git"] = {"commit": "0123456789abcdef", "dirty": False}  # as a clean checkout writes it, wherever tests run
    return r


def test_record_has_provenance():
    r = record()
    for key in results.REQUIRED_KEYS:
        assert key in r
    assert r["seed"] == 3 and r["config"]["seed"] == 3 and "keras" in r["versions"]
    assert r["device"]["backend"] in ("tensorflow", "jax") and r["device"]["name"]


def test_write_is_atomic_and_never_overwrites(tmp_path):
    r = record()
    first, second = results.write(r, tmp_path), results.write(r, tmp_path)
    assert first != second and first.exists() and second.exists()
    assert second.name.endswith("-1.json")
    assert json.loads(first.read_text())["final"] == {"error": 0.25}
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == sorted([first.name, second.name])


def test_nan_is_written_as_null(tmp_path):
    path = results.write(record(final={"loss": float("nan")}, status="failed"), tmp_path)
    assert json.loads(path.read_text())["final"]["loss"] is None


def test_bad_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        record(status="finished")
    with pytest.raises(ValueError, match="lacks"):
        results.write({"paper": "toy"}, tmp_path)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "x.json").write_text("{}")
    (tmp_path / "toy" / "y.json").write_text("{not json")
    problems = []
    assert results.load_all(tmp_path, problems=problems) == []  # skipped, named, never fatal
    assert len(problems) == 2 and "x.json is skipped" in problems[0] and "lacks" in problems[0]
    assert "y.json is skipped" in problems[1]
    with pytest.warns(UserWarning, match="x.json is skipped"):
        results.load_all(tmp_path)


def test_load_all_skips_temporary_files(tmp_path):
    results.write(record(), tmp_path)
    (tmp_path / "toy" / ".tmp-abc.json").write_text("{")
    assert len(results.load_all(tmp_path, "toy")) == 1


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "toy"
    folder.mkdir()
    left = folder / f".tmp-{int(dead.stdout)}-k1ll.json"   # its writer was SIGKILLed before linking it
    writing = folder / f".tmp-{os.getpid()}-live.json"     # a live process is writing this one now
    left.write_text("{")
    writing.write_text("{")
    results.write(record(), tmp_path)
    assert not left.exists() and writing.exists()
    assert len(results.load_all(tmp_path, "toy")) == 1


def test_superseded_records_leave_the_averages_but_stay_on_disk(tmp_path):
    first = results.write(record(), tmp_path)
    (loaded,) = results.load_all(tmp_path, "toy")
    revised = results.write_revision(loaded, tmp_path, config=Cfg(seed=3, data_dir="x"), final={"error": 0.2},
                                     extra={"note": "n"}, started=results.utc_now(), wall_time_s=2.0,
                                     reason="a better evaluation")
    assert first.exists() and revised.name == first.stem + "-1.json"
    (kept,) = results.load_all(tmp_path, "toy")
    assert kept["_path"] == str(revised) and kept["final"] == {"error": 0.2} and kept["note"] == "n"
    assert kept["started"] == loaded["started"] and kept["wall_time_s"] == 1.5
    assert kept["revision"]["config_changes"] == {"data_dir": ["", "x"]} and kept["revision"]["of"] == first.name
    assert len(results.load_all(tmp_path, "toy", superseded=True)) == 2
    reason = results.load_superseded(tmp_path, "toy")[first.name]
    assert reason.startswith("a better evaluation") and revised.name in reason
    with pytest.raises(FileNotFoundError, match="no results record"):
        results.mark_superseded(tmp_path, "toy", "missing.json", "why")


def test_saved_networks_never_replace_earlier_ones(tmp_path):
    import keras

    from common.lifecycle import training

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    first = training.save_model(model, tmp_path, "generator")
    before = first.read_bytes()
    model.layers[0].kernel.assign(keras.ops.ones((3, 2)))
    second = training.save_model(model, tmp_path, "generator")
    assert first.name == "generator.keras" and second.name == "generator-2.keras"
    assert first.read_bytes() == before and not list(tmp_path.glob("*.tmp.keras"))
    kernel = keras.saving.load_model(second).layers[0].kernel
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), np.ones((3, 2)))

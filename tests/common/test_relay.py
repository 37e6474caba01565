"""Relaying an unfinished run to another machine (common.relay): what a pack holds, what it refuses, and
what the report says of a relayed run. The whole trip, pack to bit-for-bit resume of a paper's smoke run, is
in tests/test_kill_and_resume.py (the run killed just after a checkpoint)."""

import io
import json
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import keras
import pytest

from common import relay, report
from common.errors import STOPPED, one_line
from common.lifecycle import results
from common.lifecycle.config import make_config, parse_args, run_dir_name
from common.lifecycle.run import Run
from papers.resnet.config import PRESETS as RESNET_PRESETS
from papers.resnet.config import ResNetConfig
from tests.common.test_run import PRESETS, _config, _train
from tests.conftest import REPO, InterruptAfterFirstEpoch


def _stopped_run(tmp_path):
    """A toy run stopped after its first of two epochs: (its config, its run directory)."""
    config = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[InterruptAfterFirstEpoch()])
    (run_dir,) = (tmp_path / "runs" / "toy").iterdir()
    return config, run_dir


def test_a_pack_holds_the_newest_checkpoint_the_clock_and_the_command_and_resumes_elsewhere(tmp_path):
    config, run_dir = _stopped_run(tmp_path)
    out = relay.pack(run_dir, tmp_path / "relay")
    with tarfile.open(out) as tar:
        names = sorted(m.name.split("/", 1)[1] for m in tar.getmembers())
    assert names == ["backup/epoch-0001/epoch.json", "backup/epoch-0001/weights.weights.h5", "command.json",
                     "history.csv", "relay.json", "state.json"]
    manifest = relay.read_manifest(out)
    assert manifest["epoch"] == 1 and manifest["command"]["argv"] == [
        "papers/toy/train.py", "--preset=smoke", f"--results_dir={config.results_dir}",
        f"--runs_dir={config.runs_dir}"]
    assert manifest["command"]["backend"] == keras.backend.backend()
    on = {**manifest["command"], "backend": "tensorflow"}
    assert relay.resume_command(on, tmp_path / "elsewhere") == (
        f"python papers/toy/train.py --preset=smoke --runs_dir={tmp_path / 'elsewhere'}")
    on["backend"] = "jax"  # a run started on JAX resumes only there
    assert relay.resume_command(on, tmp_path / "elsewhere") == (
        f"KERAS_BACKEND=jax python papers/toy/train.py --preset=smoke --runs_dir={tmp_path / 'elsewhere'}")
    target, done = relay.unpack(out, tmp_path / "elsewhere")
    assert done.startswith("unpacked at epoch 1") and target.name == run_dir.name
    moved = make_config(type(config), PRESETS, "smoke", results_dir=config.results_dir,
                        runs_dir=str(tmp_path / "elsewhere"))
    assert _train(moved) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert [(s["first_epoch"], s["last_epoch"]) for s in record["sessions"]] == [(1, 1), (2, 2)]
    assert all(s["machine"].startswith("CPU: ") for s in record["sessions"])


def _folds(config, stop_at: int | None = None, ask_to_stop_in: int | None = None) -> int:
    """A toy run of three folds (`Run.units`, as the emotion-transfer and speech-emotion cross-validations),
    stopped as a kill would stop it when fold `stop_at` (from 0) begins, or asked to stop (`relay stop`)
    while fold `ask_to_stop_in` runs."""
    run = Run("toy", config, "smoke", PRESETS)
    run.describe_data(source="synthetic", checksums={"x": "sha256:00"})

    def fold(k, item):
        if k == stop_at:
            raise KeyboardInterrupt
        if k == ask_to_stop_in:
            (run.dir / relay.STOP_REQUEST).write_text("")
        return {"fold": k, "value": 2 * item}

    done = run.units([1, 2, 3], fold, state="folds.json", name="fold")
    return run.finish({"loss": float(sum(r["value"] for r in done))}, summary="done")


def test_a_run_of_folds_is_packed_with_its_finished_folds_and_resumes_from_them_elsewhere(tmp_path, capsys):
    """A cross-validation has no checkpoint in backup/, so `relay pack --all` said "no finished epoch yet, not
    packed" of an emotion-transfer or speech-emotion run with finished folds, and a new machine started it
    again (the slow kill-and-resume test of emotion transfer's scheme a failed on its session count)."""
    config = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _folds(config, stop_at=1)
    (run_dir,) = (tmp_path / "runs" / "toy").iterdir()
    assert relay.main(["pack", "--all", f"--runs_dir={tmp_path / 'runs'}", f"--to={tmp_path / 'relay'}"]) == 0
    (out,) = relay.packs(tmp_path / "relay")
    with tarfile.open(out) as tar:
        names = sorted(m.name.split("/", 1)[1] for m in tar.getmembers())
    assert names == ["command.json", "folds.json", "relay.json", "state.json"]
    assert relay.read_manifest(out)["epoch"] == 1
    capsys.readouterr()
    assert relay.main(["list", f"--runs_dir={tmp_path / 'runs'}", f"--relay_dir={tmp_path / 'relay'}"]) == 0
    assert f"{run_dir}: fold 1 of 3" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "runs")
    assert relay.unpack(out, tmp_path / "elsewhere")[1].startswith("unpacked at fold 1, packed on")
    assert relay.unpack(out, tmp_path / "elsewhere")[1].startswith("already here at fold 1 (the pack has fold 1)")
    moved = make_config(type(config), PRESETS, "smoke", results_dir=config.results_dir,
                        runs_dir=str(tmp_path / "elsewhere"))
    assert _folds(moved) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert record["final"]["loss"] == 12.0
    assert [(s["first_epoch"], s["last_epoch"]) for s in record["sessions"]] == [(1, 1), (2, 3)]


def test_an_unfinished_run_says_how_far_it_goes_and_how_long_is_left_at_its_pace(tmp_path, capsys):
    """`relay list` and `report --missing` gave an unfinished run's epoch alone: not how many it goes to, nor how
    long the rest takes. The clock now keeps the epochs `fit` was asked for, and the pace is the median epoch
    time of the last ten in history.csv, on the machine of the latest session."""
    config, run_dir = _stopped_run(tmp_path)
    assert json.loads((run_dir / "state.json").read_text())["epochs"] == 2
    times = [500.0, *[60.0 + i for i in range(11)], "NA"]  # the first is the slow start; NA: an unlogged epoch
    history = "epoch,epoch_time_s\n" + "".join(f"{e},{t}\n" for e, t in enumerate(times))
    (run_dir / "history.csv").write_text(history)
    state = json.loads((run_dir / "state.json").read_text())
    (run_dir / "state.json").write_text(json.dumps({**state, "epochs": 300}))
    machine = state["sessions"][-1]["machine"]
    (flying,) = relay.in_flight(tmp_path / "runs")
    assert flying["pace"] == {"epochs": 300, "epoch_s": 65.5, "of": 10, "machine": machine}
    said = f"epoch 1 of 300; about 5.4 h left at 66 s an epoch (the median of its last 10, on {machine})"
    assert relay.standing(1, flying["pace"]) == said
    capsys.readouterr()  # the run's own output
    assert relay.main(["list", f"--runs_dir={tmp_path / 'runs'}", f"--relay_dir={tmp_path / 'relay'}"]) == 0
    assert capsys.readouterr().out.startswith(f"{run_dir}: {said}\n")
    assert relay.read_manifest(relay.pack(run_dir, tmp_path / "relay"))["pace"] == flying["pace"]
    del state["epochs"]  # a state written before the clock kept them: the pace alone
    (run_dir / "state.json").write_text(json.dumps(state))
    (run_dir / "history.csv").write_text("epoch,epoch_time_s\n0,NA\n")  # and before a timed epoch: the epoch
    assert relay.standing(4, relay.pace(run_dir)) == "epoch 4"


def test_a_run_in_use_an_unfinished_epoch_and_an_oversized_pack_are_refused_in_one_line(tmp_path):
    config, run_dir = _stopped_run(tmp_path)
    holder = Run("toy", config, "smoke", PRESETS)  # holds the run directory's lock, as a live process would
    with pytest.raises(relay.RelayError, match="in use by a running process: stop it first"):
        relay.pack(run_dir, tmp_path / "relay")
    holder._lock.close()
    with pytest.raises(relay.RelayError, match=r"over the 1e-06 MiB limit"):
        relay.pack(run_dir, tmp_path / "relay", max_mib=1e-6)
    assert not (tmp_path / "relay").exists()  # nothing written, not even an empty folder
    fresh = _config(tmp_path / "other")
    Run("toy", fresh, "smoke", PRESETS)._lock.close()  # made, never trained: a state-less directory
    (fresh_dir,) = (tmp_path / "other" / "runs" / "toy").iterdir()
    (fresh_dir / "state.json").write_text(json.dumps({"sessions": []}))
    with pytest.raises(relay.RelayError, match="no finished epoch yet"):
        relay.pack(fresh_dir, tmp_path / "relay")


class _AskToStop(keras.callbacks.Callback):
    """Writes a stop request into `run_dir` while epoch `epoch` (from 0) trains, as `relay stop` does from
    another process."""

    def __init__(self, run_dir: Path, epoch: int):
        super().__init__()
        self.run_dir, self.epoch = run_dir, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            (self.run_dir / relay.STOP_REQUEST).write_text("")


@pytest.mark.jax
def test_a_stop_request_ends_the_run_when_its_epoch_ends_and_the_same_command_goes_on_to_the_same_numbers(
        tmp_path, capsys):
    whole = _config(tmp_path / "whole")
    assert _train(whole) == 0
    config = _config(tmp_path / "stopped")
    run_dir = Path(config.runs_dir) / "toy" / run_dir_name(config, "smoke")
    assert one_line(_train)(config, callbacks=[_AskToStop(run_dir, epoch=0)]) == STOPPED
    assert f"Stopped after epoch 1, as asked ({run_dir / relay.STOP_REQUEST})" in capsys.readouterr().out
    assert not (run_dir / relay.STOP_REQUEST).exists() and relay.progress(run_dir)[0] == 1
    assert _train(config) == 0  # the same command; in this process too: the stopped run let go of its lock
    (expected,), (record,) = results.load_all(whole.results_dir, "toy"), results.load_all(config.results_dir, "toy")
    assert [(s["first_epoch"], s["last_epoch"]) for s in record["sessions"]] == [(1, 1), (2, 2)]
    assert [r["loss"] for r in record["history"]] == [r["loss"] for r in expected["history"]]
    assert record["final"]["loss"] == expected["final"]["loss"]


def test_a_stop_request_ends_a_run_of_folds_when_its_fold_ends(tmp_path, capsys):
    config = _config(tmp_path)
    assert one_line(_folds)(config, ask_to_stop_in=0) == STOPPED
    assert "Stopped after fold 1 of 3, as asked" in capsys.readouterr().out
    assert _folds(config) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert record["final"]["loss"] == 12.0
    assert [(s["first_epoch"], s["last_epoch"]) for s in record["sessions"]] == [(1, 1), (2, 3)]


def test_stop_asks_only_a_running_run_waits_until_it_stops_and_a_request_no_session_took_is_dropped(
        tmp_path, capsys):
    config, run_dir = _stopped_run(tmp_path)
    runs = f"--runs_dir={tmp_path / 'runs'}"
    assert relay.main(["stop", str(run_dir)]) == 2
    assert capsys.readouterr().err == f"error: {run_dir}: no process is training it, so there is nothing to stop\n"
    assert relay.main(["stop", "--all", runs]) == 0
    assert "nothing to stop" in capsys.readouterr().out and not (run_dir / relay.STOP_REQUEST).exists()
    holder = Run("toy", config, "smoke", PRESETS)  # holds the run directory's lock, as a live process would
    assert relay.main(["stop", "--all", runs]) == 0
    assert f"{run_dir}: asked to stop when epoch (or fold) 2 ends" in capsys.readouterr().out
    assert relay.main(["list", runs, f"--relay_dir={tmp_path / 'relay'}"]) == 0
    assert f"{run_dir}: epoch 1 of 2 (running, asked to stop)" in capsys.readouterr().out
    threading.Timer(0.5, holder._lock.close).start()  # and stops half a second later
    assert relay.main(["stop", "--all", "--wait", runs]) == 0
    said = capsys.readouterr().out
    assert f"{run_dir}: stopped after epoch (or fold) 1" in said
    relay.pack(run_dir, tmp_path / "relay")  # the holder never trained, so nothing took the request
    with tarfile.open(relay.pack_path(run_dir, tmp_path / "relay")) as tar:
        assert relay.STOP_REQUEST not in {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert _train(config) == 0  # and it does not stop the next session
    assert "a stop request no session took was removed" in capsys.readouterr().out
    several = _config(tmp_path / "hosts")
    with pytest.raises(KeyboardInterrupt):
        _train(several, callbacks=[InterruptAfterFirstEpoch()])
    (state,) = (tmp_path / "hosts" / "runs" / "toy").glob("*/state.json")
    saved = json.loads(state.read_text())
    saved["sessions"][-1]["hosts"] = 2
    state.write_text(json.dumps(saved))
    holder = Run("toy", several, "smoke", PRESETS)
    with pytest.raises(relay.RelayError, match="several hosts"):
        relay.request_stop(state.parent)
    holder._lock.close()


def test_a_damaged_pack_is_refused_before_anything_is_written(tmp_path):
    _, run_dir = _stopped_run(tmp_path)
    out = relay.pack(run_dir, tmp_path / "relay")
    with tarfile.open(out) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(out, "w:gz") as tar:
        for member, data in members:
            if member.name.endswith("history.csv"):
                data = data.replace(b"1", b"2")
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(relay.RelayError, match="history.csv do not match the manifest's SHA-256"):
        relay.unpack(out, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    assert relay.main(["unpack", str(out), f"--runs_dir={tmp_path / 'elsewhere'}"]) == 2


def test_unpacking_keeps_a_later_copy_and_sets_an_earlier_one_aside(tmp_path):
    _, run_dir = _stopped_run(tmp_path)
    out = relay.pack(run_dir, tmp_path / "relay")
    target, done = relay.unpack(out, tmp_path / "runs")  # the machine came back: its own copy is as new
    assert target == run_dir and "already here at epoch 1" in done
    (run_dir / "backup" / "epoch-0001").rename(run_dir / "backup" / "old")
    target, done = relay.unpack(out, tmp_path / "runs")
    assert "the copy that was here (epoch 0) is kept as" in done
    assert relay.newest_checkpoint(target)[0] == 1 and len(list(run_dir.parent.glob("*.replaced-*"))) == 1


def test_finishing_drops_the_pack_and_a_pack_left_beside_a_finished_record_fails_the_check(tmp_path):
    config, run_dir = _stopped_run(tmp_path)
    results_relay = tmp_path / "results" / "relay"
    out = relay.pack(run_dir, results_relay)
    kept = out.read_bytes()
    assert _train(config) == 0
    assert not out.exists()
    assert relay.stale_packs(tmp_path / "results", results_relay) == []
    out.write_bytes(kept)  # a pack committed again after its run finished
    (stale,) = relay.stale_packs(tmp_path / "results", results_relay)
    assert "its run finished" in stale


def test_a_session_on_another_machine_is_named_in_the_report(tmp_path):
    config, run_dir = _stopped_run(tmp_path)
    state = json.loads((run_dir / "state.json").read_text())
    state["sessions"][0]["machine"] = "CPU: Some Other CPU (2 cores)"
    (run_dir / "state.json").write_text(json.dumps(state))
    assert _train(config) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert report._device(record) == f"CPU: Some Other CPU (2 cores) → {record['device']['name']}"


def test_packing_names_the_machine_of_sessions_recorded_without_one(tmp_path):
    _, run_dir = _stopped_run(tmp_path)
    state = json.loads((run_dir / "state.json").read_text())
    del state["sessions"][0]["machine"]  # written by code from before sessions named their machine
    (run_dir / "state.json").write_text(json.dumps(state))
    relay.pack(run_dir, tmp_path / "relay")
    (session,) = json.loads((run_dir / "state.json").read_text())["sessions"]
    assert session["machine"].startswith("CPU: ")


@pytest.mark.parametrize("preset, overrides", [("paper", {"seed": 2}), ("quick", {"depth": 32, "seed": 1}),
                                               ("fast", {"flip_test": False, "lr_boundaries": (), "seed": 0})])
def test_the_recorded_command_makes_the_same_configuration(preset, overrides):
    from common.lifecycle.config import command_line

    config = make_config(ResNetConfig, RESNET_PRESETS, preset, **overrides)
    argv = [*([] if preset == "paper" else [f"--preset={preset}"]), *command_line(config, RESNET_PRESETS, preset)]
    label, again = parse_args(ResNetConfig, RESNET_PRESETS, argv)
    assert again == config and label == ("fast-custom" if preset == "fast" else preset)


@pytest.mark.slow
def test_a_campaign_keeps_the_finished_records_and_says_what_it_could_not_pack(tmp_path):
    """The GPU script at smoke size on this CPU: two runs that finish bring back their records; runs stopped at
    the deadline are packed, or named when their state is too large to come back."""
    from common import campaign
    from tests.conftest import write_mnist_folder

    data = write_mnist_folder(tmp_path / "data").parent
    args = [f"--data_dir={data}", "--verify_data=false", "--download=false"]
    done = campaign.run("smoke", 5, tmp_path / "out", tmp_path / "work", args, results_dir=tmp_path / "no-records")
    assert [r["ended"] for r in done["runs"]] == ["exit status 0"] * 2 and len(done["records"]) == 2
    assert json.loads((tmp_path / "out" / "campaign.json").read_text())["records"] == done["records"]
    stopped = campaign.run("smoke", 0.4, tmp_path / "out2", tmp_path / "work2", [*args, "--epochs=500"],
                           results_dir=tmp_path / "no-records")
    assert [r["ended"] for r in stopped["runs"]] == ["stopped at the deadline"] * 2 and not stopped["records"]
    assert len(stopped["packs"]) + len(stopped["not_packed"]) == 2


def test_a_campaign_names_a_run_stopped_at_the_deadline_before_its_first_epoch_ended(tmp_path, monkeypatch):
    """campaign.json's packs and not_packed came from the runs with a state.json, so a run that the deadline
    stopped before its first epoch's end (a slow start on a busy machine) was in neither."""
    from common import campaign

    def launch(paper, args, out, work, env, log):  # a run that never gets to its first epoch's end
        log.write_text("starting\n")
        return subprocess.Popen(["sleep", "60"], start_new_session=True)

    monkeypatch.setattr(campaign, "launch", launch)
    stopped = campaign.run("smoke", 0.02, tmp_path / "out", tmp_path / "work", results_dir=tmp_path / "no-records")
    assert [r["ended"] for r in stopped["runs"]] == ["stopped at the deadline"] * 2 and not stopped["packs"]
    assert len(stopped["not_packed"]) == 2
    assert all("no epoch of it ended" in line for line in stopped["not_packed"])


def test_a_gpu_campaign_passes_over_the_draws_that_have_a_finished_record(tmp_path):
    """The ssgan-mnist plan started data seeds 1-3 whatever results/ held: with draw 1 finished on the CPUs a lent
    GPU's minutes would have gone on it again. It now takes the first three draws with no finished record."""
    from common import campaign

    def seeds(chosen):
        return [args[-2] for _, *args in chosen]

    extra = ["--data_dir=/nowhere"]  # a field outside the config hash: the same runs
    chosen, passed = campaign.choose("ssgan-mnist", extra, tmp_path)
    assert seeds(chosen) == ["--data_seed=1", "--data_seed=2", "--data_seed=3"] and not passed
    (tmp_path / "semi_supervised_gan").mkdir()
    shutil.copy(REPO / "results" / "semi_supervised_gan" / "mnist-100labels_paper_seed0_20261207T065825Z.json",
                tmp_path / "semi_supervised_gan")  # data seed 1's paper draw (97 test errors)
    chosen, passed = campaign.choose("ssgan-mnist", extra, tmp_path)
    assert seeds(chosen) == ["--data_seed=2", "--data_seed=3", "--data_seed=4"]
    assert passed == [["semi_supervised_gan", "--dataset=mnist", "--labels=100", "--data_seed=1", *extra]]


def test_missing_says_where_each_run_in_flight_stands_whichever_field_repeats_it(tmp_path):
    """`report --missing` matched only packs, and by seed: the semi-supervised GAN repeats over --data_seed, so its
    MNIST draw running on this machine was listed as not started. A run is now found by the folder its command
    trains in (two real folder names, pinned: a config's hash changing would lose them), here or packed."""
    runs, results_dir = tmp_path / "runs", tmp_path / "results"

    def folder(paper, name, epoch):
        run_dir = runs / paper / name
        (run_dir / "backup" / f"epoch-{epoch:04d}").mkdir(parents=True)
        (run_dir / "backup" / f"epoch-{epoch:04d}" / "epoch.json").write_text("{}")
        (run_dir / "state.json").write_text(json.dumps({"sessions": []}))
        return run_dir

    ssgan = folder("semi_supervised_gan", "mnist-100labels-paper-seed0-41abc4b9", 49)  # --data_seed=1, its default
    folder("semi_supervised_gan", "mnist-100labels-paper-seed0-0badc0de", 7)  # another computation's folder
    resnet = folder("resnet", "resnet20-paper-seed2-2d460cc7", 80)
    pack = relay.pack(resnet, results_dir / "relay")
    (resnet / "backup" / "epoch-0080").rename(resnet / "backup" / "epoch-0086")  # it ran on here after the pack
    (results_dir / "semi_supervised_gan").mkdir()  # a record of the row, which its command is made from
    shutil.copy(REPO / "results" / "semi_supervised_gan" / "mnist-100labels_quick_seed0_20261201T074235Z.json",
                results_dir / "semi_supervised_gan")

    def flying():
        return {line.split("  # ")[0]: line.split("; in flight: ")[1]
                for line in report.missing(results_dir, runs_dir=runs) if "; in flight: " in line}

    draw_1 = ("python papers/semi_supervised_gan/train.py --dataset=mnist --labels=100 --labelled_only=false "
              "--minibatch_discrimination=false --data_seed=1")
    assert flying() == {"python papers/resnet/train.py --depth=20 --seed=2": f"epoch 86 in {resnet}",
                        draw_1: f"epoch 49 in {ssgan}"}
    shutil.rmtree(resnet)  # a new machine: only the pack is left
    assert flying() == {"python papers/resnet/train.py --depth=20 --seed=2": f"epoch 80 packed in "
                                                                             f"{pack.relative_to(tmp_path)}",
                        draw_1: f"epoch 49 in {ssgan}"}
    (ssgan / "command.json").write_text(json.dumps({"script": "papers/semi_supervised_gan/train.py", "argv": [],
                                                    "backend": "jax"}))
    assert flying()[f"KERAS_BACKEND=jax {draw_1}"] == f"epoch 49 in {ssgan}"  # it resumes only on JAX


def test_a_row_with_no_finished_run_is_costed_at_the_pace_of_its_run_in_flight(tmp_path):
    """ResNet-32's seeds were costed only by ResNet-20's wall time while a ResNet-32 run in flight had measured
    its own: every repeat of a row with no finished run now says what a whole run takes at that pace."""
    run_dir = tmp_path / "runs" / "resnet" / "resnet32-paper-seed0-3c688f36"  # a real folder name, pinned
    (run_dir / "backup" / "epoch-0004").mkdir(parents=True)
    (run_dir / "backup" / "epoch-0004" / "epoch.json").write_text("{}")
    (run_dir / "state.json").write_text(json.dumps({"epochs": 183, "sessions": [{"machine": "CPU: Some CPU"}]}))
    (run_dir / "history.csv").write_text("epoch,epoch_time_s\n0,900\n1,200\n2,210\n3,220\n")
    (tmp_path / "results").mkdir()
    lines = dict(line.split("  # ", 1) for line in report.missing(tmp_path / "results", runs_dir=tmp_path / "runs")
                 if "  # " in line)
    pace = "at the pace of its run in flight about 10.9 h a run (183 epochs at 215 s, on CPU: Some CPU)"
    for seed in range(3):
        assert pace in lines[f"python papers/resnet/train.py --depth=32 --seed={seed}"]
    assert "in flight" not in lines["python papers/resnet/train.py --depth=56 --seed=0"]


def test_nothing_to_carry_is_said_not_refused_and_a_campaign_of_no_minutes_is_refused(tmp_path, capsys):
    """A new machine's first step, `relay unpack --all`, ended with exit status 2 and "name packs, or --all"
    when there was no pack; `campaign --minutes=-1` started its runs and ended in a traceback."""
    from common import campaign

    empty = [f"--relay_dir={tmp_path / 'relay'}", f"--runs_dir={tmp_path / 'runs'}"]
    assert relay.main(["unpack", "--all", *empty]) == 0
    assert capsys.readouterr().out == f"no packs under {tmp_path / 'relay'}: nothing to unpack\n"
    assert relay.main(["list", *empty]) == 0
    assert capsys.readouterr().out == (f"no unfinished run under {tmp_path / 'runs'}, no packs under "
                                       f"{tmp_path / 'relay'}\n")
    assert relay.main(["unpack", *empty]) == 2  # neither packs nor --all: the user's mistake
    with pytest.raises(SystemExit) as stop:
        campaign.main(["--plan=smoke", "--minutes=-1", f"--out={tmp_path / 'out'}", f"--work={tmp_path / 'work'}"])
    assert stop.value.code == 2 and "--minutes must be above 0" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()

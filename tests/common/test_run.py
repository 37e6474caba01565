"""The run object (common.lifecycle.run.Run): sessions, resume, the lock, figures, state files and the record."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

from common.lifecycle import repro, results, training
from common.lifecycle.config import RunConfig, make_config, param
from common.lifecycle.run import Run, RunBackendChanged, RunFinished, RunInUse
from tests.conftest import InterruptAfterFirstEpoch

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"width"}

    epochs: int = param(3, "epochs")
    width: int = param(0, "hidden units; 0: 4 (chosen automatically)")

    def automatic(self) -> dict:
        return {"width": 4} if self.width == 0 else {}

    @property
    def variant(self) -> str:
        return "toy"


PRESETS = {"smoke": {"epochs": 2}}


def _config(tmp_path, **kw):
    return make_config(ToyConfig, PRESETS, "smoke", results_dir=str(tmp_path / "results"),
                       runs_dir=str(tmp_path / "runs"), **kw)


def _train(config, preset="smoke", callbacks=()) -> int:
    run = Run("toy", config, preset, PRESETS, callbacks=callbacks)
    run.describe_data(source="synthetic", checksums={"x": "sha256:00"})
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(config.width), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    run.fit(model, x, epochs=config.epochs, images_per_step=16, y=y, batch_size=16)
    if run.failed:
        return run.finish()
    run.figure_path("never_written")  # a figure the paper asked a path for but did not write is not recorded
    path = run.figure_path("drawn")
    path.write_bytes(b"png")
    return run.finish({"loss": float(model.evaluate(x, y, verbose=0))}, summary="done")



def test_record_of_a_resumed_run_lists_every_session(tmp_path, monkeypatch):
    config = _config(tmp_path)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[InterruptAfterFirstEpoch()])
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # read by the record, not by this process's TensorFlow
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # as under taskset -c 0
    assert _train(config) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    first, second = record["sessions"]
    assert (first["first_epoch"], first["last_epoch"], first["steps"]) == (1, 1, 4)
    assert (second["first_epoch"], second["last_epoch"], second["steps"]) == (2, 2, 4)
    assert record["started"] == first["started"] and second["ended"] >= second["started"] >= first["ended"]
    assert {s["commit"] for s in record["sessions"]} == {repro.git_state()["commit"]}
    assert "TF_NUM_INTRAOP_THREADS" not in first["environment"]
    assert second["environment"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert record["device"]["environment"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert second["environment"]["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
    assert second["cores"] == {"usable": 1, "machine": os.cpu_count()}
    assert first["backend"] == second["backend"] == keras.backend.backend()
    assert record["wall_time_s"] == pytest.approx(first["wall_time_s"] + second["wall_time_s"], abs=0.2)
    assert record["code_changed_between_sessions"] == []
    assert record["chosen_automatically"] == ["width"] and record["config"]["width"] == 4
    assert record["data"] == {"source": "synthetic", "checksums": {"x": "sha256:00"}}
    assert list(record["figures"]) == ["drawn"] and record["figures"]["drawn"].startswith("figures/toy-smoke-seed0-")
    assert record["final"]["iterations"] == 8 and record["final"]["train_images_per_s"] > 0


def test_a_run_is_resumed_only_on_the_backend_its_earlier_sessions_trained_on(tmp_path, capsys):
    config = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[InterruptAfterFirstEpoch()])
    (state,) = Path(config.runs_dir).glob("toy/*/state.json")
    saved = json.loads(state.read_text())
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    saved["sessions"][0]["backend"] = other  # as if the first session had run under KERAS_BACKEND=other
    state.write_text(json.dumps(saved))
    with pytest.raises(RunBackendChanged, match=f"trained on the {other} backend: resume it with "
                                                f"KERAS_BACKEND={other} \\(this process has "):
        _train(config)
    assert json.loads(state.read_text()) == saved  # nothing trained, nothing rewritten
    del saved["sessions"][0]["backend"]  # a session recorded before backends were: taken as it comes
    state.write_text(json.dumps(saved))
    assert _train(config) == 0  # in the same directory: the refusal let its lock go


def test_a_finished_run_retires_its_checkpoint_and_state_files(tmp_path):
    config = _config(tmp_path)
    run = Run("toy", config, "smoke", PRESETS)
    run.state_file("choice.json").write_text("{}")
    run.finish()
    names = sorted(p.name for p in run.dir.iterdir())
    assert "backup" not in names and "choice.json" not in names
    assert any(n.startswith("choice.json.done-") for n in names)
    # A repeat of the finished configuration is a new run in the same directory, not a resume of it.
    again = Run("toy", make_config(ToyConfig, PRESETS, "smoke", results_dir=config.results_dir,
                                   runs_dir=config.runs_dir, repeat=True), "smoke", PRESETS)
    assert len(again.clock.sessions) == 1


def test_a_finished_configuration_is_refused_unless_repeated(tmp_path):
    config = _config(tmp_path)
    assert _train(config) == 0
    with pytest.raises(RunFinished, match="already finished: .*toy_smoke_seed0_.*--repeat=true"):
        _train(config)
    assert _train(_config(tmp_path, seed=1)) == 0  # another seed is another configuration
    assert _train(_config(tmp_path, repeat=True)) == 0
    records = results.load_all(config.results_dir, "toy")
    (repeat,) = [r for r in records if r["repeat_of"]]
    (original,) = [r for r in records if r["seed"] == 0 and not r["repeat_of"]]
    assert len(records) == 3 and repeat["repeat_of"] == [Path(original["_path"]).name]
    assert repeat["config_hash"] == original["config_hash"]


def test_a_second_process_is_refused_while_the_first_holds_the_run(tmp_path):
    config = _config(tmp_path)
    holder = Run("toy", config, "smoke", PRESETS)
    with pytest.raises(RunInUse, match=f"in use by process {os.getpid()}"):
        Run("toy", config, "smoke", PRESETS)
    holder._lock.close()  # what the end of the process does
    Run("toy", config, "smoke", PRESETS)  # free again


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    """The lock is the operating system's (flock): it dies with its process, so a resume is never blocked."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.common.test_run import ToyConfig, PRESETS
        from common.lifecycle.config import make_config
        from common.lifecycle.run import Run
        config = make_config(ToyConfig, PRESETS, "smoke", results_dir={str(tmp_path / 'results')!r},
                             runs_dir={str(tmp_path / 'runs')!r})
        run = Run("toy", config, "smoke", PRESETS)
        print("holding", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == -signal.SIGKILL and "holding" in done.stdout, done.stderr[-2000:]
    Run("toy", _config(tmp_path), "smoke", PRESETS)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_throughput_is_taken_over_every_session(tmp_path, monkeypatch):
    """Median images/s of all epochs but each session's first (it compiles), not the last session's."""
    clock = _Clock()
    monkeypatch.setattr(training.time, "perf_counter", clock)

    def session(seconds_per_epoch, first_epoch):
        timer = training.RunClock(tmp_path / "state.json", images_per_step=10)
        for i, seconds in enumerate(seconds_per_epoch):
            timer.on_epoch_begin(first_epoch + i)
            clock.now += seconds
            timer.on_train_batch_end(0)
            timer.on_epoch_end(first_epoch + i, {})
        return timer

    session([10.0, 1.0, 1.0, 1.0], 0)  # 1 image/s while compiling, then 10
    timer = session([10.0, 0.25], 4)  # a resumed session: compiling, then 40 images/s
    assert timer.steady_throughput() == pytest.approx(10.0)
    assert [s["first_epoch"] for s in timer.sessions] == [1, 5]


def test_changed_files_between_commits(tmp_path):
    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()

    def commit(files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_text(text)
        git("add", ".")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
        return git("rev-parse", "HEAD")

    git("init", "-q")
    first = commit({"common/a.py": "1", "other/b.py": "1"}, "one")
    second = commit({"other/b.py": "2"}, "two")
    third = commit({"common/a.py": "2", "common/README.md": "documentation no run reads"}, "three")
    fourth = commit({"common/README.md": "the documentation again"}, "four")
    assert repro.changed_files([first, second], ["common"], root=tmp_path) == []
    assert repro.changed_files([first, second, third], ["common"], root=tmp_path) == ["common/a.py"]
    assert repro.changed_files([third, fourth], ["common"], root=tmp_path) == []
    assert repro.changed_files([first, "f" * 40], ["common"], root=tmp_path) is None


def test_state_json_of_an_older_run_is_still_resumable(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"wall_time_s": 12.5, "sessions": 2}))
    timer = training.RunClock(tmp_path / "state.json", images_per_step=1)
    assert len(timer.sessions) == 3 and timer.wall_time_s >= 12.5


def test_a_damaged_checkpoint_is_passed_over_and_all_damaged_stop_in_one_line(tmp_path):
    config = _config(tmp_path, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[_StopAfter(2)])
    run_dir = next((tmp_path / "runs" / "toy").iterdir())
    newest = sorted((run_dir / "backup").glob("epoch-*"))[-1]
    (newest / "weights.weights.h5").write_bytes(b"truncated")  # killed while writing it... as it can no longer be
    (run_dir / "backup" / "epoch-0009.tmp").mkdir()  # a half-made checkpoint folder is never read
    with pytest.warns(UserWarning, match="damaged checkpoints passed over"):
        assert _train(config) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]  # epoch 2 trained again from epoch 1's checkpoint
    config = _config(tmp_path, seed=5)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[_StopAfter(1)])
    run_dir = next(p for p in (tmp_path / "runs" / "toy").iterdir() if "seed5" in p.name)
    for weights in (run_dir / "backup").glob("epoch-*/weights.weights.h5"):
        weights.write_bytes(b"")
    with pytest.raises(training.CheckpointDamaged, match=f"delete {run_dir} to start this run over"):
        _train(config)


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def test_a_half_written_history_line_is_cut_before_the_run_resumes(tmp_path):
    config = _config(tmp_path, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[_StopAfter(1)])
    history = next((tmp_path / "runs" / "toy").iterdir()) / "history.csv"
    history.write_text(history.read_text() + "1,0.5,0.2")  # a row cut off mid-line by a kill
    assert _train(config) == 0
    (record,) = results.load_all(config.results_dir, "toy")
    assert [h["epoch"] for h in record["history"]] == [1, 2]


def test_results_files_are_readable_by_the_group_and_world(tmp_path):
    config = _config(tmp_path)
    assert _train(config) == 0
    (path,) = (tmp_path / "results" / "toy").glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o644


def _keras_tf_dataset(x, y):
    """The tf.data pipeline Keras' fit, evaluate and predict would build for these arrays."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import TFEpochIterator

    return TFEpochIterator(x=x, y=y, batch_size=4, distribute_strategy=tf.distribute.get_strategy())._get_iterator()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data is TensorFlow's")
def test_a_run_builds_keras_pipelines_without_tf_data_autotune_and_the_numbers_stay(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    y = x.sum(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    try:
        training.use_tf_data_autotune(True)
        assert _keras_tf_dataset(x, y).options().autotune.enabled is not False  # TensorFlow's default
        tuned = model.evaluate(x, y, batch_size=4, verbose=0), model.predict(x, batch_size=4, verbose=0)
        Run("toy", _config(tmp_path), "smoke", PRESETS)  # a run turns it off (--tf_data_autotune=false)
        assert _keras_tf_dataset(x, y).options().autotune.enabled is False
        untuned = model.evaluate(x, y, batch_size=4, verbose=0), model.predict(x, batch_size=4, verbose=0)
        assert tuned[0] == untuned[0] and np.array_equal(tuned[1], untuned[1])
    finally:
        training.use_tf_data_autotune(False)


def test_tf_data_autotune_leaves_the_config_hash_alone(tmp_path):
    from common.lifecycle.config import config_hash

    assert config_hash(_config(tmp_path, tf_data_autotune=True)) == config_hash(_config(tmp_path))


def test_the_pause_watch_counts_the_time_a_process_was_stopped_and_not_time_it_shared_the_cpu():
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from common.lifecycle.training import PauseWatch
        watch = PauseWatch(tick_s=0.05, gap_s=0.5)
        print("ready", flush=True)
        sys.stdin.readline()  # the parent stops this process for 2 s, then resumes it and writes a line
        time.sleep(0.3)
        busy = time.monotonic() + 1.0
        while time.monotonic() < busy:  # running (and sharing the CPU) is not being stopped
            pass
        print(round(watch.stopped_s, 2), flush=True)
    """) % str(REPO)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGSTOP)
        time.sleep(2.0)
        child.send_signal(signal.SIGCONT)
        child.stdin.write("go\n")
        child.stdin.flush()
        stopped = float(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
    assert 1.7 <= stopped <= 2.6


def test_running_time_leaves_out_the_time_the_process_was_stopped(monkeypatch):
    watch = training.PauseWatch.of_process()
    monkeypatch.setattr(watch, "stopped_s", 3.0)  # stopped before the clock started: not counted
    ticks = [100.0, 130.0]
    monkeypatch.setattr(training.time, "perf_counter", lambda: ticks.pop(0) if len(ticks) > 1 else ticks[0])
    clock = training.RunningTime()  # t = 100
    watch.stopped_s = 12.0  # stopped for 9 s meanwhile
    assert clock.stopped_s == 9.0 and clock.seconds == 21.0  # t = 130: 30 s of wall time, 21 running


def test_an_epoch_s_stopped_time_is_kept_in_the_history_and_left_out_of_its_throughput(tmp_path, monkeypatch):
    watch = training.PauseWatch.of_process()
    monkeypatch.setattr(watch, "stopped_s", 3.0)  # stopped before this run's session began: not its time
    run = Run("toy", _config(tmp_path), "smoke", PRESETS)
    ticks = [0.0, 5.0, 10.0, 12.0]
    monkeypatch.setattr(training.time, "perf_counter", lambda: ticks.pop(0) if len(ticks) > 1 else ticks[0])
    run.clock.images_per_step = 100
    logs = {}
    run.clock.on_epoch_begin(0)  # t = 0
    run.clock.on_train_batch_end(0)  # t = 5
    watch.stopped_s = 7.0  # stopped for 4 s during the second batch
    run.clock.on_train_batch_end(1)  # t = 10
    run.clock.on_epoch_end(0, logs)  # t = 12
    assert logs["epoch_time_s"] == 12.0 and logs["train_images_per_s"] == pytest.approx(200 / 6)
    assert run.clock.epoch_stopped_s == {1: 4.0} and run.clock.session["stopped_s"] == 4.0
    (run.dir / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    assert [(row["epoch"], row["stopped_s"]) for row in run.history()] == [(1, 4.0), (2, None)]


def test_history_leaves_out_the_empty_validation_columns_keras_csvlogger_adds(tmp_path):
    # Keras' CSVLogger writes val_<key> columns of "NA" when the first epoch logged no val_ key.
    (tmp_path / "history.csv").write_text("epoch,loss,val_acc,val_loss\n0,1.0,NA,NA\n1,0.5,0.9,NA\n")
    assert training.read_history(tmp_path) == [{"epoch": 1, "loss": 1.0, "val_acc": None},
                                               {"epoch": 2, "loss": 0.5, "val_acc": 0.9}]


def test_a_run_starts_with_one_banner_saying_what_it_is_and_where_it_stands(tmp_path, capsys):
    config = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _train(config, callbacks=[InterruptAfterFirstEpoch()])
    assert f"== toy: toy, preset smoke (not the paper's recipe), seed 0; a fresh run; files in {tmp_path}" in \
        capsys.readouterr().out
    again = Run("toy", config, "smoke", PRESETS)
    assert "; resuming after epoch 1 (session 2); " in again.banner()
    again._lock.close()
    from common import report

    # Three records of ResNet-20's paper preset, two on one machine and one on another twice as slow.
    from common.lifecycle import results as results_lib
    from papers.resnet.config import PRESETS as RESNET_PRESETS
    from papers.resnet.config import ResNetConfig

    source = json.loads(sorted((REPO / "results" / "resnet").glob("resnet20_paper_seed*.json"))[0].read_text())
    for seed, (cpu, wall) in enumerate((("CPU: A (2 cores)", 600), ("CPU: A (2 cores)", 1200),
                                        ("CPU: B (2 cores)", 3000))):
        results_lib.write({**source, "seed": seed, "config": {**source["config"], "seed": seed},
                           "config_hash": f"h{seed}", "wall_time_s": wall, "device": {**source["device"], "name": cpu},
                           "finished": f"2026-01-0{seed + 1}T00:00:00+00:00"}, tmp_path / "results")
    paper = make_config(ResNetConfig, RESNET_PRESETS, "paper", seed=99, runs_dir=str(tmp_path / "runs"),
                        results_dir=str(tmp_path / "results"))
    assert report.preset_rows("resnet", tmp_path / "results")[("resnet20", "paper")]["n"] == "3"
    banner = Run("resnet", paper, "paper", RESNET_PRESETS).banner()
    assert banner.startswith("== resnet: resnet20, preset paper (paper's recipe), seed 99; a fresh run; ")
    # Each machine its own time: not "27 min on CPU: A (2 cores) (mean of 3)", a time neither machine takes.
    assert banner.endswith("; a run of this preset took 15 min on CPU: A (2 cores) (mean of 2), "
                           "50 min on CPU: B (2 cores) (mean of 1, REPORT.md)")


def test_the_tf_data_autotune_patch_is_applied_only_on_the_keras_it_was_checked_on(monkeypatch):
    """The patch reaches into Keras' private EpochIterator: this fails on a Keras not yet checked (add its version
    to common.lifecycle.training.KERAS_CHECKED once the patch is checked on it), and on such a Keras the run warns and
    leaves tf.data as it is instead of patching blind."""
    assert keras.__version__ in training.KERAS_CHECKED
    from keras.src.trainers import epoch_iterator

    assert hasattr(epoch_iterator.EpochIterator, "__init__")
    monkeypatch.setattr(keras, "__version__", "99.0.0")
    current = epoch_iterator.EpochIterator.__init__
    original = getattr(current, "unpatched", current)  # as Keras has it, before any run patched it
    monkeypatch.setattr(epoch_iterator.EpochIterator, "__init__", original)
    with pytest.warns(UserWarning, match="not 99.0.0"):
        training.use_tf_data_autotune(False)
    assert epoch_iterator.EpochIterator.__init__ is original


class _SlowAfterEachStep(keras.callbacks.Callback):
    """Work after every update, outside the train step (as a progress line or a metric read-out would be)."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)


def test_update_over_step_counts_the_work_between_steps_and_not_in_the_step(tmp_path):
    """The StepClock times the train function only: 50 ms of callback work after each of an epoch's 4 steps
    is outside its step time and inside the epoch's training time (3 of the 4 sleeps: the RunClock stamps the
    last batch's end before the paper's callbacks run), so the update costs more than its step."""
    assert _train(_config(tmp_path), callbacks=[_SlowAfterEachStep()]) == 0
    record = json.loads(next((tmp_path / "results" / "toy").glob("*.json")).read_text())
    for row in record["history"]:
        train_s = 4 * 16 / row["train_images_per_s"]
        assert row["update_over_step"] == pytest.approx(train_s / row["step_time_s"])
        assert train_s - row["step_time_s"] >= 3 * 0.05
    assert record["history"][-1]["step_time_s"] < 3 * 0.05  # the compiled step of a 3-4-1 network: ms
    assert record["final"]["update_over_step"] == record["history"][-1]["update_over_step"] > 2


def test_a_resumed_history_keeps_its_columns_when_the_code_logs_another_key(tmp_path):
    """A run whose history.csv was begun by code that logged fewer keys (before the StepClock) is resumed
    by code that logs more: its rows stay under the file's header, and the new keys are left out."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n")
    logger = training.HistoryCSV(path)
    logger.on_train_begin()
    logger.on_epoch_end(1, {"loss": 0.5, "step_time_s": 0.1})
    logger.on_train_end()
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.5"]
    assert training.read_history(tmp_path) == [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]


@pytest.mark.jax
def test_reseeding_gives_every_generator_and_epoch_a_state_of_its_own_past_epoch_255():
    """On JAX a seed generator's state is two uint32s: epoch 256's counter (256 x 2^24 = 2^32) did not fit, and
    a JAX run of more than 255 epochs (the semi-supervised GAN's MNIST draw: 300) stopped there with an
    OverflowError. Epochs 0-255 keep the states they had, so a run resumed across the fix goes on unchanged."""
    generators = [keras.random.SeedGenerator(0) for _ in range(3)]
    states = {}
    for epoch in [*range(0, 1300, 7), 255, 256, 257, 1200]:
        training.reseed(generators, 5, epoch)
        for i, generator in enumerate(generators):
            states[(i, epoch)] = tuple(int(v) for v in keras.ops.convert_to_numpy(generator.state))
    assert len(set(states.values())) == len(states)
    assert states[(2, 255)] == (5 + 2 * 7919, 255 * 2**24)  # as before the fix, on either backend
    on_jax = keras.backend.backend() == "jax"
    assert states[(1, 256)] == ((5 + 7919 + 104_729, 0) if on_jax else (5 + 7919, 256 * 2**24))
    assert keras.ops.convert_to_numpy(keras.random.uniform((2,), seed=generators[0])).shape == (2,)

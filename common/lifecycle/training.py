"""The Keras callbacks and helpers a run is made of (`common.lifecycle.run.Run` puts them together): keeping a
resumed run identical to an uninterrupted one, stopping at an iteration count, a NaN or a request, the clock
across sessions, progress lines, reading the CSV history, saving networks, timing alternatives."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from common.errors import StopRequested, UserError
from common.lifecycle import repro, results
from common.relay import STOP_REQUEST


class EpochSync(keras.callbacks.Callback):
    """Tells a data pipeline which epoch is starting, so that its shuffle and augmentation are a
    function of (seed, epoch) and a resumed run sees the same batches as an uninterrupted one."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class ReseedEachEpoch(keras.callbacks.Callback):
    """Sets each `keras.random.SeedGenerator` to a state that depends only on (seed, epoch) when an
    epoch begins, so that the noise a model draws in its train step (a VAE's reparameterisation, a
    GAN's latent vectors) is the same in a resumed run as in an uninterrupted one. Needed because
    checkpoints hold weights and optimizer state but not seed-generator states. A generator's state
    is (seed, counter) and each draw adds 1 to the counter, so epochs start 2^24 draws apart."""

    def __init__(self, generators, seed: int):
        super().__init__()
        self.generators, self.seed = list(generators), seed

    def on_epoch_begin(self, epoch, logs=None):
        reseed(self.generators, self.seed, epoch)


def reseed(generators, seed: int, epoch: int) -> None:
    """Set each `keras.random.SeedGenerator` to the state of (seed, epoch) (see ReseedEachEpoch); after
    training, with epoch = the number of epochs, it makes a final evaluation's noise the same whether or not
    the run was resumed (a run resumed after its last epoch would otherwise draw from a fresh generator).
    The counter is epoch * 2^24 where the state's integers hold it (TensorFlow's int64); JAX's are uint32, which
    hold it up to epoch 255 only: from epoch 256 on, what is over 2^32 goes into the seed part, as a multiple of
    a prime that no generator's seed offset (7919 i) reaches, so every (generator, epoch) still has a state of
    its own and epochs 0-255 keep theirs."""
    for i, generator in enumerate(generators):
        dtype = np.dtype(generator.state.dtype)
        overflow, counter = divmod(epoch * 2**24, int(np.iinfo(dtype).max) + 1)
        generator.state.assign(np.array([seed + 7919 * i + 104_729 * overflow, counter], dtype=dtype))


class CheckpointDamaged(UserError):
    """No checkpoint of a run directory can be loaded."""


class Checkpoint(keras.callbacks.Callback):
    """Resume from the last finished epoch, with checkpoints that are never half-written (in place of Keras'
    BackupAndRestore, whose weights and epoch are two files written in place one after the other).

    At every epoch end the weights (model and optimizer) and the epoch go into a new folder
    `epoch-NNNN.tmp`, which is then renamed `epoch-NNNN`: a folder under that name is complete. The
    newest `keep` are kept. When training begins, the newest checkpoint that loads is restored (a damaged
    one is passed over for the one before, with a warning); when none loads, the run stops with one line
    that says how to start over. A run directory written by Keras' BackupAndRestore (`latest.weights.h5`,
    `training_metadata.json`) is read too."""

    NAME = re.compile(r"^epoch-(\d+)$")

    def __init__(self, folder: Path, keep: int = 2):
        super().__init__()
        self.folder, self.keep = Path(folder), keep

    def checkpoints(self) -> list[tuple[int, Path, Path]]:
        """(epoch, weights file, metadata file) of every complete checkpoint, newest first."""
        found = []
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if (m := self.NAME.match(path.name)) is not None:
                    found.append((int(m.group(1)), path / "weights.weights.h5", path / "epoch.json"))
            legacy = self.folder / "latest.weights.h5", self.folder / "training_metadata.json"
            if all(p.exists() for p in legacy) and not found:
                found.append((-1, *legacy))
        return sorted(found, key=lambda c: -c[0])

    def on_train_begin(self, logs=None):
        problems = []
        for _, weights, metadata in self.checkpoints():
            try:
                epoch = int(json.loads(metadata.read_text())["epoch"])
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)  # its state is in the file too
                self.model.load_weights(weights)
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{weights.parent.name}: {type(e).__name__}: {e}")
                continue
            if problems:
                warnings.warn(f"damaged checkpoints passed over in {self.folder}: {'; '.join(problems)}", stacklevel=2)
            self.model._initial_epoch = epoch  # what BackupAndRestore sets: fit starts at this epoch
            return
        if problems:
            raise CheckpointDamaged(f"no checkpoint in {self.folder} can be loaded ({'; '.join(problems)}): delete "
                                    f"{self.folder.parent} to start this run over")

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        final, tmp = self.folder / f"epoch-{epoch + 1:04d}", self.folder / f"epoch-{epoch + 1:04d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save_weights(tmp / "weights.weights.h5")
        (tmp / "epoch.json").write_text(json.dumps({"epoch": epoch + 1}))
        shutil.rmtree(final, ignore_errors=True)  # an epoch trained again after a resume
        os.replace(tmp, final)
        for _, weights, _ in self.checkpoints()[self.keep:]:
            if weights.parent != self.folder:
                shutil.rmtree(weights.parent, ignore_errors=True)


def repair_history(path: Path) -> bool:
    """Cut a half-written last line (a process killed while the CSV logger wrote) off a history file, so
    that the resumed run appends to whole rows; True if anything was cut."""
    if not path.exists():
        return False
    text = path.read_text()
    if not text or text.endswith("\n"):
        return False
    tmp = path.with_suffix(".repair")
    tmp.write_text(text[:text.rfind("\n") + 1])
    os.replace(tmp, path)
    return True


class StopAtIteration(keras.callbacks.Callback):
    """Stops after `max_iterations` optimizer steps (papers that count iterations, not epochs).

    The count comes from epoch and batch indices, not from the optimizer's variable, so it costs no
    device synchronisation (on JAX the variable is only synced at epoch ends)."""

    def __init__(self, max_iterations: int, steps_per_epoch: int):
        super().__init__()
        self.max_iterations, self.steps_per_epoch = max_iterations, steps_per_epoch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.max_iterations:
            self.model.stop_training = True


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at a NaN or infinite loss (any logged key ending in "loss") and remembers that the run failed.

    Checks every `every` batches (reading the loss synchronises the device) and at each epoch end."""

    def __init__(self, every: int = 50):
        super().__init__()
        self.every = every
        self.failed_at: dict | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, batch=None):
        # Every loss in the logs: "loss", or a GAN's "d_loss" and "g_loss".
        for key, value in (logs or {}).items():
            if key.endswith("loss") and value is not None and self.failed_at is None \
                    and not math.isfinite(float(value)):
                self.failed_at = {"epoch": self._epoch, "batch": batch, "loss": float(value), "key": key}
                print(f"\n{key} became {float(value)} in epoch {self._epoch + 1}; stopping, the run is marked failed.")
                self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self._check(logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs)


def stop_if_asked(run_dir: Path, where: str) -> None:
    """Raise `StopRequested` when `run_dir` holds a stop request; `where`: what the run has just finished, for
    the message ("fold 3 of 10")."""
    if (Path(run_dir) / STOP_REQUEST).exists():
        raise stopped(run_dir, where)


def stopped(run_dir: Path, where: str) -> StopRequested:
    """The `StopRequested` of a run stopped after `where` on request; takes the request away (the resumed run
    goes on)."""
    request = Path(run_dir) / STOP_REQUEST
    request.unlink(missing_ok=True)
    return StopRequested(f"Stopped after {where}, as asked ({request}). Run the same command again to go on "
                         f"from there.")


class StopWhenAsked(keras.callbacks.Callback):
    """Stops the run at the end of the epoch in which a stop request (a file `STOP_REQUEST` in its directory,
    `python -m common.relay stop`) appears, after that epoch's history row, clock and checkpoint are written
    (run it after those callbacks): where a kill at that moment would leave it, which the same command
    resumes bit for bit. Keras ends the epoch (its progress line too) and `fit`; then `StopRequested` is
    raised, so that nothing after `fit` takes the run for finished."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir, self.stopped_after = Path(run_dir), None

    def on_epoch_end(self, epoch, logs=None):
        if (self.run_dir / STOP_REQUEST).exists():
            self.stopped_after = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_after is not None:
            raise stopped(self.run_dir, f"epoch {self.stopped_after}")


class PauseWatch:
    """Seconds this process did not run, in stretches of at least `gap_s`: stopped (SIGSTOP, as when a
    machine's background runs are paused for a benchmark) or its machine suspended. A daemon thread wakes
    every `tick_s`; a wake-up later than `gap_s` after the one before counts the time past `tick_s`. A
    process that merely shares its CPU still wakes the thread within milliseconds."""

    _process = None

    def __init__(self, tick_s: float = 0.5, gap_s: float = 10.0):
        self.tick_s, self.gap_s, self.stopped_s = tick_s, gap_s, 0.0
        threading.Thread(target=self._watch, name="pausewatch", daemon=True).start()

    @classmethod
    def of_process(cls) -> PauseWatch:
        """The process's one watch, started on first use."""
        if cls._process is None:
            cls._process = cls()
        return cls._process

    def _watch(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(self.tick_s)
            now = time.monotonic()
            if now - last > self.gap_s:
                self.stopped_s += now - last - self.tick_s
            last = now


class RunningTime:
    """Wall seconds since it was made, less the seconds the process was paused meanwhile (`PauseWatch`):
    how long a piece of work took (an epoch, a session, a cross-validation fold, an evaluation), not
    inflated when the machine's background runs are paused."""

    def __init__(self):
        self.watch = PauseWatch.of_process()
        self.start, self.stopped_at_start = time.perf_counter(), self.watch.stopped_s

    @property
    def stopped_s(self) -> float:
        return self.watch.stopped_s - self.stopped_at_start

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.start

    @property
    def seconds(self) -> float:
        return self.wall_s - self.stopped_s


class StepClock(keras.callbacks.Callback):
    """How long each update spends inside the train step: from its `on_train_batch_begin` to its
    `on_train_batch_end`, which `Run.fit` makes the first callback of every run, so that the time is the
    compiled train function (the batch's data included, as Keras fetches it inside) and what the other
    callbacks do before the step; their work after it, Python between updates and the epoch's end are
    left to the update. Each epoch's sum goes into its logs as `step_time_s`, which the `RunClock` turns into
    `update_over_step`: the epoch's training time over its time in the step (1.0 when every update costs
    what its step costs). `begins`/`ends` hold the current epoch's stamps (`perf_counter`), read by
    `python -m common.update_cost`; `StepClock.current` is the one in the `fit` now running."""

    current: StepClock | None = None

    def on_train_begin(self, logs=None):
        StepClock.current = self

    def on_epoch_begin(self, epoch, logs=None):
        self.begins, self.ends = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.begins.append(time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.ends:
            logs["step_time_s"] = sum(e - b for b, e in zip(self.begins, self.ends, strict=True))


class HistoryCSV(keras.callbacks.CSVLogger):
    """Keras' CSVLogger appending to `history.csv`, with the columns of the file's header when a resumed
    run finds one: Keras takes the columns from the first epoch it logs, so a run resumed by code that logs
    one more key (or one fewer) would write rows that no longer line up with the header. A key the header
    lacks is left out of the rows; one the epoch lacks is written as NA, as Keras does."""

    def __init__(self, path: Path):
        super().__init__(str(path), append=True)
        self.path = path

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # opens the file for appending
        with self.path.open() as f:
            header = f.readline().strip()
        if header:
            self.keys = next(csv.reader([header]))[1:]  # after "epoch"


class RunClock(keras.callbacks.Callback):
    """The run's clock across sessions, kept in `state.json` of its run directory.

    A session is one process working on the run. Each has an entry (commit and dirty flag of the code it
    ran, start, end, the epochs and steps it trained, its wall time, the thread settings it ran under:
    `repro.thread_environment` and the cores it could use, the machine: `repro.device_info`'s name, and the
    Keras backend), updated at every epoch end, so that a record of a resumed run tells which code on which
    machine trained which epochs. Time after the last checkpoint of an interrupted session is not counted,
    since that work is redone. Each epoch's images/s goes into its logs (`train_images_per_s`, `epoch_time_s`)
    and into the state, so that the run's throughput is taken over all its sessions. `images_per_step` is set
    by `Run.fit`.
    Each epoch and the session are timed by a `RunningTime`: the time the process was paused (`PauseWatch`)
    is left out of the images/s and kept per epoch in the state (`epoch_stopped_s`, merged into the history
    as `stopped_s` by `Run.history`) and per session, so that a time axis can leave it out; `epoch_time_s`
    and the wall times stay the clock's. The state also keeps the epochs `fit` was asked for (`epochs`), or for
    a run of units (`Run.units`: folds) their state file, count and name (`units`), so that `common.relay` can
    carry an unfinished run and say how far it has to go."""

    def __init__(self, path: Path, images_per_step: int | None = None):
        super().__init__()
        self.path, self.images_per_step = path, images_per_step
        state = json.loads(path.read_text()) if path.exists() else {}
        self.previous_s = float(state.get("wall_time_s", 0.0))
        sessions = state.get("sessions", [])
        if isinstance(sessions, int):  # a state written before sessions were itemised: only their count
            sessions = [{"note": "a session before sessions were itemised"}] * sessions
        self.previous_sessions: list[dict] = sessions
        self.epoch_rates: dict[int, list] = {int(e): v for e, *v in state.get("epoch_rates", [])}
        self.epoch_stopped_s: dict[int, float] = {int(e): v for e, v in state.get("epoch_stopped_s", [])}
        self.epoch_update_over_step: dict[int, list] = {int(e): v for e, *v in state.get("epoch_update_over_step", [])}
        self.units: dict | None = state.get("units")  # a run of units (`Run.units`): their file, count and name
        self.session_time = RunningTime()
        self.session = {**repro.git_state(), "started": results.utc_now(), "ended": None, "first_epoch": None,
                        "last_epoch": None, "steps": 0, "wall_time_s": 0.0, "stopped_s": 0.0,
                        "environment": repro.thread_environment(), "machine": repro.device_info()["name"],
                        "cores": {"usable": repro.usable_cores(), "machine": os.cpu_count()},
                        "backend": keras.backend.backend()}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_time, self.train_s, self.batches = RunningTime(), 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.train_s, self.batches = self.epoch_time.seconds, self.batches + 1  # training time up to this batch

    def on_epoch_end(self, epoch, logs=None):
        train_s = max(self.train_s, 1e-9)
        self.epoch_stopped_s[epoch + 1] = round(self.epoch_time.stopped_s, 1)
        logs["epoch_time_s"] = self.epoch_time.wall_s
        logs["train_images_per_s"] = self.batches * self.images_per_step / train_s
        first_in_session = self.session["first_epoch"] is None
        self.epoch_rates[epoch + 1] = [logs["train_images_per_s"], first_in_session]
        if logs.get("step_time_s"):  # from the StepClock
            logs["update_over_step"] = train_s / logs["step_time_s"]
            self.epoch_update_over_step[epoch + 1] = [logs["update_over_step"], first_in_session]
        if first_in_session:
            self.session["first_epoch"] = epoch + 1
        self.session.update(last_epoch=epoch + 1, steps=self.session["steps"] + self.batches)
        self._save()

    def mark(self, unit: int, steps: int = 0) -> None:
        """Unit `unit` (counted from 0) of work done outside `fit` (a fold of a cross-validation): the
        session's record and the state advance as at an epoch's end, without a throughput."""
        if self.session["first_epoch"] is None:
            self.session["first_epoch"] = unit + 1
        self.session.update(last_epoch=unit + 1, steps=self.session["steps"] + steps)
        self._save()

    def _save(self) -> None:
        self.session.update(ended=results.utc_now(), wall_time_s=round(self.session_time.wall_s, 1),
                            stopped_s=round(self.session_time.stopped_s, 1))
        state = {"wall_time_s": self.wall_time_s, "sessions": self.sessions,
                 **({"epochs": self.params["epochs"]} if self.params else {}),  # how far `fit` goes: common.relay
                 **({"units": self.units} if self.units else {}),  # or how many units (folds) there are
                 "epoch_rates": [[e, *v] for e, v in sorted(self.epoch_rates.items())],
                 "epoch_stopped_s": sorted(self.epoch_stopped_s.items()),
                 "epoch_update_over_step": [[e, *v] for e, v in sorted(self.epoch_update_over_step.items())]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    @property
    def sessions(self) -> list[dict]:
        """Every session of the run so far, this one last."""
        return [*self.previous_sessions, self.session]

    def close(self) -> list[dict]:
        """End this session now (the run is finishing); returns every session."""
        self.session.update(ended=results.utc_now(), wall_time_s=round(self.session_time.wall_s, 1),
                            stopped_s=round(self.session_time.stopped_s, 1))
        return self.sessions

    @property
    def wall_time_s(self) -> float:
        return self.previous_s + self.session_time.wall_s

    def steady_throughput(self) -> float | None:
        """Median images/s over the run's epochs in every session, leaving out each session's first
        epoch (it compiles the train step) unless nothing else is left."""
        return _steady_median(self.epoch_rates)

    def steady_update_over_step(self) -> float | None:
        """Median `update_over_step` over the run's epochs, as `steady_throughput` takes them; None for
        a run whose epochs were all trained before the StepClock existed."""
        return _steady_median(self.epoch_update_over_step)


def _steady_median(per_epoch: dict[int, list]) -> float | None:
    """Median of {epoch: [value, first epoch of its session]} leaving out first epochs, unless nothing else is left."""
    steady = [value for value, first in per_epoch.values() if not first]
    values = steady or [value for value, _ in per_epoch.values()]
    return statistics.median(values) if values else None


class ProgressLog(keras.callbacks.Callback):
    """A progress line at most every `every_s` seconds, for logs that are not a terminal (where
    Keras' own progress bar only prints at the end of each epoch)."""

    def __init__(self, images_per_step: int | None = None, every_s: float = 60.0):
        super().__init__()
        self.images_per_step, self.every_s = images_per_step, every_s

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start = epoch, time.perf_counter()
        self.last = self.start

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return
        self.last = now
        steps = self.params.get("steps") or 0
        rate = (batch + 1) * self.images_per_step / (now - self.start)
        eta = (steps - batch - 1) * self.images_per_step / rate if steps else 0
        metrics = "  ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
        print(f"  epoch {self.epoch + 1} step {batch + 1}/{steps}  {metrics}  {rate:.0f} images/s  "
              f"epoch ETA {eta / 60:.1f} min", flush=True)


_TF_DATA_AUTOTUNE = [True]  # TensorFlow's default, until `use_tf_data_autotune` says otherwise
# The Keras versions whose private `keras.src.trainers.epoch_iterator.EpochIterator` (its `data_adapter` and that
# adapter's `get_tf_dataset`) `use_tf_data_autotune` was checked on; tests/common/test_run.py fails on any other,
# so that a Keras upgrade re-checks the patch before adding its version here.
KERAS_CHECKED = ("3.15.1",)


def use_tf_data_autotune(on: bool) -> None:
    """Whether the tf.data pipelines Keras builds on TensorFlow for `fit`, `evaluate` and `predict` are
    autotuned (`--tf_data_autotune`, off in every run: `speed_settings`).

    Why off: an autotuned pipeline runs a model thread that re-optimises it on a timer; deleting the
    pipeline's iterator waited for that thread (gdb: the main thread in `RootDataset::Iterator`'s destructor,
    the model thread in `Model::OptimizeLoop`'s timed wait). Keras makes a new iterator
    for every epoch, every validation pass and every `evaluate` or `predict`, so each could stall with the
    process idle: on the project's 2-core CPU, a `fit` on arrays lost up to half its speed and a validation
    pass took 5.2 s against 2.7-2.9 s (papers/resnet/README.md, Speed, and the records it names).
    Keras already turns autotuning off for a `PyDataset` with workers (our `ArrayBatches`). Batches and their
    order are unchanged, so the numbers are too. No effect on other backends."""
    _TF_DATA_AUTOTUNE[0] = bool(on)
    if keras.backend.backend() != "tensorflow" or on:
        return
    if keras.__version__ not in KERAS_CHECKED:  # the patch reaches into Keras' private trainer: checked per version
        warnings.warn(f"--tf_data_autotune=false is not applied: it patches Keras' private EpochIterator, checked on "
                      f"Keras {', '.join(KERAS_CHECKED)}, not {keras.__version__} "
                      f"(common.lifecycle.training.KERAS_CHECKED)",
                      stacklevel=2)
        return
    from keras.src.trainers import epoch_iterator  # where every Keras loop gets its data adapter

    init = epoch_iterator.EpochIterator.__init__
    if getattr(init, "_reads_tf_data_autotune", False):
        return

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        make = self.data_adapter.get_tf_dataset

        def get_tf_dataset():
            import tensorflow as tf

            dataset = make()
            if _TF_DATA_AUTOTUNE[0] or not isinstance(dataset, tf.data.Dataset):
                return dataset
            options = tf.data.Options()
            options.autotune.enabled = False
            return dataset.with_options(options)

        self.data_adapter.get_tf_dataset = get_tf_dataset

    __init__._reads_tf_data_autotune, __init__.unpatched = True, init
    epoch_iterator.EpochIterator.__init__ = __init__


def speed_settings(config) -> None:
    """The recipe-neutral speed settings every run and benchmark applies before its first step: batch
    normalisation by the fused kernel (`--fused_batchnorm`) and tf.data autotuning (`--tf_data_autotune`)."""
    from common import layers

    layers.use_fused_batchnorm(config.fused_batchnorm)
    use_tf_data_autotune(config.tf_data_autotune)


def fit(model, data, run_path: Path, **kwargs):
    """`model.fit` as every train script calls it: one line per epoch when the output is not a
    terminal, and shuffle=False, because each pipeline shuffles by (seed, epoch) itself (Keras' own
    shuffle of batch indices draws from Python's global `random` and would make a resumed run
    diverge). On Ctrl-C it says how to resume before re-raising."""
    try:
        return model.fit(data, verbose=1 if sys.stdout.isatty() else 2, shuffle=False, **kwargs)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last finished epoch "
              f"(checkpoint in {run_path / 'backup'}).")
        raise


def read_history(run: Path) -> list[dict]:
    """The per-epoch history from the CSV log; after a resume, the last row for each epoch wins. Keras'
    CSVLogger adds an empty `val_<key>` column for every key when the first epoch logs no `val_` key (room
    for a validation that might come later); columns that stayed empty are left out."""
    path = run / "history.csv"
    if not path.exists():
        return []
    frame = pd.read_csv(path).drop_duplicates("epoch", keep="last").sort_values("epoch")
    frame = frame.drop(columns=[c for c in frame if c.startswith("val_") and frame[c].isna().all()])
    frame["epoch"] = frame["epoch"].astype(int) + 1  # CSVLogger counts from 0; people count from 1
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def retire(run: Path, state_files=()) -> None:
    """A finished run needs no checkpoint; its history, state and `state_files` stay for inspection,
    renamed. Running the same command again starts a new run (and writes a new results file)."""
    shutil.rmtree(run / "backup", ignore_errors=True)
    for name in ("state.json", "history.csv", *state_files):
        if (run / name).exists():
            os.replace(run / name, run / f"{name}.done-{int(time.time())}")


def failure_text(failed: dict) -> str:
    """One line for a run that `StopOnNaN` stopped."""
    where = f"epoch {failed['epoch'] + 1}" + ("" if failed.get("batch") is None else f", batch {failed['batch'] + 1}")
    return f"FAILED: {failed.get('key', 'loss')} became {failed['loss']} in {where}"


def save_model(model, run: Path, name: str) -> Path:
    """Save a trained network as `<name>.keras` in its run directory, atomically. A finished
    configuration run again trains in the same directory; its networks then go to `<name>-2.keras`,
    `-3`, ..., so that the files earlier results name (by path and SHA-256) are never replaced."""
    path, n = run / f"{name}.keras", 1
    while path.exists():
        n += 1
        path = run / f"{name}-{n}.keras"
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def time_alternating(kinds: dict, steps: int, warmup: int, repeats: int, log=print) -> tuple[dict, dict]:
    """Seconds per call of each callable in `kinds` (each must return only when its work is done, as
    `train_on_batch` does), measured `repeats` times in alternation after `warmup` untimed calls, so
    that another job on the machine slows every kind alike. Returns (the fastest of each, all)."""
    measured = {name: [] for name in kinds}
    for _ in range(repeats):
        for name, fn in kinds.items():
            for _ in range(warmup):
                fn()
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            measured[name].append((time.perf_counter() - start) / steps)
            log(f"  {name}: {1000 * measured[name][-1]:.0f} ms per step")
    return {name: min(v) for name, v in measured.items()}, measured

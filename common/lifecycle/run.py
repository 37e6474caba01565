"""A training run, from its first session to its results record: what every paper's `train.py` shares.

    run = Run(PAPER, config, preset, PRESETS)      # seeds everything, claims the run directory
    data = load_data(config)
    run.describe_data(source=..., checksums=data.checksums, train=len(x_train), test=len(x_test))
    model = build_model(config)
    run.fit(model, batches, epochs=epochs, images_per_step=config.batch_size, callbacks=[...])
    if run.failed:
        return run.finish()                        # recorded as failed, with where the loss became NaN
    final = {"test_error": ...}                    # the paper's own evaluation and figures
    return run.finish(final, summary=f"test error {100 * final['test_error']:.2f} %")

What the run object owns, so that a paper does not:
- **Seeding** (`common.lifecycle.repro.seed_everything`) when it is made, before data or model exist.
- **The run directory** `runs/<paper>/<variant>-<preset>-seed<N>-<config hash>/`: the checkpoints
  (`training.Checkpoint`: never half-written), `history.csv`, `state.json` (the clock) and saved networks. The same
  command run again resumes from the last finished epoch. A lock (`fcntl.flock`, released by the
  operating system when the process ends, so a killed run never leaves a stale one) stops a second
  process from using the directory at the same time.
- **The standard callbacks**, as attributes: `clock` (`training.RunClock`: wall time, sessions and
  images/s across resumes), `nan` (`training.StopOnNaN`), `backup` (`training.Checkpoint`), `csv`
  (`CSVLogger`), `progress` (a line a minute when the output is not a terminal) and `tensorboard`
  (when `config.tensorboard`). `fit` runs them after the paper's own callbacks (which may add keys
  to the epoch's logs) and adds `EpochSync` (the pipeline's epoch), `ReseedEachEpoch` for the
  `reseed` generators, `StopAtIteration` for `max_steps` and, last, `StopWhenAsked`: a file `stop` in the
  run directory (`python -m common.relay stop`) ends the run after the epoch (or unit) it is in, with its
  checkpoint written, exit status 75 (`common.errors.STOPPED`); the same command goes on from there.
- **The record** (`common.lifecycle.results`): `finish` writes one JSON per finished run, atomically and never
  over another, with the config, the fields chosen automatically, how the run departs from its preset,
  every session (commit, dirty flag, start, end, steps, wall time) and whether they span a change of
  the paper's code or `common/`, versions, device, the data's checksums, the history, the final
  metrics, the run's throughput over all its sessions, and its figures. Then it retires the checkpoint.

Reports are not written here: `python -m common.report` regenerates them from results/.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import keras

from common import relay
from common.errors import StopRequested, UserError
from common.lifecycle import config as cfg
from common.lifecycle import distribute, repro, results, training
from common.lifecycle.config import PAPER_PRESET, PLUMBING_PRESETS, command_line, config_hash, recipe_changes

# Exit statuses of a train script: 0 done; 1 a crash (a traceback: a bug to report); 2 the user's mistake (one
# line on stderr says what to do; nothing was run or written); 3 the run finished as failed (its loss became
# NaN; the record says where, with status "failed").
FAILED_RUN = 3


class RunInUse(UserError):
    """Another process holds the run directory's lock."""


class RunFinished(UserError):
    """The configuration already has a finished results record (and `repeat` was not asked for)."""


class RunBackendChanged(UserError):
    """The run's earlier sessions trained on another Keras backend than this process has."""


class Run:
    """One training run of a paper; see the module docstring."""

    def __init__(self, paper: str, config, preset: str, presets: dict, *, deterministic: bool = True,
                 throughput_key: str = "train_images_per_s", callbacks=()):
        """`presets`: the paper's PRESETS (to record how a `-custom` run departs from its preset).
        `throughput_key`: the name of the run's images/s in `final` (e.g. "train_samples_per_s").
        `callbacks`: more callbacks for `fit`, after all others (tests use them to interrupt a run)."""
        self.paper, self.config, self.preset = paper, config, preset
        self.variant = config.variant
        self.throughput_key, self.extra_callbacks = throughput_key, list(callbacks)
        self.changes = recipe_changes(config, presets, preset)
        self.repeat_of = self._finished_before()
        self.placement = distribute.setup(config)  # before any variable or random draw exists
        repro.seed_everything(config.seed, deterministic)
        training.speed_settings(config)
        self.dir = Path(config.runs_dir) / paper / cfg.run_dir_name(config, preset)
        if not self.placement.chief:  # each host keeps its own checkpoints (the same weights), lock and clock
            self.dir = self.dir / f"process-{self.placement.process_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._claim(self.dir / "lock")
        if (self.dir / relay.STOP_REQUEST).exists():  # asked of a session that ended before it could stop
            (self.dir / relay.STOP_REQUEST).unlink()
            print(f"{self.dir / relay.STOP_REQUEST}: a stop request no session took was removed; this one runs on")
        if self.placement.chief and not (self.dir / "command.json").exists():
            self._write_command(presets)
        self.clock = training.RunClock(self.dir / "state.json")
        self._same_backend()
        self.clock.session.update(devices=self.placement.replicas, hosts=self.placement.hosts)
        self.nan = training.StopOnNaN()
        self.backup = training.Checkpoint(self.dir / "backup")
        if training.repair_history(self.dir / "history.csv"):
            print(f"{self.dir / 'history.csv'}: a half-written last line (an interrupted run) was cut off")
        self.csv = training.HistoryCSV(self.dir / "history.csv")
        if self.placement.chief:
            print(self.banner(), flush=True)
        self.progress = None if sys.stdout.isatty() else training.ProgressLog()
        self.tensorboard = keras.callbacks.TensorBoard(str(self.dir / "tensorboard")) if config.tensorboard else None
        self.data: dict = {}
        self.figures: dict[str, Path] = {}
        self.state_files: list[str] = []
        self.model = None
        self.record: dict | None = None

    def _finished_before(self) -> list[str]:
        """The results records of this very configuration (same config hash, seed included, and preset
        label) that already finished; refuses to run it again unless `config.repeat`."""
        done = [Path(r["_path"]).name for r in results.load_all(self.config.results_dir, self.paper, superseded=True)
                if r.get("kind", "training") == "training" and r["status"] == "completed"
                and r["config_hash"] == config_hash(self.config) and r["preset"] == self.preset]
        if done and not self.config.repeat:
            where = Path(self.config.results_dir) / self.paper / done[-1]
            raise RunFinished(f"this configuration already finished: {where}. Run it again as a repeat with "
                              f"--repeat=true (the report never averages a repeat as another seed) or change the seed.")
        return done

    def _same_backend(self) -> None:
        """Refuse to resume a run on another Keras backend than its earlier sessions trained on: its
        checkpoint may load, but the run would no longer go on as the uninterrupted one (random streams,
        kernels), and its record would name one backend for all its epochs. Sessions recorded before the
        backend was (2026-12-06) name none and are taken as they come."""
        before = [s["backend"] for s in self.clock.previous_sessions if isinstance(s, dict) and s.get("backend")]
        now = keras.backend.backend()
        if before and before[-1] != now:
            self._lock.close()
            raise RunBackendChanged(
                f"{self.dir} trained on the {before[-1]} backend: resume it with KERAS_BACKEND={before[-1]} "
                f"(this process has {now}), or start it afresh on {now} with another --runs_dir")

    @staticmethod
    def _claim(path: Path):
        handle = open(path, "a+")  # noqa: SIM115  (held open for the life of the run: it is the lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunInUse(f"{path.parent} is in use by {holder}: the same configuration is already running. "
                           f"Wait for it to finish, or stop it; it resumes when run again.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        return handle

    def banner(self) -> str:
        """The run's first line: paper, model, preset and whether it is the paper's recipe, fresh or resumed,
        where its files are, and what a run of this preset took where the records say."""
        base = self.preset.removesuffix("-custom")
        row = {}
        try:
            from common import report

            row = report.preset_rows(self.paper, Path(self.config.results_dir)).get((self.variant, base), {})
        except Exception:  # noqa: BLE001  (no records here, or a damaged one: the run goes on without)
            pass
        if self.changes:
            recipe = "not the paper's recipe: " + ", ".join(f"{k}={v}" for k, v in self.changes.items())
        else:
            recipe = row.get("recipe") or ("the paper's recipe" if base == PAPER_PRESET else "not the paper's recipe")
        done = [s.get("last_epoch") or 0 for s in self.clock.previous_sessions if isinstance(s, dict)]
        state = (f"resuming after epoch {max(done)} (session {len(done) + 1})" if done and max(done)
                 else "a fresh run")
        # One time per machine (they differ up to 2x): "15 min on A (mean of 2), 40 min on B (mean of 1, REPORT.md)".
        took = ("; a run of this preset took " + "), ".join(f"{wall} on {device} (mean of {n}"
                                                           for device, wall, n in row["took"]) + ", REPORT.md)"
                if row.get("took") and not self.changes else "")
        return (f"== {self.paper}: {self.variant}, preset {self.preset} ({recipe}), seed {self.config.seed}; {state}; "
                f"files in {self.dir}{took}")

    def _write_command(self, presets: dict) -> None:
        """`command.json`: the command line that makes this very configuration (its preset and every field
        that departs from it) and its Keras backend, so that a run packed for another machine (common.relay)
        says how to resume it."""
        preset = self.preset.removesuffix("-custom")
        script = f"papers/{self.paper}/train.py"
        argv = [script, *([] if preset == PAPER_PRESET else [f"--preset={preset}"]),
                *command_line(self.config, presets, preset)]
        tmp = self.dir / "command.tmp"
        tmp.write_text(json.dumps({"script": script, "argv": argv, "preset": self.preset,
                                   "config_hash": config_hash(self.config), "backend": keras.backend.backend()},
                                  indent=1))
        os.replace(tmp, self.dir / "command.json")

    @property
    def started(self) -> str:
        """When the run's first session started (UTC, ISO 8601)."""
        return self.clock.sessions[0].get("started") or self.clock.session["started"]

    def describe_data(self, **facts) -> None:
        """What the run trained and was tested on, for the record: its source, the checksums its loader
        verified (`checksums`), counts, and whatever else identifies it."""
        self.data.update(facts)

    def fit(self, model, data, *, epochs: int, images_per_step: int, callbacks=(), reseed=(),
            max_steps: int | None = None, **fit_kwargs):
        """`model.fit` on `data` with the paper's `callbacks` and the standard ones. `reseed`: the
        model's `keras.random.SeedGenerator`s, set to a state of (seed, epoch) at each epoch start so
        that a resumed run draws the same noise. `max_steps`: stop after this many optimizer steps."""
        self.model = model
        if not distribute.in_force():  # a bug, not the user's mistake: say so loudly
            raise RuntimeError(f"the {self.placement.kind} placement was lost before fit (keras.backend.clear_session? "
                               f"use common.lifecycle.distribute.clear_session)")
        distribute.check_batch(getattr(data, "batch_size", None) or images_per_step)
        distribute.prepare_model(model, self.config.sync_batchnorm)
        self.clock.images_per_step = images_per_step
        if self.progress is not None:
            self.progress.images_per_step = images_per_step
        before = [training.EpochSync(data)] if hasattr(data, "set_epoch") else []
        if reseed:
            before.append(training.ReseedEachEpoch(reseed, self.config.seed))
        # the history row before the checkpoint: a run stopped between the two redoes the epoch and its row
        # (the last row of an epoch wins), where the other order would leave a checkpoint without its row
        standard = [cb for cb in (self.clock, self.nan, self.csv, self.progress, self.tensorboard, self.backup) if cb]
        after = [training.StopAtIteration(max_steps, len(data))] if max_steps else []
        if self.placement.hosts == 1:  # several hosts would have to stop at the same epoch: not offered
            after.append(training.StopWhenAsked(self.dir))
        with self._freed_when_stopped():
            return training.fit(model, distribute.shard_for_process(data), self.dir, epochs=epochs,
                                callbacks=[training.StepClock(), *before, *callbacks, *standard, *after,
                                           *self.extra_callbacks], **fit_kwargs)

    def units(self, items, work, *, state: str = "units.json", name: str = "unit", done=None) -> list:
        """Work that is not one `fit` (a cross-validation's folds), resumable a unit at a time: `work(k, item)`
        returns unit k's result (JSON-serialisable), which is kept in the run's state file `state` as soon as
        it exists, so that a resumed run skips the units finished before; the session record and the clock
        advance as at an epoch's end, and the clock's state names the file, the units' count and `name` (what
        a unit is, "fold"), so that `common.relay` can carry the run and say how far it got. `done(k, result)` is
        called after each new unit (to print it). Returns every unit's result, in order."""
        path = self.state_file(state)
        items = list(items)
        self.clock.units = {"file": state, "of": len(items), "name": name}
        results = json.loads(path.read_text()) if path.exists() else []
        for k, item in enumerate(items):
            if k < len(results):
                continue
            results.append(work(k, item))
            self.clock.mark(k)  # first, as at an epoch's end: a session stopped after the unit's work is recorded
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results))
            os.replace(tmp, path)
            if done is not None:
                done(k, results[-1])
            if self.placement.hosts == 1:
                with self._freed_when_stopped():
                    training.stop_if_asked(self.dir, f"{name} {k + 1} of {len(items)}")
        return results

    @contextmanager
    def _freed_when_stopped(self):
        """A stop request (`training.StopWhenAsked`) leaves the run where a resume starts: let go of it at once."""
        try:
            yield
        except StopRequested:
            self._lock.close()
            raise

    @property
    def failed(self) -> dict | None:
        """Where the loss became NaN or infinite ({"epoch", "batch", "loss", "key"}), or None."""
        return self.nan.failed_at

    def history(self) -> list[dict]:
        """The per-epoch logs of every session (`history.csv`), epochs counted from 1, each with the seconds
        the process was stopped in it (`stopped_s`; None for an epoch trained before that was measured)."""
        stopped = self.clock.epoch_stopped_s
        return [{**row, "stopped_s": stopped.get(row["epoch"])} for row in training.read_history(self.dir)]

    @property
    def throughput(self) -> float | None:
        """Median images/s of the run's epochs over all its sessions, compilation excluded."""
        return self.clock.steady_throughput()

    def figure_path(self, name: str) -> Path:
        """Where the run's figure `name` goes: results/<paper>/figures/<run>_<start>_<name>.png. The
        record lists every such figure that exists when the run finishes."""
        stamp = self.started.replace(":", "").replace("-", "")[:15] + "Z"
        path = Path(self.config.results_dir) / self.paper / "figures" / f"{self.dir.name}_{stamp}_{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figures[name] = path
        return path

    def state_file(self, name: str) -> Path:
        """A file in the run directory that belongs to this run only (a choice made once and kept for
        resumes, such as the VAE's step-size search); it is retired with the checkpoint at the end, so a
        later run of the same configuration starts afresh."""
        self.state_files.append(name)
        return self.dir / name

    def save_model(self, model, name: str) -> Path:
        """Save a trained network as `<name>.keras` in the run directory (never replacing a file that an
        earlier record names)."""
        return training.save_model(model, self.dir, name)

    def finish(self, final: dict | None = None, *, summary: str = "", extra: dict | None = None,
               line: str | None = None) -> int:
        """Write the results record and retire the checkpoint. `final`: the paper's metrics (the
        optimizer's iteration count and the run's throughput are added unless it has them); `summary`: its one-line
        outcome (a failed run prints where it failed instead); `extra`: more top-level record fields;
        `line` replaces the printed "<variant> (<preset>, seed <s>): <summary>; <time>" line.
        Returns the exit status: 0, or `FAILED_RUN` (3) for a run whose loss became NaN."""
        failed = self.failed
        final = dict(final or {})
        if self.model is not None:
            final.setdefault("iterations", int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
        final.setdefault(self.throughput_key, self.throughput)  # a paper may measure its own
        if self.clock.steady_update_over_step() is not None:
            final.setdefault("update_over_step", self.clock.steady_update_over_step())
        if failed:
            final["failure"] = failed
            summary = training.failure_text(failed)
        sessions = self.clock.close()
        commits = [s["commit"] for s in sessions if s.get("commit")]
        figures = {name: Path(os.path.relpath(path, Path(self.config.results_dir) / self.paper)).as_posix()
                   for name, path in self.figures.items() if path.exists()}
        self.record = results.make_record(
            paper=self.paper, variant=self.variant, preset=self.preset, config=self.config, started=self.started,
            wall_time_s=self.clock.wall_time_s, history=self.history(), final=final,
            status="failed" if failed else "completed", recipe_changes=self.changes,
            extra={"chosen_automatically": list(self.config.chosen_automatically), "data": self.data,
                   "figures": figures, "sessions": sessions, "repeat_of": self.repeat_of or None,
                   "code_changed_between_sessions": repro.changed_files(commits, ["common", f"papers/{self.paper}"]),
                   "distribution": self.placement.as_dict(), **(extra or {})})
        if not self.placement.chief:  # process 0 writes the record; this one only lets go of its checkpoint
            training.retire(self.dir, self.state_files)
            self._lock.close()
            print(f"process {self.placement.process_id}: done; the record is written by process 0")
            return FAILED_RUN if failed else 0
        path = results.write(self.record, self.config.results_dir)
        packed = relay.pack_path(self.dir, Path(self.config.results_dir) / "relay")
        if packed.exists():  # the run's relay pack has done its work: the commit that adds the record drops it
            packed.unlink()
            print(f"Removed its relay pack {packed}")
        training.retire(self.dir, [*self.state_files, "command.json"])
        self._lock.close()
        if line is None:
            line = (f"\n{self.variant} ({self.preset}, seed {self.config.seed}): {summary}; "
                    f"{self.record['wall_time_s'] / 60:.1f} min on {self.record['device']['name']}.")
        print(line)
        print(f"Results: {path}")
        if self.preset.removesuffix("-custom") not in PLUMBING_PRESETS:
            print("Reports: python -m common.report regenerates them from results/.")
        return FAILED_RUN if failed else 0


def timing_fields(steps: int, warmup_steps: int, repeats: int):
    """A benchmark config's timing fields, with that benchmark's defaults, as a class to derive from
    (before the paper's config): `repeats` measurements of each kind of step in alternation, each
    `steps` timed steps after `warmup_steps` untimed ones (`training.time_alternating`)."""
    from dataclasses import dataclass

    defaults = {"steps": steps, "warmup_steps": warmup_steps, "repeats": repeats}

    @dataclass(frozen=True)
    class Timing:
        steps: int = cfg.param(defaults["steps"], "timed steps per measurement", low=1)
        warmup_steps: int = cfg.param(defaults["warmup_steps"], "untimed steps first (compilation, caches)", low=1)
        repeats: int = cfg.param(defaults["repeats"], "measurements of each kind, alternating; the fastest of each "
                                                      "is kept", low=1)

    return Timing


def benchmark(paper: str, config_class, presets: dict, **record):
    """Makes a benchmark script's `run(config, preset="")` of `measure(config) -> final` (its console line
    is then `summary_line`'s), `(final, line)` or `(final, line, more record fields)`: it seeds
    (deterministic kernels as the config asks, where it has the field), applies the speed settings every run
    applies, times the whole, and writes the `kind: benchmark` record (`write_benchmark`, with `record`'s
    fields, e.g. its description). `preset` is ignored: a benchmark record is always labelled `benchmark`.
    `run.main(argv)` is the script's command line (`config_class` with `presets`, the script's docstring as
    its help)."""
    import functools
    import time

    def wrap(measure):
        @functools.wraps(measure)
        def run(config, preset: str = "") -> int:
            started, t0 = results.utc_now(), time.perf_counter()
            repro.seed_everything(config.seed, getattr(config, "deterministic", True))
            training.speed_settings(config)
            measured = measure(config)
            if not isinstance(measured, tuple):
                measured = (measured, summary_line(config, measured))
            final, line, *more = measured
            return write_benchmark(config, paper, started, time.perf_counter() - t0, final, line=line,
                                   **record, **(more[0] if more else {}))

        def main(argv=None) -> int:
            return cfg.cli_main(config_class, presets, run, argv, description=sys.modules[measure.__module__].__doc__)
        run.main = main
        return run
    return wrap


def summary_line(config, final: dict) -> str:
    """A benchmark's console line: its variant and what its record's `summary` (or each of its `summary_rows`)
    gives the report, column by column."""
    rows = final.get("summary_rows") or [final["summary"]]
    return f"{config.variant}: " + " | ".join(", ".join(f"{k} {v}" for k, v in row.items()) for row in rows)


def write_benchmark(config, paper: str, started: str, wall_time_s: float, final: dict, line: str, **extra) -> int:
    """The end of a benchmark script: a `kind: benchmark` record (no history; the report gives it its
    own section), and `line` printed with the device."""
    record = results.make_record(paper=paper, variant=config.variant, preset="benchmark", config=config,
                                 started=started, wall_time_s=wall_time_s, history=[], final=final,
                                 status="completed", extra={"kind": "benchmark", **extra})
    path = results.write(record, config.results_dir)
    device = record["device"]
    print(f"{line} [{device['name']} / {device['backend']}]")
    print(f"Results: {path}")
    return 0

"""What one update of a paper's training costs against its train step, measured inside a real run.

    python -m common.update_cost PAPER [--updates N [--skip S]] [--json PATH] [train.py's flags]

Starts `papers/PAPER/train.py` with the given flags (its paper preset unless `--preset` says otherwise) in
a temporary runs and results directory; its first epoch compiles and warms up, its second is measured, and
then it is stopped: no record and no checkpoint are kept. It prints, over the second epoch's updates, the
median time inside the train step (the compiled train function with its batch's data, as
`common.lifecycle.training.StepClock` measures it in every run) and from one update's start to the next (what the
callbacks, Python and the data loader add between steps included), `update / step` (the ratio of their
sums), and `epoch / step`: the whole epoch from its start to the next one's (its evaluation, checkpoint and
history row included) over its time in the step. For epochs too long to wait for, `--updates N [--skip S]`
measures N updates of the first epoch after its first S (default 10), and there is no `epoch / step`.

Both clocks run in the same process on the same batches, so another job on the machine slows both alike
and the ratios can be compared across machines where the times cannot.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras

from common.lifecycle import repro, training


class _Measured(BaseException):
    """Ends the run once the updates are measured (a BaseException, so that nothing on the way treats it
    as the run's own failure)."""


class MeasureUpdates(keras.callbacks.Callback):
    """The last callback of the run. By default epoch 1 compiles and warms up and epoch 2 is measured: the
    time of each of its updates in the train step (the StepClock's stamps) and from its start to the next
    update's, and the whole epoch, from its start to the start of epoch 3 (its evaluation, checkpoint and
    history row included), over its time in the step; training stops at the start of epoch 3. With
    `updates`, for epochs too long to wait for: the first `skip` updates of epoch 1 compile and warm up, the
    next `updates` are measured, and training stops (no whole epoch is measured)."""

    def __init__(self, updates: int | None = None, skip: int = 10):
        super().__init__()
        self.updates, self.skip, self.fits, self.seen = updates, skip, 0, 0
        self.epoch_stamps, self.steps, self.periods = [], [], []

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        if self.fits == 1:
            self.epoch_stamps.append(time.perf_counter())
            if len(self.epoch_stamps) == 3:
                raise _Measured

    def on_train_batch_end(self, batch, logs=None):
        clock = training.StepClock.current
        self.seen += 1
        measured_epoch, skipped = (1, self.skip) if self.updates else (2, 0)
        if self.fits != 1 or len(self.epoch_stamps) != measured_epoch or self.seen <= skipped:
            return
        self.steps.append(clock.ends[-1] - clock.begins[-1])
        if len(self.steps) >= 2 and len(clock.begins) >= 2:
            self.periods.append(clock.begins[-1] - clock.begins[-2])
        if self.updates and len(self.periods) >= self.updates:
            raise _Measured

    def on_epoch_end(self, epoch, logs=None):
        if self.fits == 1 and len(self.epoch_stamps) == 2:
            clock = training.StepClock.current
            self.epoch_steps_s = sum(e - b for b, e in zip(clock.begins, clock.ends, strict=True))

    def result(self) -> dict:
        paired = self.steps[:len(self.periods)]  # the period of update k ends at the start of update k + 1
        if len(paired) < 2:
            raise SystemExit("the run's first fit ended before 3 updates were measured: nothing to measure")
        out = {"updates": len(paired), "step_ms_median": 1000 * statistics.median(paired),
               "update_ms_median": 1000 * statistics.median(self.periods),
               "update_over_step": sum(self.periods) / sum(paired)}
        if len(self.epoch_stamps) == 3:
            epoch_s = self.epoch_stamps[2] - self.epoch_stamps[1]
            out.update(epoch_s=epoch_s, epoch_updates=len(self.steps), epoch_over_step=epoch_s / self.epoch_steps_s)
        return out


def measure(paper: str, argv: list[str], updates: int | None = None, skip: int = 10) -> dict:
    """Run `papers/<paper>/train.py` with `argv` until the updates are measured; returns the measurement."""
    module = importlib.import_module(f"papers.{paper}.train")
    callback = MeasureUpdates(updates, skip)
    train = module.train
    module.train = functools.partial(train, extra_callbacks=[callback])  # main() looks `train` up when called
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="update_cost-") as tmp:
        where = [f"--runs_dir={tmp}/runs", f"--results_dir={tmp}/results"]
        try:
            status = module.main([*where, *argv])
        except _Measured:
            status = None
        finally:
            module.train = train
    if status not in (None, 0):
        raise SystemExit(f"the run ended with status {status}")
    return {"paper": paper, "argv": argv, **callback.result(), "seconds": round(time.perf_counter() - start, 1),
            "device": repro.device_info()["name"], "threads": repro.thread_environment()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.update_cost", description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paper", help="a folder of papers/, e.g. resnet")
    parser.add_argument("--updates", type=int, help="measure this many updates of the first epoch, after --skip")
    parser.add_argument("--skip", type=int, default=10, help="with --updates: updates left out first (default 10)")
    parser.add_argument("--json", type=Path, help="also write the measurement to this file")
    args, rest = parser.parse_known_args(argv)
    if not (Path(__file__).parents[1] / "papers" / args.paper / "train.py").exists():
        parser.error(f"no papers/{args.paper}/train.py")
    if args.updates is not None and (args.updates < 2 or args.skip < 1):
        parser.error("--updates must be at least 2 and --skip at least 1 (the first update compiles)")
    result = measure(args.paper, rest, args.updates, args.skip)
    epoch = (f", epoch / step {result['epoch_over_step']:.3f} ({result['epoch_updates']} updates in "
             f"{result['epoch_s']:.1f} s)" if "epoch_s" in result else "")
    print(f"{args.paper} {' '.join(rest)}: step {result['step_ms_median']:.1f} ms, update "
          f"{result['update_ms_median']:.1f} ms (medians of {result['updates']}), update / step "
          f"{result['update_over_step']:.3f}{epoch} [{result['device']}]")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

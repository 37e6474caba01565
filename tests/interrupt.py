"""Run a paper's `train.py` as a user would, in this process, and SIGKILL it at a chosen point:

    python -m tests.interrupt SPEC.json

SPEC: {"paper": "resnet", "argv": ["--preset=smoke", ...], "kill": null | {"at": AT, "n": N},
       "trace": "trace.json" | null}

AT is where the N-th (from 1) such event of the process is cut short by SIGKILL, as a power cut would:
- "batch": the end of a training step (any `keras.Model.fit` of the run, its own or a paper's inner one);
- "save": a checkpoint being written: the N-th `os.replace` of a checkpoint folder (`epoch-NNNN.tmp`) or of
  a paper's unit-of-work state (`folds.tmp`), with the largest file in it cut to half its size first (the
  process died while writing it);
- "saved": just after the N-th such checkpoint is complete (before anything else of that epoch end);
- "results": the results record: its temporary file is written, and the kill comes before it is linked
  to its name.

Without "kill" the run goes to its end, and "trace" receives what happened, for choosing kill points:
every training step as [fit call, epoch, step, steps in the epoch], and the source of every `os.replace`.
Used by tests/test_kill_and_resume.py; never imported by the library.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import re
import signal
import sys
from pathlib import Path

CHECKPOINT_SOURCE = re.compile(r"^(epoch-\d+|folds)\.tmp$")


def _die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill: dict | None, trace: dict) -> None:
    import keras

    count = {"batch": 0, "save": 0, "fits": 0}

    class Steps(keras.callbacks.Callback):
        def __init__(self, fit_call):
            super().__init__()
            self.fit_call, self.epoch = fit_call, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            count["batch"] += 1
            trace["steps"].append([self.fit_call, self.epoch, batch, self.params.get("steps")])
            if kill and kill["at"] == "batch" and count["batch"] == kill["n"]:
                _die()

    fit = keras.Model.fit

    def fit_with_steps(self, *args, **kwargs):
        count["fits"] += 1
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Steps(count["fits"])]
        return fit(self, *args, **kwargs)

    keras.Model.fit = fit_with_steps

    replace = os.replace

    def replace_or_die(src, dst, *args, **kwargs):
        name = Path(src).name
        trace["replaced"].append(name)
        if not (kill and kill["at"] in ("save", "saved") and CHECKPOINT_SOURCE.match(name)):
            return replace(src, dst, *args, **kwargs)
        count["save"] += 1
        if count["save"] == kill["n"] and kill["at"] == "save":
            path = Path(src)
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            largest = max(files, key=lambda p: p.stat().st_size)
            os.truncate(largest, largest.stat().st_size // 2)
            _die()
        replace(src, dst, *args, **kwargs)
        if count["save"] == kill["n"]:
            _die()
        return None

    os.replace = replace_or_die

    link = os.link

    def link_or_die(src, dst, *args, **kwargs):
        if kill and kill["at"] == "results":
            _die()
        return link(src, dst, *args, **kwargs)

    os.link = link_or_die


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    trace = {"steps": [], "replaced": []}
    if spec.get("trace"):
        atexit.register(lambda: Path(spec["trace"]).write_text(json.dumps(trace)))
    install(spec.get("kill"), trace)
    train = importlib.import_module(f"papers.{spec['paper']}.train")
    return train.main(spec["argv"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

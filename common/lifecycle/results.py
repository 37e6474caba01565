"""One JSON per finished run under results/<paper>/: the only source of reported numbers.

A record says what was run (paper, variant, preset, full config, seed), on what code (git commit and
whether the tree was dirty), with what (library versions, backend, device), when and for how long,
what happened each epoch, the final metrics, and whether the run completed or failed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

from common.errors import check_choice
from common.lifecycle import repro
from common.lifecycle.config import config_hash, to_dict

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "paper", "variant", "preset", "config", "config_hash", "seed", "git", "versions",
                 "device", "started", "finished", "wall_time_s", "history", "final", "status")
STATUSES = ("completed", "failed")
# Per paper folder: {results file name: why it no longer counts}. A superseded record stays on disk (a
# result is never deleted or overwritten) but leaves the averages; the report lists it with the reason.
SUPERSEDED = "superseded.json"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def make_record(*, paper: str, variant: str, preset: str, config, started: str, wall_time_s: float,
                history: list[dict], final: dict, status: str, recipe_changes: dict | None = None,
                extra: dict | None = None) -> dict:
    """A results record; `recipe_changes`: the recipe fields a `-custom` run changed
    (`common.lifecycle.config.recipe_changes`)."""
    check_choice("status", status, STATUSES)
    record = {
        "schema": SCHEMA_VERSION,
        "paper": paper,
        "variant": variant,
        "preset": preset,
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "recipe_changes": recipe_changes or {},
        "seed": config.seed,
        "git": repro.git_state(),
        "versions": repro.library_versions(),
        "device": repro.device_info(),
        "started": started,
        "finished": utc_now(),
        "wall_time_s": round(float(wall_time_s), 1),
        "history": history,
        "final": final,
        "status": status,
    }
    record.update(extra or {})
    return record


def _json_safe(value):
    """NaN/inf are not JSON; a failed run's NaN loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write(record: dict, results_dir: str | os.PathLike) -> Path:
    """Write `record` to results_dir/<paper>/ atomically, never replacing an existing file.

    The JSON is written to a temporary file in the same folder and then hard-linked to its final
    name, which fails if that name exists (a rename would silently replace it); a clash gets a
    numeric suffix instead.
    """
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"results record lacks {missing}")
    folder = Path(results_dir) / record["paper"]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = record["finished"].replace(":", "").replace("-", "").replace("+0000", "Z")
    stem = f"{record['variant']}_{record['preset']}_seed{record['seed']}_{stamp}"
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".json", dir=folder)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from the rest of a group
        with os.fdopen(fd, "w") as f:
            json.dump(_json_safe(record), f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        for n in range(1000):
            final = folder / (f"{stem}.json" if n == 0 else f"{stem}-{n}.json")
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                continue
        raise FileExistsError(f"could not find a free name for {stem} in {folder}")
    finally:
        os.unlink(tmp)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files (`.tmp-<pid>-*.json`) that a process killed while writing its record left
    in `folder`; those of a live process (another run writing now) are kept. Returns what was removed."""
    removed = []
    for path in folder.glob(".tmp-*-*.json"):
        pid = path.name.split("-")[1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's: PermissionError below)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def load_superseded(results_dir: str | os.PathLike, paper: str) -> dict[str, str]:
    """The paper's superseded records: {file name: reason}."""
    path = Path(results_dir) / paper / SUPERSEDED
    if not path.exists():
        return {}
    with open(path) as f:
        return json.load(f)


def mark_superseded(results_dir: str | os.PathLike, paper: str, name: str, reason: str) -> None:
    """Take record `name` out of the averages, saying why (atomically; earlier entries are kept)."""
    folder = Path(results_dir) / paper
    if not (folder / name).exists():
        raise FileNotFoundError(f"no results record {folder / name} to mark as superseded")
    entries = {**load_superseded(results_dir, paper), name: reason}
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(entries, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, folder / SUPERSEDED)


def write_revision(original: dict, results_dir: str | os.PathLike, *, config, final: dict, extra: dict,
                   started: str, wall_time_s: float, reason: str) -> Path:
    """Re-evaluate a finished run without retraining it: a new record that keeps the original's
    training provenance (commit, device, times, history) and carries the new evaluation's in
    `revision` (its own commit, versions, device, times, the config fields it changed and why). It is
    written beside the original, which is then marked superseded, pointing at it."""
    before = original["config"]
    record = {k: v for k, v in original.items() if not k.startswith("_")}
    new_config = to_dict(config)
    # the original's configuration unchanged (a stored dict, which has no class to say which fields its hash
    # leaves at their defaults: config_hash) keeps its hash
    unchanged = isinstance(config, dict) and new_config == before
    record.update(config=new_config, config_hash=original["config_hash"] if unchanged else config_hash(config),
                  final={**original["final"], **final}, **extra)
    record["revision"] = {
        "of": Path(original["_path"]).name, "reason": reason, "started": started, "finished": utc_now(),
        "wall_time_s": round(float(wall_time_s), 1), "git": repro.git_state(), "versions": repro.library_versions(),
        "device": repro.device_info(),
        "config_changes": {k: [before.get(k), v] for k, v in new_config.items() if before.get(k) != v},
    }
    path = write(record, results_dir)
    mark_superseded(results_dir, original["paper"], Path(original["_path"]).name,
                    f"{reason}; re-evaluated as {path.name}")
    return path


def run_name(record: dict) -> str:
    """The working folder the record's run trained in (`config.run_dir_name`): variant, preset label, seed and
    config hash."""
    return f"{record['variant']}-{record['preset']}-seed{record['seed']}-{record.get('config_hash')}"


def load_all(results_dir: str | os.PathLike, paper: str | None = None, superseded: bool = False,
             problems: list[str] | None = None) -> list[dict]:
    """Every results record under results_dir (optionally one paper's), with its path; without
    `superseded`, those listed in a paper's superseded.json are left out. A file that is not a readable
    record (bad JSON, a missing key) is skipped, never fatal: its line goes to `problems` when given,
    else to a warning."""
    root = Path(results_dir)
    pattern = f"{paper}/*.json" if paper else "*/*.json"
    records = []
    for path in sorted(root.glob(pattern)):
        if path.name.startswith(".") or path.name == SUPERSEDED:
            continue
        if not superseded and path.name in load_superseded(root, path.parent.name):
            continue
        try:
            with open(path) as f:
                record = json.load(f)
            missing = [k for k in REQUIRED_KEYS if k not in record] if isinstance(record, dict) else ["everything"]
            if missing:
                raise ValueError(f"it lacks {', '.join(missing)}")
        except (OSError, ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
            message = f"{path} is skipped: it is not a readable results record ({e}); fix or remove it"
            if problems is None:
                warnings.warn(message, stacklevel=2)
            else:
                problems.append(message)
            continue
        record["_path"] = str(path)
        records.append(record)
    return records

"""Carry an unfinished run to another machine: pack its run directory into one file, unpack it there, and
run the same `train.py` command to resume it, exactly as if it had never moved.

    python -m common.relay list                              # runs in flight under runs/, and the packs
    python -m common.relay stop --all --wait                 # every running run stops after its epoch
    python -m common.relay pack runs/resnet/resnet20-paper-seed0-e7b3f4ef
    python -m common.relay unpack results/relay/resnet/resnet20-paper-seed0-e7b3f4ef.tar.gz
    python -m common.relay unpack --all                      # every pack under results/relay/ (a new machine)

A pack holds what a resume reads (common.lifecycle.run.Run): the newest complete checkpoint (`backup/epoch-NNNN/`:
weights and optimizer state), `history.csv`, the clock and its sessions (`state.json`), the run's own state
files (a cross-validation's finished folds, a choice made once) and the command that started it
(`command.json`), with a manifest of every file's SHA-256. Nothing else: no older checkpoint, TensorBoard
log, lock or retired file. A run is packed only while no process holds it (its lock), so the pack is what a
kill at that moment would leave, which a resume already continues bit for bit (tests/test_kill_and_resume.py).

Packing stamps each of the run's sessions that does not yet name its machine with this one's (CPU and
cores; sessions recorded by code older than `training.RunClock`'s `machine` field), so that a run whose
sessions span machines says so in its record and report.

The project keeps each unfinished paper-recipe run of at most `GIT_LIMIT_MIB` under results/relay/ between
sessions (docs/running.md); `Run.finish` deletes a run's pack when its record is written, and
`python -m common.report --check` fails while a pack's run has a finished record.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tarfile
import time
from pathlib import Path

from common.errors import UserError, one_line
from common.lifecycle import repro, results

REPO = Path(__file__).resolve().parent.parent
RELAY_DIR = REPO / "results" / "relay"
SUFFIX = ".tar.gz"
MANIFEST = "relay.json"
GIT_LIMIT_MIB = 4  # results/relay/ files are committed: the project's limit for a binary file in git
CHECKPOINT = re.compile(r"^epoch-(\d+)$")
STOP_REQUEST = "stop"  # a file of this name in a run directory asks its process to stop (`request_stop`)
# What a resume never reads: the lock (held by a live process), a stop request, TensorBoard logs, files of earlier
# finished runs.
LEFT_OUT = re.compile(r"^(lock|stop|tensorboard|.*\.done-\d+|.*\.tmp(\.keras)?|.*\.repair)$")


class RelayError(UserError):
    """A run that cannot be packed or a pack that cannot be unpacked; the message says why and what to do."""


def pack_path(run_dir: Path, relay_dir: Path = RELAY_DIR) -> Path:
    """Where the pack of `run_dir` (runs/<paper>/<name>) goes: <relay_dir>/<paper>/<name>.tar.gz."""
    run_dir = Path(run_dir)
    return Path(relay_dir) / run_dir.parent.name / f"{run_dir.name}{SUFFIX}"


def newest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(epoch, folder) of the run's newest complete checkpoint, or None."""
    backup = Path(run_dir) / "backup"
    found = [(int(m.group(1)), p) for p in backup.iterdir() if (m := CHECKPOINT.match(p.name))] \
        if backup.is_dir() else []
    return max(found) if found else None


def progress(run_dir: Path) -> tuple[int, Path | None] | None:
    """How far an unfinished run got, as (count, checkpoint folder): its newest complete checkpoint's epoch and
    folder; for a run that is not one `fit` (a cross-validation's folds: `Run.units`, which names its state file
    and count in state.json's `units`), the units it finished and no folder; None before either."""
    newest = newest_checkpoint(run_dir)
    if newest is not None:
        return newest
    state = Path(run_dir) / "state.json"
    units = json.loads(state.read_text()).get("units") if state.exists() else None
    done = Path(run_dir) / units["file"] if units else None
    finished = len(json.loads(done.read_text())) if done is not None and done.exists() else 0
    return (finished, None) if finished else None


def _held(run_dir: Path) -> bool:
    lock = run_dir / "lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _members(run_dir: Path, epoch_dir: Path | None) -> list[Path]:
    """The files a resume reads, relative to the run directory."""
    files = [p for p in epoch_dir.rglob("*") if p.is_file()] if epoch_dir else []
    for path in run_dir.iterdir():
        if path.name == "backup" or LEFT_OUT.match(path.name):
            continue
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sorted(p.relative_to(run_dir) for p in files)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp_sessions(state: dict, name: str) -> dict:
    sessions = state.get("sessions")
    if isinstance(sessions, list):
        state["sessions"] = [s if s.get("machine") or "commit" not in s else {**s, "machine": name}
                             for s in sessions]
    return state


def pack(run_dir: Path, relay_dir: Path = RELAY_DIR, max_mib: float = GIT_LIMIT_MIB) -> Path:
    """Pack the unfinished run in `run_dir` into `pack_path(run_dir, relay_dir)` (replacing an older pack of
    it, atomically); refuses a run that a process holds, one with no checkpoint, and a pack over `max_mib`
    (0: no limit). Returns the pack's path."""
    run_dir = Path(run_dir)
    if not (run_dir / "state.json").exists():
        raise RelayError(f"{run_dir} has no state.json (no epoch of it ended, or it is not a run directory): "
                         f"nothing to pack")
    if _held(run_dir):
        raise RelayError(f"{run_dir} is in use by a running process: stop it first (it resumes from its last "
                         f"checkpoint), then pack")
    newest = progress(run_dir)
    if newest is None:
        raise RelayError(f"{run_dir} has no finished epoch yet (no checkpoint in backup/, no finished unit): nothing "
                         f"a resume could use")
    epoch, epoch_dir = newest
    state = _stamp_sessions(json.loads((run_dir / "state.json").read_text()), repro.cpu_name())
    tmp = (run_dir / "state.json").with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, run_dir / "state.json")  # the stamp stays with the run here too
    command = run_dir / "command.json"
    files = {rel.as_posix(): (run_dir / rel).read_bytes() for rel in _members(run_dir, epoch_dir)}
    manifest = {"paper": run_dir.parent.name, "run": run_dir.name, "epoch": epoch, "machine": repro.cpu_name(),
                "packed": results.utc_now(), "git": repro.git_state(),
                "command": json.loads(command.read_text()) if command.exists() else None, "pace": pace(run_dir),
                "files": {name: _sha256(data) for name, data in files.items()}}
    out = pack_path(run_dir, relay_dir)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *files.items()]:
            info = tarfile.TarInfo(f"{run_dir.name}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    size_mib = buffer.getbuffer().nbytes / 2**20
    if max_mib and size_mib > max_mib:
        raise RelayError(f"{run_dir.name}: the pack would be {size_mib:.1f} MiB, over the {max_mib:g} MiB limit "
                         f"(results/relay/ is committed to git); write it elsewhere with --to DIR --max_mib 0")
    out.parent.mkdir(parents=True, exist_ok=True)  # not before: a refused pack leaves no empty folder behind
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out)
    return out


def read_manifest(path: Path) -> dict:
    """A pack's manifest (what run, which epoch, packed where and when, its command)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = [m.name for m in tar.getmembers() if m.name.endswith(f"/{MANIFEST}")]
            if len(names) != 1:
                raise RelayError(f"{path}: not a relay pack (no {MANIFEST})")
            return json.loads(tar.extractfile(names[0]).read())
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as e:
        raise RelayError(f"{path}: not a readable relay pack ({type(e).__name__}: {e})") from None


def unpack(path: Path, runs_dir: Path) -> tuple[Path, str]:
    """Unpack the pack `path` into <runs_dir>/<paper>/<run>/ and return (that directory, what was done).
    A run directory already there with the same or a later checkpoint is left alone (nothing to do); one with
    an earlier checkpoint, or none, is kept beside it as `<run>.replaced-<time>` and the pack takes its place.
    Every file is checked against the manifest's SHA-256 before anything is written."""
    path = Path(path)
    manifest = read_manifest(path)
    target = Path(runs_dir) / manifest["paper"] / manifest["run"]
    with tarfile.open(path, "r:gz") as tar:
        data = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    data.pop(MANIFEST)
    if set(data) != set(manifest["files"]):
        raise RelayError(f"{path}: its files differ from its manifest's list; the pack is damaged, pack the run again")
    bad = [name for name, blob in data.items() if _sha256(blob) != manifest["files"][name]]
    if bad:
        raise RelayError(f"{path}: {', '.join(bad)} do not match the manifest's SHA-256; the pack is damaged")
    if any(Path(name).is_absolute() or ".." in Path(name).parts for name in data):
        raise RelayError(f"{path}: a file name leaves the run directory; not unpacked")
    unit = (manifest.get("pace") or {}).get("unit", "epoch")
    kept = None
    if target.exists():
        if _held(target):
            raise RelayError(f"{target} is in use by a running process: stop it before unpacking over it")
        here = progress(target)
        if here is not None and here[0] >= manifest["epoch"]:
            return target, f"already here at {unit} {here[0]} (the pack has {unit} {manifest['epoch']}): left alone"
        kept = target.with_name(f"{target.name}.replaced-{int(time.time())}")
        os.replace(target, kept)
    staging = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    for name, blob in data.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(blob)
    staging.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    done = f"unpacked at {unit} {manifest['epoch']}, packed on {manifest['machine']} at {manifest['packed']}"
    if kept:
        done += f"; the copy that was here ({unit} {here[0] if here else 0}) is kept as {kept.name}"
    return target, done


def resume_command(command: dict | None, runs_dir: Path) -> str:
    """The command line that resumes the run: its own, with its runs directory pointed at `runs_dir` and the
    other machine-specific locations (data, results) left to this machine's defaults; a run started on
    another backend than TensorFlow (Keras' default) is resumed on it (`Run` refuses any other)."""
    if not command:
        return f"(no command.json: run the command that started it, with --runs_dir={runs_dir})"
    drop = ("--runs_dir=", "--data_dir=", "--results_dir=")
    args = [a for a in command["argv"][1:] if not a.startswith(drop)]
    return backend_env(command) + " ".join(["python", command["script"], *args, f"--runs_dir={runs_dir}"])


def backend_env(command: dict | None) -> str:
    """`KERAS_BACKEND=... ` for a run whose `command.json` names another backend than TensorFlow (Keras'
    default), else nothing: a command.json written before it named the backend is taken as TensorFlow's."""
    backend = (command or {}).get("backend", "tensorflow")
    return "" if backend == "tensorflow" else f"KERAS_BACKEND={backend} "


PACE_EPOCHS = 10  # the epochs an unfinished run's recent pace is the median of


def pace(run_dir: Path) -> dict:
    """How far an unfinished run goes and how fast it went lately: `epochs`, the epochs its `fit` was asked
    for (from its state; None for a state written before `training.RunClock` kept them), `epoch_s`, the
    median wall seconds of its last `PACE_EPOCHS` epochs in history.csv (None before its first), `of`, how
    many epochs that median is over, and `machine`, the machine of its latest session. A run of units
    (`Run.units`: a cross-validation's folds) has its units' count and name (`unit`) instead, and no pace."""
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    sessions = state.get("sessions")
    machine = sessions[-1].get("machine") if isinstance(sessions, list) and sessions else None
    units = state.get("units")
    if units:
        return {"epochs": units["of"], "unit": units["name"], "epoch_s": None, "of": 0, "machine": machine}
    times = []
    if (run_dir / "history.csv").exists():
        with (run_dir / "history.csv").open(newline="") as f:
            times = [float(row["epoch_time_s"]) for row in csv.DictReader(f)
                     if row.get("epoch_time_s") not in (None, "", "NA")]
    recent = times[-PACE_EPOCHS:]
    return {"epochs": state.get("epochs"), "epoch_s": round(statistics.median(recent), 1) if recent else None,
            "of": len(recent), "machine": machine}


def standing(epoch: int, pace: dict | None, where: str = "") -> str:
    """`epoch E of N` (`fold E of N` for a run of folds), then `where` (the run's place), then where the pace
    is known `; about H h left at S s an epoch (the median of its last K, on MACHINE)`: the time left assumes
    that the rest runs as fast on the same machine."""
    pace = pace or {}
    total, seconds = pace.get("epochs"), pace.get("epoch_s")
    said = f"{pace.get('unit', 'epoch')} {epoch}" + (f" of {total}" if total else "") + where
    if not seconds:
        return said
    left = (total - epoch) * seconds / 3600 if total else None
    return said + ("; " + (f"about {left:.1f} h left at " if left is not None else "")
                   + f"{seconds:.0f} s an epoch (the median of its last {pace['of']}"
                   + (f", on {pace['machine']}" if pace.get("machine") else "") + ")")


def in_flight(runs_dir: Path) -> list[dict]:
    """Every unfinished run under `runs_dir` (a `state.json` beside a checkpoint): paper, run, newest epoch,
    whether a process holds it, its command and its `pace`."""
    found = []
    for state in sorted(Path(runs_dir).glob("*/*/state.json")):
        run_dir = state.parent
        newest = progress(run_dir)
        command = run_dir / "command.json"
        found.append({"paper": run_dir.parent.name, "run": run_dir.name, "dir": run_dir,
                      "epoch": newest[0] if newest else 0, "running": _held(run_dir),
                      "command": json.loads(command.read_text()) if command.exists() else None,
                      "pace": pace(run_dir)})
    return found


def request_stop(run_dir: Path) -> str:
    """Ask the process training `run_dir` to stop after the epoch (or fold) it is in, once that epoch's
    checkpoint is written (`training.StopWhenAsked`: it takes the request away and exits with status 75).
    Refused in one line for a run no process holds and for one trained on several hosts."""
    run_dir = Path(run_dir)
    if not _held(run_dir):
        raise RelayError(f"{run_dir}: no process is training it, so there is nothing to stop")
    state = run_dir / "state.json"
    sessions = json.loads(state.read_text()).get("sessions", []) if state.exists() else []
    if sessions and isinstance(sessions[-1], dict) and (sessions[-1].get("hosts") or 1) > 1:
        raise RelayError(f"{run_dir}: it trains on several hosts, which a request cannot stop at one epoch; "
                         f"stop every host with Ctrl-C (kill -INT): each resumes from its last checkpoint")
    (run_dir / STOP_REQUEST).write_text(f"asked at {results.utc_now()}\n")
    newest = progress(run_dir)
    return (f"{run_dir}: asked to stop when epoch (or fold) {newest[0] + 1 if newest else 1} ends "
            f"(a run past its last epoch finishes instead)")


def wait_until_stopped(run_dirs: list[Path], poll_s: float = 2.0, say=print) -> None:
    """Return when no process holds any of `run_dirs`, saying where each stopped."""
    waiting = [Path(d) for d in run_dirs]
    while waiting:
        for run_dir in [d for d in waiting if not _held(d)]:
            newest = progress(run_dir)
            say(f"{run_dir}: stopped after epoch (or fold) {newest[0]}" if newest
                else f"{run_dir}: no longer running (finished, or stopped before its first epoch)")
            waiting.remove(run_dir)
        if waiting:
            time.sleep(poll_s)


def packs(relay_dir: Path = RELAY_DIR) -> list[Path]:
    return sorted(Path(relay_dir).glob(f"*/*{SUFFIX}"))


def stale_packs(results_dir: Path, relay_dir: Path) -> list[str]:
    """Packs whose run has a completed record written after the pack was made: the pack should have gone
    with that record (`Run.finish` deletes it)."""
    stale = []
    for path in packs(relay_dir):
        manifest = read_manifest(path)
        for record in results.load_all(results_dir, manifest["paper"], superseded=True):
            if results.run_name(record) == manifest["run"] and record["status"] == "completed" \
                    and record.get("finished", "") >= manifest["packed"]:
                stale.append(f"{path}: its run finished ({Path(record['_path']).name}); delete the pack")
    return stale


@one_line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.relay", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("pack", help="pack unfinished runs (stopped ones) into one file each")
    p.add_argument("run_dirs", nargs="*", type=Path, help="run directories (runs/<paper>/<run>)")
    p.add_argument("--all", action="store_true", help="every stopped unfinished run under --runs_dir")
    p.add_argument("--runs_dir", type=Path, default=Path("runs"))
    p.add_argument("--to", type=Path, default=RELAY_DIR, help="where packs go (default: results/relay/)")
    p.add_argument("--max_mib", type=float, default=GIT_LIMIT_MIB, help="refuse a larger pack (0: no limit)")
    u = sub.add_parser("unpack", help="unpack packs into --runs_dir, ready to resume")
    u.add_argument("packs", nargs="*", type=Path)
    u.add_argument("--all", action="store_true", help="every pack under --relay_dir")
    u.add_argument("--relay_dir", type=Path, default=RELAY_DIR)
    u.add_argument("--runs_dir", type=Path, default=Path("runs"))
    t = sub.add_parser("stop", help="ask running runs to stop after the epoch (or fold) they are in")
    t.add_argument("run_dirs", nargs="*", type=Path, help="run directories (runs/<paper>/<run>)")
    t.add_argument("--all", action="store_true", help="every run under --runs_dir that a process is training")
    t.add_argument("--runs_dir", type=Path, default=Path("runs"))
    t.add_argument("--wait", action="store_true", help="return only when each has stopped")
    s = sub.add_parser("list", help="the unfinished runs under --runs_dir and the packs under --relay_dir")
    s.add_argument("--runs_dir", type=Path, default=Path("runs"))
    s.add_argument("--relay_dir", type=Path, default=RELAY_DIR)
    args = ap.parse_args(argv)
    if args.action == "pack":
        dirs = list(args.run_dirs)
        for run in in_flight(args.runs_dir) if args.all else []:
            if run["epoch"]:
                dirs.append(run["dir"])
            else:
                print(f"{run['dir']}: no finished epoch yet, not packed")
        if not dirs and not args.all:
            raise RelayError("nothing to pack: name run directories, or --all for every one under --runs_dir")
        if not dirs:
            print(f"no stopped unfinished run with a finished epoch under {args.runs_dir}: nothing to pack")
        for run_dir in dirs:
            out = pack(run_dir, args.to, args.max_mib)
            manifest = read_manifest(out)
            print(f"{out}: epoch {manifest['epoch']}, {out.stat().st_size / 2**20:.2f} MiB")
    elif args.action == "stop":
        dirs = list(args.run_dirs) + [run["dir"] for run in in_flight(args.runs_dir) if args.all and run["running"]]
        if not args.run_dirs and not args.all:
            raise RelayError("nothing to stop: name run directories, or --all for every running one under --runs_dir")
        if not dirs:
            print(f"no process is training a run under {args.runs_dir}: nothing to stop")
        for run_dir in dirs:
            print(request_stop(run_dir), flush=True)
        if args.wait:
            wait_until_stopped(dirs)
    elif args.action == "unpack":
        chosen = list(args.packs) + (packs(args.relay_dir) if args.all else [])
        if not args.packs and not args.all:
            raise RelayError("nothing to unpack: name packs, or --all for every one under --relay_dir")
        if not chosen:  # --all on a machine with no run to carry over: nothing to do, not a mistake
            print(f"no packs under {args.relay_dir}: nothing to unpack")
        for path in chosen:
            target, done = unpack(path, args.runs_dir)
            print(f"{target}: {done}\n  resume: {resume_command(read_manifest(path)['command'], args.runs_dir)}")
    else:
        if not in_flight(args.runs_dir) and not packs(args.relay_dir):
            print(f"no unfinished run under {args.runs_dir}, no packs under {args.relay_dir}")
        for run in in_flight(args.runs_dir):
            now = (" (running, asked to stop)" if (run["dir"] / STOP_REQUEST).exists() else " (running)") \
                if run["running"] else ""
            print(f"{run['dir']}: {standing(run['epoch'], run['pace'], now)}\n"
                  f"  resume: {resume_command(run['command'], args.runs_dir)}")
        for path in packs(args.relay_dir):
            manifest = read_manifest(path)
            print(f"{path}: " + standing(manifest["epoch"], manifest.get("pace"),
                                         f", packed on {manifest['machine']} at {manifest['packed']}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

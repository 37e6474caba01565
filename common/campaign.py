"""Run several paper runs side by side for a fixed time, then keep what they reached: the finished runs'
results records, and each unfinished run packed to be resumed elsewhere (common.relay).

    python -m common.campaign --plan=ssgan-mnist --minutes=8 --out=$OUT        # on a lent GPU (JAX backend)
    python -m common.campaign --plan=smoke --minutes=2 --out=/tmp/campaign     # the same at smoke size, on a CPU

Made for a machine lent for minutes (the project's GPU sessions: 15 minutes of device time, at most 10 a
command, results back through $OUT): each run of the plan is `train.py` with its own runs and results folders
under OUT, started together (one GPU takes several small MNIST runs at once) and stopped, if still running at
the deadline, as a kill would stop it, so that it resumes from its last checkpoint. Then OUT holds, at most two
folders down and one file per run at most besides one summary (the device returns 8 files): `results/<paper>/
*.json` of the runs that finished, `relay/<paper>/<run>.tar.gz` of those that did not (each resumes with
`python -m common.relay unpack` and the command it prints, on any machine with the run's backend: JAX, as it
started), and `campaign.json`: what ran, for how
long, how each ended and the end of its log, and which of the plan's runs it passed over because results/
already holds their finished record. Checkpoints, logs and figures stay in --work.

Back here: copy `results/<paper>/*.json` into results/ and regenerate the reports; unpack the packs into runs/
(or commit them under results/relay/) and resume them. A semi-supervised GAN MNIST run's pack is 29 MiB (its
networks, their Adam moments and weight averages), more than a file the device returns: a draw that does not
finish within the call is lost (campaign.json says so), so the plan's length must fit the call.

On the project's GPU machine (JAX with CUDA, no Keras; Python 3.12), prepared once here:

    echo /.whl/ >> .git/info/exclude; echo /.gpu-data/ >> .git/info/exclude
    python ../shared/data/restore.py .gpu-data --only mnist
    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        keras==3.15.1 absl-py rich markdown-it-py mdurl pygments namex h5py optree ml-dtypes pandas \
        python-dateutil six tzdata

(about 33 MiB with the 24 MiB tree: matplotlib and pillow, which the run's figures need, are carried too when
the image lacks them, which the first command checks), then one `run` with carry [".whl", ".gpu-data"]:

    python3 -c "import matplotlib, PIL" || exit 3;
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax && python3 -m common.campaign --plan=ssgan-mnist \
        --minutes=8 --out=$OUT --data_dir=$PWD/.gpu-data
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import relay
from common.lifecycle import results
from common.lifecycle.config import command_run_dir
from common.lifecycle.results import utc_now

REPO = Path(__file__).resolve().parent.parent
RETURN_MIB = 16  # the largest file the device returns from $OUT (64 MiB in all)

# The plans: how many runs each starts together, and the runs it takes them from in order, passing over those
# that already have a finished record in the repository's results/ (a GPU's minutes are not spent on a run the
# CPUs finished). ssgan-mnist: the semi-supervised GAN's MNIST headline, label draws of the 100 labels at the
# paper's recipe (Table 1: 93 ± 6.5 test errors over 10 draws), the runs #47 ranks first after ResNet-20, three
# at once being what one GPU takes.
PLANS = {
    "ssgan-mnist": (3, [["semi_supervised_gan", "--dataset=mnist", "--labels=100", f"--data_seed={d}"]
                        for d in range(1, 11)]),
    "smoke": (2, [["semi_supervised_gan", "--preset=smoke", f"--data_seed={d}"] for d in (1, 2, 3)]),
}


def choose(plan: str, extra: list[str] = (), results_dir: Path = REPO / "results") -> tuple[list, list]:
    """The runs the plan starts (its first runs with no finished record under `results_dir`, as many as it
    starts together) and those it passed over, each as [paper, *args], with `extra` added to every command."""
    count, candidates = PLANS[plan]
    finished = {}
    chosen, passed = [], []
    for paper, *args in candidates:
        if len(chosen) == count:
            break
        if paper not in finished:
            finished[paper] = {results.run_name(r) for r in results.load_all(results_dir, paper)
                               if r["status"] == "completed"}
        run = [paper, *args, *extra]
        (passed if command_run_dir(paper, run[1:]) in finished[paper] else chosen).append(run)
    return chosen, passed


def launch(paper: str, args: list[str], out: Path, work: Path, env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "papers" / paper / "train.py"), *args,
               f"--runs_dir={work / 'runs'}", f"--results_dir={out / 'results'}"]
    handle = open(log, "w")  # noqa: SIM115  (the child writes it; closed when the process is reaped)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def run(plan: str, minutes: float, out: Path, work: Path, extra: list[str] = (), env: dict | None = None,
        results_dir: Path = REPO / "results") -> dict:
    """Start the plan's runs (`choose`), stop those still running after `minutes`, pack them; returns
    campaign.json's content."""
    out, work = Path(out), Path(work)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)  # campaign.json goes there even when no record or pack does
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    started, t0 = utc_now(), time.monotonic()
    chosen, passed = choose(plan, extra, results_dir)
    runs = []
    for i, (paper, *args) in enumerate(chosen):
        log = work / "logs" / f"{i}-{paper}.log"
        runs.append({"paper": paper, "args": args, "log": log,
                     "process": launch(paper, args, out, work, env, log)})
    deadline = t0 + 60 * minutes
    while time.monotonic() < deadline and any(r["process"].poll() is None for r in runs):
        time.sleep(1)
    for r in runs:
        if r["process"].poll() is None:  # as a preempted machine stops it: it resumes from its last checkpoint
            os.killpg(r["process"].pid, signal.SIGKILL)
            r["process"].wait()
            r["ended"] = "stopped at the deadline"
        else:
            r["ended"] = f"exit status {r['process'].returncode}"
        r["log_tail"] = r.pop("log").read_text(errors="replace").splitlines()[-15:]
    packed, lost = [], []
    for r in runs:  # each run stopped at the deadline, and any that ended early with a checkpoint to carry
        run_dir = work / "runs" / r["paper"] / command_run_dir(r["paper"], r["args"])
        if r["ended"] != "stopped at the deadline" and not (run_dir / "state.json").exists():
            continue
        try:
            packed.append(str(relay.pack(run_dir, out / "relay", max_mib=RETURN_MIB).relative_to(out)))
        except relay.RelayError as e:  # stopped before its first epoch's end, or too large to come back: say so
            lost.append(str(e))
    summary = {"plan": plan, "started": started, "minutes": round((time.monotonic() - t0) / 60, 2),
               "passed_over": [{"paper": paper, "args": args, "why": "a finished record in results/"}
                               for paper, *args in passed],
               "runs": [{k: v for k, v in r.items() if k != "process"} for r in runs],
               "records": sorted(str(p.relative_to(out)) for p in (out / "results").glob("*/*.json")),
               "packs": packed, "not_packed": lost}
    (out / "campaign.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.campaign", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", choices=sorted(PLANS), required=True)
    ap.add_argument("--minutes", type=float, required=True, help="stop what still runs after this long")
    ap.add_argument("--out", type=Path, required=True, help="what comes back: records, packs, campaign.json")
    ap.add_argument("--work", type=Path, default=Path("/tmp/campaign-work"), help="checkpoints, logs, figures")
    args, extra = ap.parse_known_args(argv)  # the rest, --key=value, goes to every run (e.g. --data_dir=...)
    if not args.minutes > 0:
        ap.error(f"--minutes must be above 0, got {args.minutes}")
    summary = run(args.plan, args.minutes, args.out, args.work, extra)
    for r in summary["passed_over"]:
        print(f"{r['paper']} {' '.join(r['args'])}: passed over ({r['why']})")
    for r in summary["runs"]:
        print(f"{r['paper']} {' '.join(r['args'])}: {r['ended']}")
    print(f"records: {len(summary['records'])}; packs: {', '.join(summary['packs']) or 'none'}")
    for line in summary["not_packed"]:
        print(f"not packed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

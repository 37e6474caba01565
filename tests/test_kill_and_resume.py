"""Kill-and-resume over every paper's smoke run, as a user's machine would do it: SIGKILL in the middle of
an epoch, while a checkpoint is written, just after one is complete, and while the results record is
written (tests/interrupt.py), then the same command again. The resumed run must finish with the final
metrics and history of an uninterrupted run under the same seed, bit for bit, in one results record,
with the killed session in it. The run killed just after a checkpoint is also carried to another machine
as `common.relay` does it: packed, its run directory deleted, unpacked from the pack alone, then resumed.

Each paper costs nine smoke processes, so all but ResNet's are `slow`;
`python -m pytest -m slow tests/test_kill_and_resume.py` runs them all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common import relay, report
from common.lifecycle import results
from tests.conftest import toy_classifier, write_cifar_folder, write_isbi2012, write_mnist_folder
from tests.interrupt import CHECKPOINT_SOURCE

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--verify_data=false", "--download=false"]


def _resnet(tmp):
    return "resnet", ["--preset=smoke", f"--data_dir={write_cifar_folder(tmp / 'cifar').parent}", *DATA]


def _unet(tmp):
    write_isbi2012(tmp / "isbi")
    return "unet", ["--preset=smoke", f"--data_dir={tmp / 'isbi'}", "--fold=4", "--verify_data=false"]


def _vae(tmp):
    return "vae", ["--preset=smoke", f"--data_dir={write_mnist_folder(tmp / 'mnist').parent}", *DATA]


def _dcgan(tmp):
    return "dcgan", ["--preset=smoke", f"--data_dir={write_cifar_folder(tmp / 'cifar').parent}", *DATA]


def _wgan(tmp):
    network = toy_classifier(tmp / "clf.keras", (32, 32, 3))
    return "wgan", ["--preset=smoke", f"--data_dir={write_cifar_folder(tmp / 'cifar').parent}", *DATA,
                    f"--feature_network={network}", "--feature_network_name=toy classifier"]


def _cgan(tmp):
    network = toy_classifier(tmp / "clf.keras", (32, 32, 1))
    return "cgan", ["--preset=smoke", f"--data_dir={write_mnist_folder(tmp / 'mnist').parent}", *DATA,
                    f"--feature_network={network}", "--feature_network_name=toy classifier"]


def _semi_supervised_gan(tmp):
    return "semi_supervised_gan", ["--preset=smoke", f"--data_dir={write_mnist_folder(tmp / 'mnist').parent}", *DATA]


def _emotion_transfer(scheme):
    def prepare(tmp):
        from common.data import fer2013
        from tests.papers.test_emotion_transfer import _ck_tree, _fer_csv, _random_weights

        _ck_tree(tmp / "data")
        _fer_csv(tmp / "data" / fer2013.FOLDER / "fer2013.csv")
        return "emotion_transfer", ["--preset=smoke", f"--scheme={scheme}", f"--data_dir={tmp / 'data'}",
                                    "--verify_data=false", f"--imagenet_weights={_random_weights(tmp)}"]
    return prepare


def _speech_emotion(tmp):
    from tests.papers.test_speech_emotion import _ravdess_tree

    _ravdess_tree(tmp / "data", actors=range(1, 9), rate=16_000)
    return "speech_emotion", ["--preset=smoke", f"--data_dir={tmp / 'data'}", "--verify_data=false", "--folds=4",
                              "--max_folds=0", "--max_per_speaker_and_class=2"]


PAPERS = {"resnet": _resnet, "unet": _unet, "vae": _vae, "dcgan": _dcgan, "wgan": _wgan, "cgan": _cgan,
          "semi_supervised_gan": _semi_supervised_gan, "emotion_transfer-fer": _emotion_transfer("fer"),
          "emotion_transfer-a": _emotion_transfer("a"), "speech_emotion": _speech_emotion}
FAST = {"resnet"}


def _launch(paper: str, argv: list[str], where: Path, kill: dict | None = None, trace: Path | None = None):
    spec = where / f"spec-{len(list(where.glob('spec-*')))}.json"
    spec.write_text(json.dumps({"paper": paper, "argv": [*argv, f"--results_dir={where / 'results'}",
                                                           f"--runs_dir={where / 'runs'}"],
                                "kill": kill, "trace": str(trace) if trace else None}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "tests.interrupt", str(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def _kill_points(trace: dict) -> dict[str, int]:
    """The step in the middle of the run that is inside an epoch (not its first or last step), preferring
    an epoch after the first, so that a checkpoint precedes it; the last checkpoint save; the moment just
    after the last but one checkpoint (the first when there is one), when the run has more to do."""
    steps = trace["steps"]
    inside = [i for i, (_, epoch, step, count) in enumerate(steps) if count and 0 < step < count - 1]
    later = [i for i in inside if steps[i][1] > 0] or inside or list(range(len(steps)))
    middle = min(later, key=lambda i: abs(i - len(steps) / 2))
    saves = [n for n in trace["replaced"] if CHECKPOINT_SOURCE.match(n)]
    return {"batch": middle + 1, "save": len(saves), "saved": max(len(saves) - 1, 1), "results": 1}


def _numbers(record: dict) -> dict:
    """What an uninterrupted run and a resumed one must share: every number of the final metrics and the
    history, leaving out clocks, speeds, memory use and file names."""
    def keep(key: str) -> bool:
        return not (key.endswith(("_s", "_file")) or any(part in key for part in ("_s_", "per_s", "time", "sha256",
                                                                                   "rss", "over_step")))
    final = {k: v for k, v in record["final"].items() if keep(k) and not isinstance(v, str)}
    history = [{k: v for k, v in row.items() if keep(k)} for row in record["history"]]
    return {"final": final, "history": history}


@pytest.mark.parametrize("case", [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
                                  for name in PAPERS])
def test_a_killed_smoke_run_resumes_to_the_uninterrupted_numbers(case, tmp_path):
    paper, argv = PAPERS[case](tmp_path / "data-files")
    plain = tmp_path / "uninterrupted"
    plain.mkdir()
    done = _launch(paper, argv, plain, trace=plain / "trace.json")
    assert done.returncode == 0, done.stderr[-3000:]
    (expected,) = results.load_all(plain / "results", paper)
    points = _kill_points(json.loads((plain / "trace.json").read_text()))
    assert points["save"] > 0, "the run saved no checkpoint"
    for at, n in points.items():
        where = tmp_path / f"killed-at-{at}"
        where.mkdir()
        killed = _launch(paper, argv, where, kill={"at": at, "n": n})
        assert killed.returncode == -signal.SIGKILL, f"{at}: {killed.stderr[-3000:]}"
        assert not results.load_all(where / "results", paper)
        if at == "saved":
            _relay(where)
        resumed = _launch(paper, argv, where)
        assert resumed.returncode == 0, f"{at}: {resumed.stderr[-3000:]}"
        assert "Traceback" not in resumed.stderr, f"{at}: {resumed.stderr[-3000:]}"
        problems = []
        (record,) = results.load_all(where / "results", paper, problems=problems)
        assert not problems and not list((where / "results" / paper).glob(".tmp-*")), at
        assert record["status"] == "completed" and record["variant"] == expected["variant"], at
        if at != "batch":  # a kill in the first epoch comes before the session was first saved
            assert len(record["sessions"]) == 2, at
        got, want = _numbers(record), _numbers(expected)
        differ = {k: (got["final"].get(k), want["final"].get(k)) for k in {*got["final"], *want["final"]}
                  if got["final"].get(k) != want["final"].get(k)}
        assert not differ and got["history"] == want["history"], \
            f"killed at {at} #{n}: the resumed run differs (resumed, uninterrupted): {differ or got['history']}"
        assert record["variant"] in report.report_for(str(where / "results"), paper), at
        if at == "saved":  # the pack went with the record; both sessions name their machine
            assert not relay.packs(where / "results" / "relay")
            assert all(s["machine"] for s in record["sessions"])


def _relay(where: Path) -> None:
    """Pack every run under where/runs into where/results/relay, delete where/runs, unpack the packs there. No
    size limit: the trip is what is tested, and a smoke run of the full-size networks (the semi-supervised
    GAN's: 45 MiB) is over the 4 MiB that git takes."""
    runs, packs = where / "runs", where / "results" / "relay"
    assert relay.main(["pack", "--all", f"--runs_dir={runs}", f"--to={packs}", "--max_mib=0"]) == 0
    shutil.rmtree(runs)
    assert relay.main(["unpack", "--all", f"--relay_dir={packs}", f"--runs_dir={runs}"]) == 0


@pytest.mark.slow
def test_a_killed_data_parallel_run_on_4_jax_devices_resumes_to_the_uninterrupted_numbers(tmp_path, monkeypatch):
    """The same for ResNet's smoke run with --distribute=data_parallel on 4 JAX host devices
    (common.lifecycle.distribute): checkpoints of replicated weights resume as a single device's do, and
    every session says 4 devices."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

    def resnet_on_4_devices(tmp):
        paper, argv = _resnet(tmp)
        return paper, [*argv, "--distribute=data_parallel"]

    monkeypatch.setitem(PAPERS, "resnet-4-devices", resnet_on_4_devices)
    test_a_killed_smoke_run_resumes_to_the_uninterrupted_numbers("resnet-4-devices", tmp_path)
    for where in tmp_path.glob("killed-at-*"):
        (record,) = results.load_all(where / "results", "resnet")
        assert record["distribution"]["replicas"] == 4 and {s["devices"] for s in record["sessions"]} == {4}

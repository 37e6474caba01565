"""Training speed of ResNet-20 here against a PyTorch peer on the same machine, measured alternately in
one process tree, as a results JSON (the report's "Speed against a PyTorch peer" table).

    pip install -r requirements-peer.txt        # PyTorch, for the peer only (never imported by the library)
    python papers/resnet/peer_benchmark.py
    python papers/resnet/peer_benchmark.py --kinds=tensorflow,torch-channels-last --repeats=5

Kinds (each measured in its own process, in turn, `repeats` times, the order rotated each round):
  tensorflow, jax           this repository's train step as train.py builds it (papers/resnet: build_model and
                            compile_model, `fit` on arrays in memory) on that Keras backend
  torch, torch-channels-last  peers/resnet_torch.py: the same ResNet (option A, 269,722 parameters) and
                            step (cross-entropy, SGD momentum 0.9, weight decay 1e-4 on every parameter) in
                            PyTorch, NCHW or channels-last; with --torch_compile, `torch.compile`d
  tensorflow/FIELD=VALUE/...  ours with settings of train.py changed, to measure a lever in the same
                            alternation (tensorflow/deterministic=false, tensorflow/jit_compile=true)
  torch-channels-last-bf16  the peer under bfloat16 autocast, beside tensorflow/precision=mixed_bfloat16
  KIND/VARIABLE=VALUE       any kind run with one of the environment variables of THREAD_VARIABLES set
                            (thread pools, oneDNN): tensorflow/TF_NUM_INTRAOP_THREADS=1,
                            torch-channels-last/OMP_NUM_THREADS=1
All take batches of `batch_size` random 32x32x3 images in fp32; the first `warmup_steps` (compilation,
caches) are not timed. The record keeps every measurement, the best of each kind, and each of ours / the best
peer of the same precision.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.lifecycle import config as cfg
from common.lifecycle import repro, results
from common.lifecycle.config import param
from common.lifecycle.run import timing_fields, write_benchmark
from papers.resnet.config import ResNetConfig

PAPER = "resnet"
ROOT = Path(__file__).resolve().parents[2]
OURS = ("tensorflow", "jax")
PEERS = ("torch", "torch-channels-last", "torch-channels-last-bf16")
# Environment variables a kind may set (KIND/VARIABLE=VALUE): common.lifecycle.repro's, OMP_NUM_THREADS being PyTorch's
# intra-op pool.
THREAD_VARIABLES = repro.THREAD_VARIABLES


def _split(kind: str) -> tuple[str, list[str], dict[str, str]]:
    """(backend or peer, train.py settings FIELD=VALUE, environment variables) of a kind."""
    name, *options = kind.split("/")
    variables = dict(o.split("=", 1) for o in options if o.split("=")[0] in THREAD_VARIABLES and "=" in o)
    return name, [o for o in options if o.split("=")[0] not in variables], variables


@dataclass(frozen=True)
class PeerBenchmarkConfig(timing_fields(30, 5, 3), ResNetConfig):
    kinds: str = param("tensorflow,jax,torch,torch-channels-last", "what to time, comma-separated: "
                       "tensorflow, jax (ours, optionally with /FIELD=VALUE settings), torch, "
                       "torch-channels-last, torch-channels-last-bf16 (the PyTorch peer; bf16: autocast, to set "
                       "beside ours with /precision=mixed_bfloat16)")
    torch_compile: bool = param(False, "torch.compile the peer's train step (for a GPU)")
    child: str = param("", "internal: measure this one kind of ours in this process and print it as JSON")

    def validate(self) -> None:
        super().validate()
        fields = {f.name for f in dataclasses.fields(ResNetConfig)}
        unknown = [k for k in self.kind_list if _split(k)[0] not in OURS + PEERS
                   or (_split(k)[0] in PEERS and _split(k)[1])
                   or any(o.split("=")[0] not in fields or "=" not in o for o in _split(k)[1])]
        if unknown or not self.kind_list:
            raise cfg.ConfigError(f"--kinds: {', '.join(unknown) or 'none given'}; choose from "
                                  f"{', '.join(OURS + PEERS)}, ours optionally with settings of train.py "
                                  f"(tensorflow/deterministic=false/jit_compile=true), any with environment "
                                  f"variables of {', '.join(THREAD_VARIABLES)} (tensorflow/TF_NUM_INTRAOP_THREADS=1)")

    @property
    def kind_list(self) -> list[str]:
        return [k.strip() for k in self.kinds.split(",") if k.strip()]


def measure_ours(config: PeerBenchmarkConfig) -> dict:
    """Images/s of our train step on the backend this process runs (KERAS_BACKEND)."""
    import common.tf_env  # noqa: F401

    import keras
    import numpy as np

    from common.lifecycle.repro import seed_everything
    from common.lifecycle.training import speed_settings
    from papers.resnet.benchmark import _timed_fit
    from papers.resnet.model import build_model, compile_model

    seed_everything(config.seed, config.deterministic)
    speed_settings(config)
    bs, total = config.batch_size, config.warmup_steps + config.steps
    rng = np.random.default_rng(config.seed)
    x = rng.standard_normal((total * bs, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, total * bs)
    model = compile_model(build_model(config.depth, weight_decay=config.weight_decay,
                                      precision=config.precision), config)
    rate = _timed_fit(model, config.steps, config.warmup_steps, bs, x=x, y=y, batch_size=bs, shuffle=False)
    return {"images_per_s": rate, "backend": keras.backend.backend(), "keras": keras.__version__,
            "environment": repro.thread_environment(),
            "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(ResNetConfig)}}


def _command(kind: str, config: PeerBenchmarkConfig, argv: list[str]) -> tuple[list[str], dict]:
    backend, settings, variables = _split(kind)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **variables}
    if backend in OURS:
        env["KERAS_BACKEND"] = backend
        return [sys.executable, str(Path(__file__)), *argv, *(f"--{o}" for o in settings), f"--child={backend}"], env
    return ([sys.executable, str(ROOT / "peers" / "resnet_torch.py"), f"--depth={config.depth}",
             f"--batch_size={config.batch_size}", f"--steps={config.steps}", f"--warmup_steps={config.warmup_steps}",
             *(["--channels_last"] if backend.startswith("torch-channels-last") else []),
             *(["--bf16"] if backend.endswith("-bf16") else []),
             *(["--compile"] if config.torch_compile else [])], env)


def _measure(kind: str, config: PeerBenchmarkConfig, argv: list[str]) -> dict:
    command, env = _command(kind, config, argv)
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        if "No module named 'torch'" in done.stderr:  # the user's to fix: one line, exit status 2
            raise cfg.ConfigError(f"{kind}: PyTorch is not installed; pip install -r requirements-peer.txt, or "
                                  f"leave the peer out with --kinds")
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        if done.returncode == 2 and errors:  # a bad setting in the kind, refused by train.py's config
            raise cfg.ConfigError(f"{kind}: {errors[-1].removeprefix('error: ')}")
        raise RuntimeError(f"{kind}: the measurement failed (exit status {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def _precision(kind: str) -> str:
    """The arithmetic a kind trains in: bfloat16 (ours with /precision=mixed_bfloat16, the -bf16 peer) or float32."""
    return "bfloat16" if _split(kind)[0].endswith("-bf16") or "precision=mixed_bfloat16" in kind else "float32"


def run(config: PeerBenchmarkConfig, preset: str = "", argv: list[str] | None = None) -> int:
    if config.child:
        print(json.dumps(measure_ours(config)))
        return 0
    started, t0 = results.utc_now(), time.perf_counter()
    argv = [a for a in (argv or []) if not a.startswith("--child=")]
    kinds = config.kind_list
    measured: dict[str, list[float]] = {k: [] for k in kinds}
    facts: dict[str, dict] = {}
    for round_ in range(config.repeats):
        for kind in kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]:
            out = _measure(kind, config, argv)
            measured[kind].append(out.pop("images_per_s"))
            facts[kind] = out
            print(f"  round {round_ + 1}/{config.repeats}  {kind:20s} {measured[kind][-1]:7.1f} images/s", flush=True)
    best = {k: max(v) for k, v in measured.items()}
    # Each of ours is set beside the best peer of its own arithmetic: float32, or bfloat16 mixed precision.
    by_precision: dict[str, str] = {}
    for precision in ("float32", "bfloat16"):
        peers = {k: v for k, v in best.items() if _split(k)[0] in PEERS and _precision(k) == precision}
        if peers:
            by_precision[precision] = max(peers, key=peers.get)
    ours = [k for k in kinds if _split(k)[0] in OURS]
    versus = {k: by_precision[_precision(k)] for k in ours if _precision(k) in by_precision}
    ratios = {f"ratio_{k}_vs_best_peer": best[k] / best[p] for k, p in versus.items()}
    final = {"images_per_s": best, "all_measurements": measured, "best_peer": by_precision.get("float32"),
             "best_peer_by_precision": by_precision, **ratios, "title": "Speed against a PyTorch peer",
             "summary": {**{f"{k} (img/s)": f"{v:.0f}" for k, v in best.items()},
                         **{f"{k} / {p}": f"{best[k] / best[p]:.2f}x" for k, p in versus.items()},
                         "batch": str(config.batch_size), "steps x repeats": f"{config.steps} x {config.repeats}"}}
    line = f"{config.variant}, batch {config.batch_size}: " + ", ".join(f"{k} {v:.0f}" for k, v in best.items())
    line += " images/s" + "".join(f"; {k} / {p} = {best[k] / best[p]:.2f}x" for k, p in versus.items())
    return write_benchmark(config, PAPER, started, time.perf_counter() - t0, final, line=line, kinds=facts,
                           description="Images per second of the full ResNet-20 train step (forward, backward, SGD "
                           "with momentum and weight decay), fp32 unless the kind says bfloat16 (each of ours set "
                           "beside the best peer of its precision), random data, best of the alternating repeats, "
                           "compilation excluded; ours (Keras 3) on each backend and the hand-written PyTorch "
                           "peer (peers/resnet_torch.py) measured in turn on the same machine "
                           "(papers/resnet/peer_benchmark.py).")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return cfg.cli_main(PeerBenchmarkConfig, {}, lambda config, preset: run(config, preset, argv), argv,
                        description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

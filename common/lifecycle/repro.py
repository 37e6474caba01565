"""Seeding and the facts about a run's environment that its results must record.

Keras is imported inside the functions, so that the report generator starts without it."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]  # common/lifecycle/repro.py -> the repository


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend in one call; on TensorFlow also ask for
    deterministic kernels so that a resumed run matches an uninterrupted one."""
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def git_state(root: Path = REPO_ROOT) -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        # Dirty means the code differs from the commit; generated reports and results do not count.
        code = ["*.py", "requirements*.txt", "pyproject.toml", "papers/*/paper.json"]
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *code).stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


# Every library a reported number can depend on (its distribution name on PyPI). A record lists those
# installed, so that a number computed by scikit-learn's SVM or librosa's MFCCs names their versions too.
LIBRARIES = ("numpy", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "scipy", "scikit-learn", "pandas",
             "tifffile", "pillow", "matplotlib", "librosa", "praat-parselmouth", "soundfile", "soxr",
             "tensorflow-datasets", "h5py")


# Environment variables that set how the backend computes on the CPU, read when it starts: TensorFlow's two thread
# pools, its oneDNN kernels (common.tf_env turns them on), OpenMP's threads and XLA's flags (JAX's CPU threads:
# --xla_cpu_multi_thread_eigen=false). Speed depends on them, so a record names those that were set.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS",
                    "XLA_FLAGS")


def thread_environment() -> dict:
    """The variables of `THREAD_VARIABLES` set in this process, with their values."""
    return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}


def usable_cores() -> int:
    """The cores this process may run on: fewer than the machine's when it was pinned (`taskset -c 0 ...`),
    which sets its speed as a thread pool's size does."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def library_versions() -> dict:
    """Python, the Keras backend and the version of every installed library in `LIBRARIES`."""
    from importlib import metadata

    import keras

    versions = {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__}
    for name in LIBRARIES:
        try:
            versions.setdefault(name, metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        versions["tf_onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return versions


def is_code(path: str) -> bool:
    """Whether a change to this file can change what a run computes: every file but the Markdown ones
    (a paper's README.md and its generated REPORT.md), which no run reads."""
    return not path.endswith(".md")


def changed_files(commits: list[str], paths: list[str], root: Path = REPO_ROOT) -> list[str] | None:
    """Files under `paths` that differ between consecutive `commits` (a run resumed under new code),
    documentation left out (`is_code`); None when git cannot tell (no repository, or a commit it does
    not have)."""
    changed: set[str] = set()
    for a, b in zip(commits, commits[1:], strict=False):
        if a == b:
            continue
        try:
            out = subprocess.run(["git", "diff", "--name-only", a, b, "--", *paths], cwd=root,
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return None
        changed.update(line for line in out.stdout.splitlines() if line and is_code(line))
    return sorted(changed)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_name() -> str:
    """This machine's CPU as records name it: model and core count."""
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


def device_info() -> dict:
    """What the backend computes on: accelerator name(s) if any, else the CPU model."""
    import keras

    backend = keras.backend.backend()
    accelerators = []
    if backend == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            accelerators.append(details.get("device_name", gpu.name))
    info = {"backend": backend, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "accelerators": accelerators,
            "environment": thread_environment()}
    info["name"] = accelerators[0] if accelerators else cpu_name()
    return info

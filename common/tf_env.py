"""TensorFlow's environment, set before Keras loads TensorFlow. Entry points import this first:

    import common.tf_env  # noqa: F401

(ruff's import order puts it in a section of its own, above third-party imports). Variables a user
has already set are left alone. On the JAX backend nothing here has any effect.
"""

import os

# TensorFlow's C++ start-up messages (CPU feature notes) bury the training log; warnings still show.
_USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TensorFlow enables its oneDNN CPU kernels by default only on some Intel CPUs. On the project's 2-core
# AMD EPYC the ResNet-20 train step ran 2.4x faster with them (516 against 217 images/s, measured in turn:
# results/resnet/resnet20_benchmark_seed0_20261130T145426Z.json). Set TF_ENABLE_ONEDNN_OPTS=0 to turn them
# off; results JSONs record the setting.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr sent to /dev/null meanwhile: its C++ start-up lines (absl's
    "All log messages before absl::InitializeLog()" and the oneDNN note, twice) are written before any log
    level applies. Python errors of the import still show (they are raised after stderr is back). Skipped when
    the user set TF_CPP_MIN_LOG_LEVEL (to see them), or the backend is not TensorFlow."""
    if _USER_LOG_LEVEL or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # Keras says what is missing when it imports it
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

"""TensorFlow's environment, set before Keras loads TensorFlow. Entry points import this first:

    import common.tf_env  # noqa: F401

(ruff's import order puts it in a section of its own, above third-party imports). Variables a user
has already set are left alone. On the JAX backend nothing here has any effect.
"""

import os

# TensorFlow's C++ start-up messages (CPU feature notes) bury the training log; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TensorFlow enables its oneDNN CPU kernels by default only on some Intel CPUs. On the project's 2-core
# AMD EPYC ResNet-20 train steps ran faster with them (a measurement of an early session, not kept as a
# record). Set TF_ENABLE_ONEDNN_OPTS=0 to turn them off; results JSONs record the setting.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

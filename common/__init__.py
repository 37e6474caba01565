"""Plumbing shared by every paper: config, data, seeding, training callbacks, results, reports."""

from common import tf_env  # noqa: F401  (before anything below can load TensorFlow)

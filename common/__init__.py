"""Plumbing shared by every paper: config, data, seeding, training callbacks, results, reports."""

import os

# TensorFlow's C++ start-up messages (CPU feature notes) bury the training log; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

"""Shared fixtures: small datasets written in the publishers' own formats, so that the real loaders
are exercised without any download. Counts and class balance are the official ones (the loaders
check them); pixel values are synthetic."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

# XLA's backend optimisations off for the tests (a user's own XLA_FLAGS win): on JAX most of a test's
# time is compiling tiny programs, not running them. The compiled programs compute the same functions;
# no test measures speed. TensorFlow compiles with XLA only where a test asks. With this, and the train-step
# tests of ResNet-20 and the VAE at the default jit_compile=auto (on JAX, "false" ran every operation on its
# own), the JAX subset took 304 s (527 s of CPU) against 463 s (786 s) at 8630ddc, in turn on a 2-core Xeon
# beside a nice-10 training run (2026-12-03).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import common.tf_env  # noqa: F401

import keras
import numpy as np
import pytest

from common.data import cifar10, frey_face, isbi2012, mnist

REPO = Path(__file__).resolve().parent.parent


def write_cifar_folder(root: Path, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with 5 x 10,000 train and 10,000 test images, 1,000 / 5,000 per class."""
    rng = np.random.default_rng(seed)
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, n, batch in [*((f, 10_000, i) for i, f in enumerate(cifar10.TRAIN_FILES)),
                           ("test_batch", 10_000, 9)]:
        labels = rng.permutation(np.repeat(np.arange(10), n // 10))
        # Class-dependent mean brightness, so that a model can learn something in a smoke run.
        data = rng.integers(0, 96, (n, 3072), dtype=np.uint8) + (16 * labels).astype(np.uint8)[:, None]
        names = [f"img_{batch}_{i:05d}.png".encode() for i in range(n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                         b"filenames": names}, f, protocol=4)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in cifar10.CLASSES], b"num_cases_per_batch": 10_000,
                     b"num_vis": 3072}, f)
    return folder


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_folder(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / mnist.FOLDER
    folder.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        labels = rng.permutation(np.repeat(np.arange(10), mnist.CLASS_COUNTS[split]))
        images = np.zeros((len(labels), 28, 28), np.uint8)
        images[:, 4:24, 4:24] = (25 * labels)[:, None, None]
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def write_frey_face(root: Path, seed: int = 0) -> np.ndarray:
    """frey_rawface.mat as the publisher's: variable ff, uint8 560 x 1965, one row-major 28x20 frame per column."""
    import scipy.io

    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 230, (frey_face.N_IMAGES, 28, 20), dtype=np.uint8)
    frames[:, 8:12, 4:16] = rng.integers(0, 60, (frey_face.N_IMAGES, 1, 1), dtype=np.uint8)  # a "mouth" that varies
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / frey_face.FILE.name, {"ff": frames.reshape(frey_face.N_IMAGES, -1).T})
    return frames


def _written(tmp_path_factory, write) -> Path:
    """A fresh folder with `write`'s fake dataset in it."""
    root = tmp_path_factory.mktemp(write.__name__)
    write(root)
    return root


@pytest.fixture(scope="session")
def frey_root(tmp_path_factory) -> Path:
    return _written(tmp_path_factory, write_frey_face)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    return _written(tmp_path_factory, write_cifar_folder)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    return _written(tmp_path_factory, write_mnist_folder)


def write_isbi2012(root: Path) -> None:
    """The three ISBI 2012 stacks as multi-page 8-bit TIFFs of 30 x 512 x 512: square cells of 30 pixels
    separated by 2-pixel membranes (labels 255 / 0), the image a noisy copy of the labels."""
    import tifffile

    folder = root / isbi2012.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.full(isbi2012.SHAPE, 255, np.uint8)
    labels[:, ::32] = labels[:, :, ::32] = labels[:, 1::32] = labels[:, :, 1::32] = 0
    image = np.clip(labels * 0.6 + 40 + rng.normal(0, 20, isbi2012.SHAPE), 0, 255).astype(np.uint8)
    tifffile.imwrite(folder / "train-volume.tif", image)
    tifffile.imwrite(folder / "train-labels.tif", labels)
    tifffile.imwrite(folder / "test-volume.tif", image[::-1])


@pytest.fixture(scope="session")
def isbi_root(tmp_path_factory) -> Path:
    return _written(tmp_path_factory, write_isbi2012)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real datasets, where CI restored them (KPB_DATA_DIR); tests that need them skip otherwise."""
    path = os.environ.get("KPB_DATA_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("real datasets not available: set KPB_DATA_DIR to a directory restored by "
                    "../shared/data/restore.py (.ci/run does this when ../shared exists)")
    return Path(path)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """No test may reach a download: keras.utils.get_file fails loudly unless a test replaces it."""
    import keras

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download a file")

    monkeypatch.setattr(keras.utils, "get_file", refuse)


def toy_classifier(path: Path, shape: tuple[int, ...]) -> Path:
    """A tiny saved softmax classifier of `shape` images, to stand in for a GAN paper's score network."""
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input(shape)
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden)).save(path)
    return path


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Ctrl-C at the end of the first epoch, after the callbacks before it (the checkpoint's included) have run."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt



def smoke_config(config_cls, presets, data_root: Path, folder: Path, **overrides):
    """A `smoke`-preset config that reads the fake data in `data_root` (no checksum, no download) and
    writes its run and results under `folder`."""
    from common.lifecycle.config import make_config

    return make_config(config_cls, presets, "smoke", data_dir=str(data_root), verify_data=False, download=False,
                       results_dir=str(folder / "results"), runs_dir=str(folder / "runs"), **overrides)


def smoke_record(train, config) -> dict:
    """Train `config` (a smoke config) with the paper's `train.train`; the run's one results record, which
    must say it completed."""
    from common.lifecycle import results

    assert train.train(config, "smoke") == 0
    (record,) = results.load_all(config.results_dir, type(config).__module__.split(".")[1])
    assert record["status"] == "completed"
    return record


def toy_score_network(folder: Path, shape: tuple[int, ...]) -> dict:
    """The config fields that score a GAN's samples with a `toy_classifier` saved in `folder`."""
    return {"feature_network": str(toy_classifier(folder / "clf.keras", shape)),
            "feature_network_name": "toy classifier"}


def straight_and_resumed(train, make, paper: str, kill=None) -> tuple[dict, dict]:
    """The records of a run trained straight through and of the same run killed (`kill`: a callback
    raising KeyboardInterrupt, by default after the first epoch) and then resumed by the same command;
    `make(name)` makes each run's config in its own folder. The killed session writes no record."""
    from common.lifecycle import results

    straight, resumed = make("straight"), make("resumed")
    assert train.train(straight, "smoke") == 0
    with pytest.raises(KeyboardInterrupt):
        train.train(resumed, "smoke", extra_callbacks=[kill or InterruptAfterFirstEpoch()])
    assert not results.load_all(resumed.results_dir, paper)  # nothing written for the killed session
    assert train.train(resumed, "smoke") == 0
    (a,), (b,) = results.load_all(straight.results_dir, paper), results.load_all(resumed.results_dir, paper)
    return a, b

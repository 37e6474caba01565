"""Frey Face (Brendan Frey; distributed by Sam Roweis): 1,965 grey-scale 28x20 frames of one face,
in the publisher's MATLAB file `frey_rawface.mat` (variable `ff`, uint8, 560 x 1965, one frame per
column, each frame stored row by row).

The dataset has no official split. We follow the first author's released VAE code
(dpkingma/nips14-ssl, `gpulearn_z_x.py`: 1,600 shuffled frames for training, the rest held out),
with a permutation fixed by `SPLIT_SEED` so that every run and every machine holds out the same
365 frames.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, RemoteFile, data_dir, fetch, md5sum

FILE = RemoteFile("frey_rawface.mat", "https://cs.nyu.edu/~roweis/data/frey_rawface.mat",
                  "5aeb024d42b8a6091f30e5eb18c8a48d")
N_IMAGES, HEIGHT, WIDTH = 1965, 28, 20
SPLIT_SEED = 0


@dataclass(frozen=True)
class FreyFace:
    x_train: np.ndarray  # uint8, (n_train, 28, 20)
    x_test: np.ndarray  # uint8, (1965 - n_train, 28, 20)
    source: str
    checksums: dict  # {file: "md5:..."}
    verified: bool  # whether the file is the publisher's (its md5)


def load_all(data_dir_: str | None = None, download: bool = True) -> np.ndarray:
    """All 1,965 frames in file order, uint8 (1965, 28, 20)."""
    return _load_all(data_dir_, download)[0]


def _load_all(data_dir_, download):
    import scipy.io

    root = data_dir(data_dir_)
    path = fetch(FILE, root, download, what="Frey Face")
    md5 = md5sum(path)
    try:
        ff = scipy.io.loadmat(path)["ff"]
    except (ValueError, OSError, KeyError, IndexError, TypeError, zlib.error) as e:
        raise DataError(f"{path} is corrupt or not the Frey Face file ({type(e).__name__}: {e}); it was "
                        f"left as it is. Replace it with {FILE.url} (md5 {FILE.md5}).") from e
    if ff.shape != (HEIGHT * WIDTH, N_IMAGES) or ff.dtype != np.uint8:
        raise DataError(f"{path}: variable ff is {ff.dtype} {ff.shape}, expected uint8 "
                        f"({HEIGHT * WIDTH}, {N_IMAGES}). Replace it with {FILE.url} (md5 {FILE.md5}).")
    return np.ascontiguousarray(ff.T).reshape(N_IMAGES, HEIGHT, WIDTH), md5


def load(data_dir_: str | None = None, download: bool = True, n_train: int = 1600, verify: bool = True) -> FreyFace:
    if not 0 < n_train < N_IMAGES:
        raise ValueError(f"n_train must be between 1 and {N_IMAGES - 1}, got {n_train}")
    images, md5 = _load_all(data_dir_, download)
    if verify and md5 != FILE.md5:
        raise DataError(f"{data_dir(data_dir_) / FILE.name} is not the publisher's Frey Face file (md5 {md5}, expected "
                        f"{FILE.md5}); it was left as it is. Replace it with {FILE.url}.")
    order = np.random.default_rng(SPLIT_SEED).permutation(N_IMAGES)
    return FreyFace(images[np.sort(order[:n_train])], images[np.sort(order[n_train:])],
                    str(data_dir(data_dir_) / FILE.name), checksums={FILE.name: f"md5:{md5}"},
                    verified=md5 == FILE.md5)

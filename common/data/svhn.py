"""SVHN, cropped digits (Netzer et al. 2011), from the publisher's MATLAB files `train_32x32.mat` and
`test_32x32.mat` (variables X: uint8 32 x 32 x 3 x N, y: N x 1 with labels 1-10, 10 standing for the
digit 0). Each file is verified against the publisher's md5; a missing one is downloaded when allowed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, RemoteFile, data_dir, fetch, md5sum

FOLDER = "svhn"
_BASE = "http://ufldl.stanford.edu/housenumbers/"
FILES = {"train": RemoteFile(f"{FOLDER}/train_32x32.mat", _BASE + "train_32x32.mat",
                             "e26dedcc434d2e4c54c9b2d4a06d8373"),
         "test": RemoteFile(f"{FOLDER}/test_32x32.mat", _BASE + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")}
COUNTS = {"train": 73_257, "test": 26_032}


@dataclass(frozen=True)
class SVHN:
    x_train: np.ndarray  # uint8 (73257, 32, 32, 3)
    y_train: np.ndarray  # int32, 0-9 (the publisher's 10 made 0)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    checksums: dict
    verified: bool


def read(path, spec: RemoteFile, expected: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels 0-9) of one SVHN .mat file; `expected`: its image count, if known."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
        x, y = mat["X"], mat["y"]
    except (ValueError, OSError, KeyError, TypeError, zlib.error) as e:
        raise DataError(f"{path} is corrupt or not an SVHN file ({type(e).__name__}: {e}); it was left as it is. "
                        f"Replace it with {spec.url} (md5 {spec.md5}).") from e
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.reshape(-1).shape != (x.shape[3],):
        raise DataError(f"{path}: X is {x.dtype} {x.shape} and y {y.shape}, expected uint8 (32, 32, 3, N) and (N, 1)")
    labels = y.reshape(-1).astype(np.int32)
    if labels.min() < 1 or labels.max() > 10:
        raise DataError(f"{path}: labels must be 1-10 (10 is the digit 0), found {labels.min()}-{labels.max()}")
    if expected is not None and len(labels) != expected:
        raise DataError(f"{path} has {len(labels)} images, expected {expected}; replace it with {spec.url}")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels % 10


def load(data_dir_: str | None = None, download: bool = True, verify: bool = True) -> SVHN:
    """Train and test splits. `verify=False` skips the md5 and count checks (for a test's small files)."""
    root = data_dir(data_dir_)
    arrays, checksums = {}, {}
    for split, spec in FILES.items():
        path = fetch(spec, root, download, what=f"SVHN {split}")
        checksums[spec.name] = f"md5:{md5sum(path)}"
        if verify and checksums[spec.name] != f"md5:{spec.md5}":
            raise DataError(f"{path} is corrupt or not the publisher's SVHN {split} file: {checksums[spec.name]}, "
                            f"expected md5 {spec.md5}. It was left as it is; replace it with {spec.url}.")
        arrays[split] = read(path, spec, COUNTS[split] if verify else None)
    return SVHN(*arrays["train"], *arrays["test"], source=str(root / FOLDER), checksums=checksums, verified=verify)

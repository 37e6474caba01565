"""MNIST (LeCun, Cortes & Burges) from the publisher's four idx `.gz` files.

Downloaded files are verified against the canonical md5 of the `.gz`; an offline copy (whose `.gz`
may have been re-compressed) is checked by its idx header, counts and the exact class counts of the
official release, and identified by the md5 of each decompressed file, which every copy of the
official release shares (`DECOMPRESSED_MD5`).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, RemoteFile, data_dir, fetch

FOLDER = "mnist"
_BASE = "https://storage.googleapis.com/cvdf-datasets/mnist/"
FILES = {
    "train_images": RemoteFile(f"{FOLDER}/train-images-idx3-ubyte.gz", _BASE + "train-images-idx3-ubyte.gz",
                               "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": RemoteFile(f"{FOLDER}/train-labels-idx1-ubyte.gz", _BASE + "train-labels-idx1-ubyte.gz",
                               "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": RemoteFile(f"{FOLDER}/t10k-images-idx3-ubyte.gz", _BASE + "t10k-images-idx3-ubyte.gz",
                              "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": RemoteFile(f"{FOLDER}/t10k-labels-idx1-ubyte.gz", _BASE + "t10k-labels-idx1-ubyte.gz",
                              "ec29112dd5afa0611ce80d1b7f02629c"),
}
# md5 of the four files decompressed (the publisher's idx bytes), the same for any re-compressed copy.
DECOMPRESSED_MD5 = {"train_images": "6bbc9ace898e44ae57da46a324031adb",
                    "train_labels": "a25bea736e30d166cdddb491f175f624",
                    "test_images": "2646ac647ad5339dbf082846283269ea",
                    "test_labels": "27ae3e4e09519cfbb04c329615203637"}
CLASS_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


@dataclass(frozen=True)
class MNIST:
    x_train: np.ndarray  # uint8, (60000, 28, 28)
    y_train: np.ndarray  # int32, (60000,)
    x_test: np.ndarray  # uint8, (10000, 28, 28)
    y_test: np.ndarray  # int32, (10000,)
    source: str  # the folder read
    checksums: dict  # {idx file: "md5:<of its decompressed bytes>"}
    verified: bool  # whether every checksum is the official release's


def load(data_dir_: str | None = None, download: bool = True, verify: bool = True) -> MNIST:
    """The four files; with `verify`, each must hold the official release's bytes (its decompressed md5)."""
    root = data_dir(data_dir_)
    arrays, digests = {}, {}
    for key, spec in FILES.items():
        # A download is verified by md5 in fetch; an existing copy is checked by content below.
        path = fetch(spec, root, download, what=f"MNIST {key.replace('_', ' ')}")
        arrays[key], digests[key] = _read_idx(path, spec)
    data = MNIST(arrays["train_images"], arrays["train_labels"].astype(np.int32),
                 arrays["test_images"], arrays["test_labels"].astype(np.int32), source=str(root / FOLDER),
                 checksums={FILES[k].name.removesuffix(".gz"): f"md5:{v}" for k, v in digests.items()},
                 verified=digests == DECOMPRESSED_MD5)
    _validate(data, root)
    wrong = [k for k in FILES if digests[k] != DECOMPRESSED_MD5[k]]
    if verify and wrong:
        raise DataError(f"{', '.join(str(root / FILES[k].name) for k in wrong)}: not the official MNIST data (the md5 "
                        f"of the decompressed bytes is not {', '.join(DECOMPRESSED_MD5[k] for k in wrong)}); left as "
                        f"they are. Replace them with the files from {_BASE}.")
    return data


def _read_idx(path, spec: RemoteFile) -> tuple[np.ndarray, str]:
    """The array in an idx `.gz` file and the md5 of its decompressed bytes."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is corrupt ({e}); it was left as it is. Replace it with {spec.url} "
                        f"(md5 {spec.md5}).") from e
    # idx header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then the
    # big-endian int32 size of each dimension.
    ndim = raw[3] if len(raw) > 4 else 0
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or ndim not in (1, 3):
        raise DataError(f"{path} is not an idx file of unsigned bytes; replace it with {spec.url} (md5 {spec.md5}).")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {body.size} bytes of data. "
                        f"Replace it with {spec.url} (md5 {spec.md5}).")
    return body.reshape(shape), hashlib.md5(raw).hexdigest()


def _validate(data: MNIST, root) -> None:
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        expected = CLASS_COUNTS[split]
        if x.shape != (sum(expected), 28, 28) or len(y) != sum(expected):
            raise DataError(f"MNIST {split} in {root / FOLDER}: images {x.shape} and {len(y)} labels, "
                            f"expected ({sum(expected)}, 28, 28).")
        counts = np.bincount(y, minlength=10).tolist()
        if counts != expected:
            raise DataError(f"MNIST {split} labels in {root / FOLDER} have class counts {counts}, "
                            f"expected {expected} (the official release).")

"""CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images").

Reads the publisher's "python version": either the archive `cifar-10-python.tar.gz` (read in place,
its md5 verified) or its extracted folder `cifar-10-batches-py/` (what `keras.datasets.cifar10` and
`../shared/data/restore.py` leave), whose files are checked for shape, counts and class balance.
Either way each split is identified by a content checksum (`content_sha256`): copies that hold the
same images under the same publisher file names share it, whatever the order of images in the
batch files (which differs between the official archive and a restored copy).

Why not tensorflow-datasets (tfds 4.9.10 was tried here): its CIFAR-10 builder prepares its TFRecords
only from the canonical archive, fetched through its own download manager and checked against its
registered checksum, so the extracted offline copy on the project's machines cannot feed it; and
reading prepared tfds data needs TensorFlow, which the JAX GPU machines do not have. Reading the
publisher's pickles directly needs neither: measured on the 2-core CPU, all 60,000 images load as
NumPy arrays in about 1 s, with no prepare step and no second copy of the data on disk.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.files import DataError, RemoteFile, check_readable, data_dir, fetch
from common.data.files import verify as verify_md5

ARCHIVE = RemoteFile(
    name="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
# content_sha256 of the official release's splits (computed on a pixel-exact copy with the original file names).
CONTENT_SHA256 = {"train": "76f54b4170afe4a902cb5b098e96a9715ac0037c0ad3860bb55da1ce7782c57d",
                  "test": "d56d0e13d2266f7b108d06ffc49e1844bc65f57c9ce8fcf6cdd0dd8c44ec8664"}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
COUNTS = {"train": 50_000, "test": 10_000}


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # uint8, (N, 32, 32, 3)
    y: np.ndarray  # int32, (N,)
    filenames: np.ndarray  # the publisher's per-image file names (str)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index) -> Split:
        return Split(self.x[index], self.y[index], self.filenames[index])


@dataclass(frozen=True)
class CIFAR10:
    train: Split
    test: Split
    source: str  # the file or folder it was read from
    checksums: dict  # what identifies the data read: {name: "algorithm:hex"}
    verified: bool  # whether every checksum is the official release's


def load(data_dir_: str | None = None, download: bool = True, verify: bool = True) -> CIFAR10:
    """Load CIFAR-10 train (50,000) and test (10,000) from the data directory; with `verify`, each split
    must hold the official release's images and labels (its content checksum)."""
    root = data_dir(data_dir_)
    folder = root / FOLDER
    if folder.is_dir():
        read = _folder_reader(check_readable(folder))
        source, checksums = folder, {}
    else:
        archive = fetch(ARCHIVE, root, download, what="CIFAR-10 (python version)")
        verify_md5(archive, ARCHIVE.md5, "CIFAR-10 python-version archive")
        read = _archive_reader(archive)
        source, checksums = archive, {ARCHIVE.name: f"md5:{ARCHIVE.md5}"}
    train, test = _read_split(read, TRAIN_FILES), _read_split(read, TEST_FILES)
    content = {"train": content_sha256(train), "test": content_sha256(test)}
    checksums.update({f"{name} split (content)": f"sha256:{digest}" for name, digest in content.items()})
    data = CIFAR10(train=train, test=test, source=str(source), checksums=checksums,
                   verified=content == CONTENT_SHA256)
    validate(data)
    wrong = [name for name in content if content[name] != CONTENT_SHA256[name]]
    if verify and wrong:
        raise DataError(f"CIFAR-10 {' and '.join(wrong)} in {source}: the images or labels differ from the official "
                        f"release (content SHA-256 {', '.join(content[w] for w in wrong)}, expected "
                        f"{', '.join(CONTENT_SHA256[w] for w in wrong)}); left as they are. Replace them with "
                        f"{ARCHIVE.url} (md5 {ARCHIVE.md5}).")
    return data


def content_sha256(split: Split) -> str:
    """SHA-256 over the split's images in publisher file-name order, each as its file name, a NUL byte,
    its label as one byte and its 32x32x3 pixels (height, width, channel)."""
    digest = hashlib.sha256()
    for i in np.argsort(split.filenames, kind="stable"):
        digest.update(split.filenames[i].encode() + b"\0" + bytes([int(split.y[i])]) + split.x[i].tobytes())
    return digest.hexdigest()


def _folder_reader(folder: Path):
    def read(name: str) -> tuple[str, bytes]:
        path = folder / name
        if not path.exists():
            raise DataError(
                f"{path} is missing: the folder {folder} should hold {', '.join(TRAIN_FILES + TEST_FILES)} "
                f"as extracted from {ARCHIVE.url} (md5 {ARCHIVE.md5}). Re-extract the archive there, "
                f"or put the archive itself in {folder.parent} and remove the incomplete folder."
            )
        return str(path), check_readable(path).read_bytes()

    return read


def _archive_reader(archive: Path):
    with tarfile.open(archive, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        blobs = {name: tar.extractfile(m).read() for name, m in members.items() if name in TRAIN_FILES + TEST_FILES}

    def read(name: str) -> tuple[str, bytes]:
        if name not in blobs:
            raise DataError(f"{archive} has no member {FOLDER}/{name}; it is not the CIFAR-10 python version.")
        return f"{archive}:{FOLDER}/{name}", blobs[name]

    return read


def _read_split(read, names) -> Split:
    xs, ys, fns = [], [], []
    for name in names:
        where, blob = read(name)
        try:
            batch = pickle.load(io.BytesIO(blob), encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int32)
            filenames = [f.decode() if isinstance(f, bytes) else str(f) for f in batch[b"filenames"]]
        except Exception as e:  # truncated or foreign pickles fail in many ways
            raise DataError(
                f"{where} is corrupt ({type(e).__name__}: {e}); it was left as it is. Replace it with the "
                f"file from {ARCHIVE.url} (md5 {ARCHIVE.md5})."
            ) from e
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) or len(filenames) != len(data):
            raise DataError(f"{where}: expected N x 3072 images with N labels and names, got data {data.shape}, "
                            f"{len(labels)} labels, {len(filenames)} names.")
        # The pickles store each image as 1024 red, then green, then blue values (row-major).
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
        fns.extend(filenames)
    return Split(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), np.asarray(fns))


def validate(data: CIFAR10) -> None:
    """Counts, label range and class balance of the official release (5,000 / 1,000 per class)."""
    for name, split in (("train", data.train), ("test", data.test)):
        expected = COUNTS[name]
        if len(split) != expected:
            raise DataError(f"CIFAR-10 {name} split in {data.source} has {len(split)} images, expected {expected}.")
        counts = np.bincount(split.y, minlength=10)
        if split.y.min() < 0 or split.y.max() > 9 or not np.all(counts == expected // 10):
            raise DataError(f"CIFAR-10 {name} split in {data.source} has class counts {counts.tolist()}, "
                            f"expected {expected // 10} for each of 10 classes.")


def train_val_split(train: Split, val_size: int, seed: int = 0) -> tuple[Split, Split]:
    """A class-stratified hold-out of `val_size` images, the same on every copy of the data.

    Images are ordered by their publisher file name first, so the split does not depend on the
    order of images in the batch files (which differs between the official archive and a restored
    copy). `seed` is fixed, not the run's seed: every run validates on the same images.
    """
    if val_size == 0:
        return train, train.take(np.arange(0))
    if val_size % 10:
        raise ValueError(f"val_size={val_size} must be a multiple of 10 so that every class gets the same share")
    order = np.argsort(train.filenames, kind="stable")
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(order[train.y[order] == c])[: val_size // 10] for c in range(10)])
    mask = np.ones(len(train), bool)
    mask[val] = False
    return train.take(np.flatnonzero(mask)), train.take(np.sort(val))

"""ISBI 2012 EM segmentation challenge (Cardona et al. 2010; Arganda-Carreras et al. 2015): serial
section TEM of the Drosophila first-instar larva ventral nerve cord, 30 training slices of 512x512
with membrane labels and 30 test slices whose labels were never published.

Files, as the challenge distributes them, in `<data dir>/isbi2012/`: `train-volume.tif`,
`train-labels.tif` (255 = cell interior, 0 = membrane), `test-volume.tif`; multi-page 8-bit TIFF
stacks read with tifffile. The challenge site asks for registration before download, so missing
files are not fetched automatically: the error says where to get them and where to put them.

Checks: TIFF encodings of the same slices differ from copy to copy, so each file is verified by the
SHA-256 of its decoded pixels (30 x 512 x 512 uint8, C order), which any pixel-exact copy shares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, check_readable, data_dir

FOLDER = "isbi2012"
URL = "http://brainiac2.mit.edu/isbi_challenge/"
SHAPE = (30, 512, 512)
PIXEL_SHA256 = {
    "train-volume.tif": "200da3d452d726e6c9ca1ce04b869d4edb727320d23b516d01cce707dc8c4760",
    "train-labels.tif": "a7cb64000a1a7e542682927e19c91339f58f9f178e0bcce4e207371116f0ca36",
    "test-volume.tif": "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9",
}


@dataclass(frozen=True)
class ISBI2012:
    train_images: np.ndarray  # uint8 (30, 512, 512)
    train_labels: np.ndarray  # uint8 (30, 512, 512): 1 = cell interior, 0 = membrane
    test_images: np.ndarray  # uint8 (30, 512, 512)
    source: str
    checksums: dict  # {file: "sha256:<of its decoded pixels>"}
    verified: bool  # whether every checksum was checked against the challenge's files


def pixel_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def read_stack(path, name: str, verify: bool = True) -> np.ndarray:
    import tifffile

    expected = PIXEL_SHA256[name]
    if not path.exists():
        raise DataError(f"{path} is missing. Download the ISBI 2012 challenge files ({', '.join(PIXEL_SHA256)}) "
                        f"from {URL} (registration required) and put them in {path.parent}; "
                        f"{name} must decode to {SHAPE} uint8 pixels with SHA-256 {expected}.")
    check_readable(path)
    try:
        stack = tifffile.imread(path)
    except Exception as e:  # tifffile raises many types for a broken file
        raise DataError(f"{path} is corrupt or not a TIFF stack ({type(e).__name__}: {e}); it was left as it is. "
                        f"Replace it with the challenge's {name} (pixel SHA-256 {expected}).") from e
    if stack.shape != SHAPE or stack.dtype != np.uint8:
        raise DataError(f"{path}: {stack.dtype} {stack.shape}, expected uint8 {SHAPE}. Replace it with the "
                        f"challenge's {name} (pixel SHA-256 {expected}).")
    if verify and (actual := pixel_sha256(stack)) != expected:
        raise DataError(f"{path}: decoded pixels have SHA-256 {actual}, expected {expected} (the challenge's "
                        f"{name}). It was left as it is; replace it with the original file.")
    return stack


def load(data_dir_: str | None = None, verify: bool = True) -> ISBI2012:
    """The three stacks; labels as 0/1 (1 = cell). `verify=False` skips the pixel checksums (for
    fixtures of the right shape)."""
    folder = data_dir(data_dir_) / FOLDER
    stacks = {name: read_stack(folder / name, name, verify) for name in PIXEL_SHA256}
    labels = stacks["train-labels.tif"]
    values = np.unique(labels)
    if not set(values.tolist()) <= {0, 255}:
        raise DataError(f"{folder / 'train-labels.tif'}: labels must be 0 (membrane) or 255 (cell), "
                        f"found {values[:10].tolist()}")
    return ISBI2012(stacks["train-volume.tif"], (labels == 255).astype(np.uint8), stacks["test-volume.tif"],
                    str(folder), checksums={name: f"sha256:{pixel_sha256(stack)}" for name, stack in stacks.items()},
                    verified=verify)

"""CK+48: the last three frames of the 327 labelled sequences of the Extended Cohn-Kanade dataset (Lucey et
al. 2010) as 48x48 grey face crops, in the third-party redistribution's layout
`CK+48/<class>/S<subject>_<sequence>_<frame>.png` (classes anger, contempt, disgust, fear, happy, sadness,
surprise). The three frames of a sequence are near-copies: split by subject, never by image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, class_folder_files, corpus_folder, tree_sha256

FOLDER = "CK+48"
CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
NAME = re.compile(r"^S(\d{3})_(\d{3})_(\d{8})\.png$")
# The redistribution's tree (WuJie1010/Facial-Expression-Recognition.Pytorch, commit fefe6653, folder CK+48).
TREE_SHA256 = "d8c9c64dd46a99585a2be5d4437ac1dfd4077d6708e4f2733f82409df259fa88"


@dataclass(frozen=True)
class CKPlus:
    x: np.ndarray  # uint8 (n, 48, 48)
    labels: np.ndarray  # str class names
    subjects: np.ndarray  # str, e.g. "S010"
    sequences: np.ndarray  # str, e.g. "S010_004"
    names: np.ndarray  # str, the file of each image, e.g. "anger/S010_004_00000017.png"
    source: str
    checksums: dict
    verified: bool


def load(data_dir_: str | None = None, verify: bool = True) -> CKPlus:
    from PIL import Image, UnidentifiedImageError

    folder = corpus_folder(data_dir_, FOLDER, f"put the CK+48 folders ({', '.join(CLASSES)}) there")
    found = class_folder_files(folder, CLASSES, "CK+48", NAME, "S<subject>_<sequence>_<frame>.png", "*.png")
    x, labels, subjects, sequences, names = [], [], [], [], []
    for path, match in found:
        try:
            image = np.asarray(Image.open(path).convert("L"))
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"{path} cannot be read as an image ({e})") from e
        if image.shape != (48, 48):
            raise DataError(f"{path} is {image.shape[1]}x{image.shape[0]}, expected 48x48")
        x.append(image)
        labels.append(path.parent.name)
        subjects.append(f"S{match.group(1)}")
        sequences.append(f"S{match.group(1)}_{match.group(2)}")
        names.append(f"{path.parent.name}/{path.name}")
    missing = [c for c in CLASSES if c not in labels]
    if missing:
        raise DataError(f"{folder} has no image of {', '.join(missing)}")
    digest = tree_sha256(folder, [path for path, _ in found])
    if verify and digest != TREE_SHA256:
        raise DataError(f"{folder}: its files are not the redistribution's 981 (tree SHA-256 {digest}, expected "
                        f"{TREE_SHA256})")
    return CKPlus(np.stack(x), np.array(labels), np.array(subjects), np.array(sequences), np.array(names), str(folder),
                  {f"{FOLDER} (tree)": f"sha256:{digest}"}, verified=digest == TREE_SHA256)

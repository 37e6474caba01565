"""SFEW 2.0 (Dhall et al.; Static Facial Expressions in the Wild, the EmotiW 2015 image sub-challenge),
licence-gated, in its release layout `SFEW_2/{Train,Val}/<Emotion>/<image>.png` with the seven emotion
folders Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise (the test images are unlabelled). Images are
read as grey and resized to 48x48, the size of FER-2013's faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.data.files import DataError, class_folder_files, corpus_folder, tree_sha256

FOLDER = "SFEW_2"
CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")  # FER-2013's order
SPLITS = ("Train", "Val")


@dataclass(frozen=True)
class SFEW:
    x: dict  # split -> uint8 (n, 48, 48)
    y: dict  # split -> int32 labels in FER-2013's numbering
    names: dict  # split -> str, the file of each image, e.g. "Train/Happy/a.png"
    source: str
    checksums: dict
    verified: bool


def load(data_dir_: str | None = None, size: int = 48) -> SFEW:
    from PIL import Image, UnidentifiedImageError

    folder = corpus_folder(data_dir_, FOLDER,
                           "SFEW 2.0 is licence-gated (EmotiW); put its Train/ and Val/ folders there")
    x, y, names, files = {}, {}, {}, []
    for split in SPLITS:
        images, labels, named = [], [], []
        for path, _ in class_folder_files(folder / split, CLASSES, "SFEW"):
            try:
                image = Image.open(path).convert("L").resize((size, size), Image.BILINEAR)
            except (OSError, UnidentifiedImageError) as e:
                raise DataError(f"{path} cannot be read as an image ({e})") from e
            images.append(np.asarray(image))
            labels.append(CLASSES.index(path.parent.name))
            named.append(path.relative_to(folder).as_posix())
            files.append(path)
        if not images:
            raise DataError(f"{folder / split} holds no images in emotion folders")
        x[split.lower()], y[split.lower()] = np.stack(images), np.asarray(labels, np.int32)
        names[split.lower()] = np.array(named)
    return SFEW(x, y, names, str(folder), {f"{FOLDER} (tree)": f"sha256:{tree_sha256(folder, files)}"}, verified=False)

"""FER-2013 (Goodfellow et al. 2013, the ICML 2013 representation-learning challenge): 35,887 grey 48x48
faces, 7 expressions, from the Kaggle CSV `fer2013/fer2013.csv` (`emotion,pixels,Usage`) or the
challenge's `icml_face_data.csv` variant (the same columns in another order, their names with a leading
space). Usage: Training (28,709) for training, PublicTest (3,589) as the validation set, PrivateTest
(3,589) as the test set, as the challenge used them.

The copy on this project's machines is approximate (rebuilt from JPEG upscales; about 2 grey levels off
the original): the loader reads the genuine file the same way, and records the SHA-256 of what it read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.files import DataError, check_readable, data_dir, file_digest

FOLDER = "fer2013"
FILES = ("fer2013.csv", "icml_face_data.csv")
URL = "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
COUNTS = {"train": 28_709, "val": 3_589, "test": 3_589}


@dataclass(frozen=True)
class FER2013:
    x: dict  # split -> uint8 (n, 48, 48)
    y: dict  # split -> int32 (n,)
    source: str
    checksums: dict
    verified: bool  # no publisher checksum is known here: always False


def find(root: Path) -> Path:
    for name in FILES:
        if (root / FOLDER / name).is_file():
            return check_readable(root / FOLDER / name)
    raise DataError(f"FER-2013 not found: put {FILES[0]} (or {FILES[1]}) from {URL} in {root / FOLDER}, or point "
                    f"--data_dir at the folder that holds {FOLDER}/")


def parse(path: Path, check_counts: bool = True) -> FER2013:
    """Read the CSV; a bad row (pixel count, pixel value, Usage, label) is a DataError that names it."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as a CSV ({e}); replace it with the challenge's file") from e
    frame.columns = [c.strip() for c in frame.columns]
    missing = {"emotion", "pixels", "Usage"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} has columns {list(frame.columns)}; it needs emotion, pixels and Usage")
    x = {split: [] for split in COUNTS}
    y = {split: [] for split in COUNTS}
    for row, (emotion, pixels, usage) in enumerate(zip(frame["emotion"], frame["pixels"], frame["Usage"],
                                                       strict=True), start=2):  # line 1 is the header
        where = f"{path}, line {row}"
        if usage.strip() not in USAGES:
            raise DataError(f"{where}: Usage {usage!r} is not one of {', '.join(USAGES)}")
        if not emotion.strip().isdigit() or not 0 <= int(emotion) < len(CLASSES):
            raise DataError(f"{where}: emotion {emotion!r} is not a label 0-6 ({', '.join(CLASSES)})")
        values = pixels.split()
        if len(values) != 48 * 48:
            raise DataError(f"{where}: {len(values)} pixel values, expected 2304 (48 x 48)")
        try:
            image = np.array(values, dtype=np.int32)
        except ValueError:
            raise DataError(f"{where}: the pixels are not whole numbers") from None
        if image.min() < 0 or image.max() > 255:
            raise DataError(f"{where}: pixel values outside 0-255")
        split = USAGES[usage.strip()]
        x[split].append(image.astype(np.uint8).reshape(48, 48))
        y[split].append(int(emotion))
    counts = {split: len(v) for split, v in y.items()}
    if check_counts and counts != COUNTS:
        raise DataError(f"{path} has {counts} images per split, expected {COUNTS} (the challenge's)")
    return FER2013({k: np.stack(v) if v else np.zeros((0, 48, 48), np.uint8) for k, v in x.items()},
                   {k: np.asarray(v, np.int32) for k, v in y.items()}, str(path),
                   {f"{FOLDER}/{path.name}": f"sha256:{file_digest(path)}"}, verified=False)


def load(data_dir_: str | None = None, check_counts: bool = True) -> FER2013:
    return parse(find(data_dir(data_dir_)), check_counts)

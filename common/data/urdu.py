"""The URDU emotional speech corpus (Latif, Qayyum, Usman & Qadir 2018): 400 clips of Urdu talk shows in
the repository's layout `URDU-Dataset/{Angry,Happy,Neutral,Sad}/SGX_FXX_EYY.wav` (speaker S + gender G
+ id X, the speaker's file number, emotion letter and its number in the class).

Speaker and class are confounded in this corpus (Angry comes from four male speakers, Neutral is 96 %
male): a speaker-independent split cannot put every class in every test fold.
"""

from __future__ import annotations

import re

from common.data.audio import Corpus, Utterance, check_classes
from common.data.files import DataError, class_folder_files, corpus_folder, tree_sha256

FOLDER = "URDU-Dataset"
URL = "https://github.com/siddiquelatif/URDU-Dataset"
CLASSES = {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"}
LETTERS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
NAME = re.compile(r"^S([MF])(\d+)_F\d+_([AHNS])\d+\.wav$")
# The tree checksum of the repository's 400 files (commit 4b546d4e, 2019-01-17).
TREE_SHA256 = "aaadbdc32de29e31babb3f4d91c1b2118f00c1b146b1af1658f4c13b99bad7da"


def load(data_dir_: str | None = None, emotions: tuple[str, ...] = ("neutral", "happy", "sad", "angry"),
         verify: bool = True) -> Corpus:
    folder = corpus_folder(data_dir_, FOLDER, f"clone {URL} and put its four class folders there")
    found = class_folder_files(folder, CLASSES, "URDU", NAME, "SGX_FXX_EYY.wav", "*.wav")
    utterances = []
    for path, match in found:
        sex, speaker, letter = match.groups()
        if LETTERS[letter] != CLASSES[path.parent.name]:
            raise DataError(f"{path}: its name says {LETTERS[letter]} but it is in the {path.parent.name} folder")
        if CLASSES[path.parent.name] in emotions:
            utterances.append(Utterance(str(path), f"S{sex}{speaker}", CLASSES[path.parent.name], sex))
    check_classes(utterances, emotions, str(folder))
    digest = tree_sha256(folder, [path for path, _ in found])
    if verify and digest != TREE_SHA256:
        raise DataError(f"{folder}: its files are not the repository's 400 (tree SHA-256 {digest}, expected "
                        f"{TREE_SHA256}); restore them from {URL}")
    return Corpus("urdu", tuple(utterances), str(folder), {f"{FOLDER} (tree)": f"sha256:{digest}"},
                  verified=digest == TREE_SHA256)

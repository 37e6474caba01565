"""RAVDESS speech (Livingstone & Russo 2018): acted English sentences by 24 actors, in the Zenodo zip's
layout `Audio_Speech_Actors_01-24/Actor_NN/03-01-EE-II-SS-RR-AA.wav` (modality 03 audio-only, vocal
channel 01 speech, emotion EE, intensity II, statement SS, repetition RR, actor AA; odd actors male).
Files at any sample rate are resampled on reading (`common.data.audio.read_audio`).
"""

from __future__ import annotations

import re

from common.data.audio import Corpus, Utterance, check_classes
from common.data.files import DataError, corpus_folder, tree_sha256

FOLDER = "Audio_Speech_Actors_01-24"
URL = "https://doi.org/10.5281/zenodo.1188976"
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
INTENSITIES = {"01": "normal", "02": "strong"}
NAME = re.compile(r"^03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")


def load(data_dir_: str | None = None, emotions: tuple[str, ...] = ("neutral", "happy", "sad", "angry"),
         intensity: str = "normal") -> Corpus:
    """The speech utterances of `emotions` at `intensity`, one `Utterance` per file, speaker = actor."""
    folder = corpus_folder(data_dir_, FOLDER, f"unpack Audio_Speech_Actors_01-24.zip from {URL} there (its "
                                              f"Actor_NN/ folders)")
    unknown = [e for e in emotions if e not in EMOTIONS.values()]
    if unknown or intensity not in INTENSITIES.values():
        raise DataError(f"RAVDESS has the emotions {', '.join(EMOTIONS.values())} and intensities normal, strong; "
                        f"asked for {', '.join(emotions)} at {intensity}")
    files = sorted(folder.glob("Actor_*/*.wav"))
    utterances = []
    for path in files:
        match = NAME.match(path.name)
        if match is None:
            raise DataError(f"{path}: not a RAVDESS speech file name (03-01-EE-II-SS-RR-AA.wav); move it out of "
                            f"{folder}")
        emotion_code, intensity_code, _, _, actor = match.groups()
        if emotion_code not in EMOTIONS or intensity_code not in INTENSITIES:
            raise DataError(f"{path}: unknown emotion code {emotion_code} or intensity {intensity_code} (RAVDESS "
                            f"codes emotions 01-08 and intensities 01-02)")
        if path.parent.name != f"Actor_{actor}":
            raise DataError(f"{path}: actor {actor} in the name but the folder says {path.parent.name}")
        if EMOTIONS[emotion_code] in emotions and INTENSITIES[intensity_code] == intensity:
            utterances.append(Utterance(str(path), f"actor{actor}", EMOTIONS[emotion_code],
                                        "M" if int(actor) % 2 else "F"))
    check_classes(utterances, emotions, str(folder))
    checksums = {f"{FOLDER} (tree)": f"sha256:{tree_sha256(folder, files)}"}
    return Corpus("ravdess", tuple(utterances), str(folder), checksums, verified=False)

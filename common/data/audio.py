"""What the emotional-speech loaders share: an utterance (file, speaker, emotion), reading it as mono
float32 at a chosen sample rate (resampled with soxr's high-quality filter when the file's rate
differs), and a checksum of a whole corpus as read.

The corpus loaders (`ravdess`, `urdu`, `iemocap`) read their publishers' folder layouts and file names;
they return `Corpus` objects whose utterances are read lazily, one at a time, by `read_audio`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.files import DataError, check_readable


@dataclass(frozen=True)
class Utterance:
    path: str
    speaker: str  # who speaks: folds never split a speaker
    emotion: str  # one of the corpus' emotion names
    sex: str = ""  # "F" or "M", when the corpus says


@dataclass(frozen=True)
class Corpus:
    name: str
    utterances: tuple[Utterance, ...]
    source: str  # the folder read
    checksums: dict  # {"<folder> (tree)": "sha256:..."}: sha256 over the sorted files' own sha256s
    verified: bool  # whether the tree checksum is the publisher's

    def emotions(self) -> list[str]:
        return sorted({u.emotion for u in self.utterances})

    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The file's samples as mono float32 in [-1, 1] at `sample_rate` (the first channel of a multichannel
    file; resampled with soxr 'VHQ' when the file's rate differs). A missing, unreadable or empty file is
    a DataError that names it."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; restore the corpus there (or point --data_dir at it)")
    check_readable(path)
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise DataError(f"{path} cannot be read as audio ({e}); replace it with the corpus' original file") from e
    if audio.shape[0] == 0:
        raise DataError(f"{path} holds no samples; replace it with the corpus' original file")
    audio = audio[:, 0]
    if rate != sample_rate:
        import soxr

        if rate < 1000:
            raise DataError(f"{path} says its sample rate is {rate} Hz, which cannot be resampled to "
                            f"{sample_rate} Hz; replace it with the corpus' original file")
        audio = soxr.resample(audio, rate, sample_rate, quality="VHQ").astype(np.float32)
    return audio


def check_classes(utterances: list[Utterance], emotions: tuple[str, ...], where: str) -> None:
    """Every requested emotion must have utterances; an empty class is a DataError."""
    missing = [e for e in emotions if not any(u.emotion == e for u in utterances)]
    if missing:
        raise DataError(f"{where} has no utterance of {', '.join(missing)}; the corpus is incomplete or the "
                        f"emotions asked for are not in it")

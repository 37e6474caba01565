"""IEMOCAP (Busso et al. 2008), licence-gated, in its release layout:
`IEMOCAP_full_release/Session{1..5}/sentences/wav/<dialog>/<utterance>.wav`, with each utterance's
categorical label in `Session{N}/dialog/EmoEvaluation/<dialog>.txt` (lines `[start - end]<TAB>
<utterance><TAB><code><TAB>[V, A, D]`). Ten speakers: one female and one male per session; the
utterance name says which (`Ses01F_impro01_M003`: session 1, male speaker). Utterances whose
annotators agreed on no category (`xxx`) are left out.
"""

from __future__ import annotations

import re

from common.data.audio import Corpus, Utterance, check_classes
from common.data.files import DataError, corpus_folder, tree_sha256

FOLDER = "IEMOCAP_full_release"
URL = "https://sail.usc.edu/iemocap/"
CODES = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry", "exc": "excited", "fru": "frustrated",
         "sur": "surprised", "fea": "fearful", "dis": "disgust", "oth": "other"}
LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(Ses0[1-5][FM]_\S+)\t(\w+)\t\[")
UTTERANCE = re.compile(r"^Ses0([1-5])[FM]_\S+_([FM])\d+$")


def load(data_dir_: str | None = None, emotions: tuple[str, ...] = ("neutral", "happy", "sad", "angry"),
         improvised_only: bool = True) -> Corpus:
    """Labelled utterances of `emotions` (improvised sessions only, unless `improvised_only` is false);
    speaker = session and sex, e.g. `Ses01M`."""
    folder = corpus_folder(data_dir_, FOLDER, f"IEMOCAP is licence-gated ({URL}); put its release there")
    unknown = [e for e in emotions if e not in CODES.values()]
    if unknown:
        raise DataError(f"IEMOCAP has no emotion {', '.join(unknown)}; it has {', '.join(CODES.values())}")
    utterances, files = [], []
    for session in range(1, 6):
        labels_dir = folder / f"Session{session}" / "dialog" / "EmoEvaluation"
        if not labels_dir.is_dir():
            raise DataError(f"{labels_dir} is missing: the release is incomplete")
        for label_file in sorted(labels_dir.glob("*.txt")):
            files.append(label_file)
            for number, line in enumerate(label_file.read_text(errors="replace").splitlines(), start=1):
                if not line.startswith("["):
                    continue
                match = LINE.match(line)
                if match is None:
                    raise DataError(f"{label_file}, line {number}: not '[start - end]<TAB>utterance<TAB>code"
                                    f"<TAB>[V, A, D]'")
                name, code = match.groups()
                if code == "xxx":
                    continue
                if code not in CODES:
                    raise DataError(f"{label_file}, line {number}: unknown emotion code {code!r} (IEMOCAP's are "
                                    f"{', '.join(CODES)} and xxx)")
                if CODES[code] not in emotions or (improvised_only and "_impro" not in name):
                    continue
                parts = UTTERANCE.match(name)
                if parts is None:
                    raise DataError(f"{label_file}, line {number}: {name!r} is not an IEMOCAP utterance name")
                dialog = name.rsplit("_", 1)[0]
                wav = folder / f"Session{session}" / "sentences" / "wav" / dialog / f"{name}.wav"
                if not wav.is_file():
                    raise DataError(f"{wav} is missing (labelled in {label_file}, line {number})")
                files.append(wav)
                utterances.append(Utterance(str(wav), f"Ses0{parts.group(1)}{parts.group(2)}", CODES[code],
                                            parts.group(2)))
    check_classes(utterances, emotions, str(folder))
    return Corpus("iemocap", tuple(utterances), str(folder), {f"{FOLDER} (labels and wavs read, tree)":
                                                              f"sha256:{tree_sha256(folder, files)}"}, verified=False)

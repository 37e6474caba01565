"""Speech emotion recognition with a segment DNN and extreme learning machines (Han, Yu & Tashev 2014):
cross-validation over speaker-independent folds, and its results JSON and figures.

    python papers/speech_emotion/train.py --dataset=ravdess --seed=0     # the paper's recipe on RAVDESS
    python papers/speech_emotion/train.py --dataset=urdu --seed=0        # URDU (speaker and class confounded)
    python papers/speech_emotion/train.py --preset=quick                 # 4 folds, 10 DNN epochs
    python papers/speech_emotion/train.py --help                         # every field, default and preset

For each fold: frame features of every utterance (cached on disk by audio checksum and settings), the
segment DNN trained on the training utterances' most energetic segments, each utterance's segment
probabilities summarised (§2.2), and five utterance classifiers trained on the training fold and tested
on the held-out speakers: the DNN alone (the mean probability of the segments it is trained on, the
utterance's most energetic), DNN-ELM, DNN-KELM and DNN-SVM on the same utterance features, and an SVM on
statistics of the frame features (no DNN); and, labelled as such, the DNN alone over all of an utterance's
segments. WA is the accuracy over every test utterance of every fold, UA the mean over classes of their
recall over every test utterance (the field's definitions); the per-fold values are kept as their spread.
Every test utterance's fold, true and predicted labels are in the record. An interrupted run resumes at its
first unfinished fold.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.data import iemocap, ravdess, urdu
from common.data.audio import Corpus, read_audio
from common.lifecycle import config as cfg
from common.lifecycle import training
from common.lifecycle.run import Run
from papers.speech_emotion import features as F
from papers.speech_emotion.config import PRESETS, SpeechEmotionConfig
from papers.speech_emotion.model import ELMClassifier, KernelELMClassifier, build_dnn

PAPER = "speech_emotion"
METHODS = ("dnn", "dnn_elm", "dnn_kelm", "dnn_svm", "frame_svm", "dnn_all_segments")
LABELS = {"dnn": "DNN alone (mean probability of its training segments)", "dnn_elm": "DNN-ELM",
          "dnn_kelm": "DNN-KELM", "dnn_svm": "DNN-SVM", "frame_svm": "frame statistics + SVM (no DNN)",
          "dnn_all_segments": "DNN alone over all segments (not the paper's comparison)"}


def load_corpus(config: SpeechEmotionConfig) -> Corpus:
    root = config.data_dir or None
    if config.dataset == "ravdess":
        corpus = ravdess.load(root, config.emotions, config.ravdess_intensity)
    elif config.dataset == "urdu":
        corpus = urdu.load(root, config.emotions, verify=config.verify_data)
    else:
        corpus = iemocap.load(root, config.emotions, config.iemocap_improvised_only)
    if config.max_per_speaker_and_class:
        kept, seen = [], {}
        for u in corpus.utterances:
            seen[u.speaker, u.emotion] = seen.get((u.speaker, u.emotion), 0) + 1
            if seen[u.speaker, u.emotion] <= config.max_per_speaker_and_class:
                kept.append(u)
        corpus = Corpus(corpus.name, tuple(kept), corpus.source, corpus.checksums, corpus.verified)
    return corpus


def speaker_folds(corpus: Corpus, config: SpeechEmotionConfig) -> list[list[str]]:
    """The test speakers of each fold. RAVDESS: actors 2k+1 and 2k+2 (one man, one woman) together,
    dealt round-robin to the folds; IEMOCAP: one session (its two speakers) per fold; otherwise
    scikit-learn's GroupKFold, which balances the folds' utterance counts."""
    speakers = corpus.speakers()
    if config.dataset == "ravdess":
        pairs = sorted({(int(s.removeprefix("actor")) - 1) // 2 for s in speakers})
        return [[s for s in speakers if (int(s.removeprefix("actor")) - 1) // 2 in pairs[i::config.folds]]
                for i in range(config.folds)]
    if config.dataset == "iemocap":
        return [[s for s in speakers if s[3:5] == f"{i + 1:02d}"] for i in range(config.folds)]
    from sklearn.model_selection import GroupKFold

    groups = np.array([u.speaker for u in corpus.utterances])
    return [sorted(set(groups[test])) for _, test in GroupKFold(config.folds).split(groups, groups=groups)]


def extract_features(corpus: Corpus, cache: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Frame features of every utterance, from the cache (keyed by the file's SHA-256 and the feature
    settings) or computed and cached; with the time taken per hour of audio computed."""
    settings = hashlib.sha256(json.dumps({"names": F.FEATURES, "rate": F.SAMPLE_RATE, "frame": F.FRAME,
                                          "hop": F.HOP, "fft": F.N_FFT, "mels": F.N_MELS,
                                          "pitch": [F.PITCH_FLOOR, F.PITCH_CEILING],
                                          "delta": F.DELTA_WIDTH}).encode()).hexdigest()[:12]
    folder = cache / settings
    folder.mkdir(parents=True, exist_ok=True)
    out, computed_s, computed_audio_s = {}, 0.0, 0.0
    for i, u in enumerate(corpus.utterances):
        digest = hashlib.sha256(Path(u.path).read_bytes()).hexdigest()
        path = folder / f"{digest}.npy"
        if path.exists():
            out[u.path] = np.load(path)
            continue
        clock = training.RunningTime()
        audio = read_audio(u.path, F.SAMPLE_RATE)
        out[u.path] = F.frame_features(audio)
        computed_s += clock.seconds
        computed_audio_s += len(audio) / F.SAMPLE_RATE
        tmp = path.with_name(f"{digest}.tmp.npy")
        np.save(tmp, out[u.path])
        os.replace(tmp, path)
        if (i + 1) % 100 == 0:
            print(f"  features of {i + 1} / {len(corpus.utterances)} utterances", flush=True)
    per_hour = round(computed_s / (computed_audio_s / 3600), 1) if computed_audio_s else None
    timing = {"features_computed_s": round(computed_s, 1), "audio_computed_h": round(computed_audio_s / 3600, 4),
              "feature_s_per_audio_hour": per_hour, "cache": str(folder)}
    return out, timing


def grid_search(estimator, grid: dict, x, y, groups, config: SpeechEmotionConfig):
    """The estimator refitted on the whole training fold with the grid point that a speaker-grouped
    cross-validation inside that fold finds best (by unweighted accuracy)."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), estimator)
    grid = {f"{pipeline.steps[-1][0]}__{k}": list(v) for k, v in grid.items()}
    splits = min(config.inner_folds, len(set(groups)))
    search = GridSearchCV(pipeline, grid, scoring="balanced_accuracy", cv=GroupKFold(splits), refit=True)
    search.fit(x, y, groups=groups)
    return search.best_estimator_, {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}


def run_fold(fold: int, test_speakers: list[str], corpus: Corpus, frames: dict, config: SpeechEmotionConfig,
             ) -> dict:
    """Train everything on the other folds' speakers and predict the test speakers' utterances."""
    from sklearn.svm import SVC

    clock = training.RunningTime()  # fold times leave out any time the process was stopped
    classes = list(config.emotions)
    train = [u for u in corpus.utterances if u.speaker not in test_speakers]
    test = [u for u in corpus.utterances if u.speaker in test_speakers]
    stacked = np.concatenate([frames[u.path] for u in train])
    mean, std = stacked.mean(0), stacked.std(0) + 1e-8
    segs = {u.path: F.segments((frames[u.path] - mean) / std, config.context) for u in (*train, *test)}
    energetic = {u.path: F.most_energetic(F.segment_energy(frames[u.path], config.context), config.energy_fraction)
                 for u in (*train, *test)}
    x = np.concatenate([segs[u.path][energetic[u.path]] for u in train])
    y = np.concatenate([np.full(len(energetic[u.path]), classes.index(u.emotion)) for u in train])
    keras.utils.set_random_seed(config.seed * 1000 + fold)  # each fold alike whether or not the run resumed
    dnn = build_dnn(x.shape[1], len(classes), config.hidden_units)
    dnn.compile(keras.optimizers.Adam(config.learning_rate), loss="sparse_categorical_crossentropy")
    dnn.fit(x, y, batch_size=config.batch_size, epochs=config.dnn_epochs, verbose=0, shuffle=True)
    dnn_s = clock.seconds

    # every segment's probabilities; the DNN scores each segment on its own, so a subset's are these rows
    every = {u.path: keras.ops.convert_to_numpy(dnn(segs[u.path], training=False)) for u in (*train, *test)}
    probs = {path: p if config.utterance_segments == "all" else p[energetic[path]] for path, p in every.items()}
    utter = {split: np.stack([F.utterance_features(probs[u.path], config.threshold) for u in utts])
             for split, utts in (("train", train), ("test", test))}
    stats = {split: np.stack([F.frame_statistics(frames[u.path]) for u in utts])
             for split, utts in (("train", train), ("test", test))}
    y_train = np.array([classes.index(u.emotion) for u in train])
    groups = np.array([u.speaker for u in train])
    # The DNN alone is scored on the segments it was trained on (the utterance's most energetic: the paper's
    # comparison); over all segments it is kept too, labelled as such.
    predictions = {"dnn": [int(np.argmax(every[u.path][energetic[u.path]].mean(0))) for u in test],
                   "dnn_all_segments": [int(np.argmax(every[u.path].mean(0))) for u in test]}
    chosen = {}
    for name, estimator, grid, inputs in (
            ("dnn_elm", ELMClassifier(config.elm_hidden, random_state=config.seed), {"C": config.elm_c}, utter),
            ("dnn_kelm", KernelELMClassifier(), {"C": config.kelm_c, "gamma": config.kelm_gamma}, utter),
            ("dnn_svm", SVC(), {"C": config.svm_c, "gamma": config.svm_gamma}, utter),
            ("frame_svm", SVC(), {"C": config.svm_c, "gamma": config.svm_gamma}, stats)):
        fitted, chosen[name] = grid_search(estimator, grid, inputs["train"], y_train, groups, config)
        predictions[name] = [int(p) for p in fitted.predict(inputs["test"])]
    example = test[0]
    return {"fold": fold, "test_speakers": test_speakers, "train_utterances": len(train),
            "test": [os.path.relpath(u.path, corpus.source) for u in test],
            "y_true": [classes.index(u.emotion) for u in test],
            "predictions": predictions, "chosen": chosen,
            "dnn_training_segments": len(x), "dnn_s": round(dnn_s, 1), "fold_s": round(clock.seconds, 1),
            "stopped_s": round(clock.stopped_s, 1),
            "example": {"path": example.path, "emotion": example.emotion,
                        "probabilities": probs[example.path].round(4).tolist()}}


def summarise(folds: list[dict], classes: list[str]) -> tuple[dict, dict]:
    """Per method: WA (the accuracy over every test utterance of every fold) and UA (the mean over classes of
    their recall over every test utterance: scikit-learn's balanced accuracy), each fold's WA and UA (over
    the classes present in that fold) and their standard deviation as the spread, and the pooled confusion
    matrix."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    final, confusions = {}, {}
    y_true = np.concatenate([f["y_true"] for f in folds])
    for method in METHODS:
        y_pred = np.concatenate([f["predictions"][method] for f in folds])
        wa = [accuracy_score(f["y_true"], f["predictions"][method]) for f in folds]
        with warnings.catch_warnings():  # a fold without every class: its UA is over the classes it has, as meant
            warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
            ua = [balanced_accuracy_score(f["y_true"], f["predictions"][method]) for f in folds]
        final.update({f"wa_{method}": float(accuracy_score(y_true, y_pred)),
                      f"ua_{method}": float(balanced_accuracy_score(y_true, y_pred)),
                      f"wa_{method}_folds": wa, f"ua_{method}_folds": ua,
                      f"wa_{method}_fold_std": float(np.std(wa, ddof=1)),
                      f"ua_{method}_fold_std": float(np.std(ua, ddof=1))})
        confusions[method] = confusion_matrix(y_true, y_pred, labels=range(len(classes))).tolist()
    return final, confusions


def confusion_figure(path: Path, confusions: dict, classes: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METHODS), figsize=(3.2 * len(METHODS), 3.4))
    for ax, method in zip(axes, METHODS, strict=True):
        counts = np.asarray(confusions[method], np.float64)
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        recall = np.diag(counts) / np.maximum(counts.sum(1), 1)
        ax.set_title(f"{LABELS[method]}\nWA {np.trace(counts) / counts.sum():.1%}, UA {recall.mean():.1%}",
                     fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
    axes[0].set_ylabel("true (all folds)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def utterance_figure(path: Path, example: dict, frames: np.ndarray, classes: list[str], context: int) -> None:
    """One test utterance: its waveform, frame features, and the DNN's segment probabilities over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio = read_audio(example["path"], F.SAMPLE_RATE)
    t_frames = (np.arange(len(frames)) * F.HOP + F.FRAME / 2) / F.SAMPLE_RATE
    fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(np.arange(len(audio)) / F.SAMPLE_RATE, audio, lw=0.4, color="k")
    axes[0].set_title(f"{Path(example['path']).name} ({example['emotion']})", fontsize=9)
    axes[1].imshow(frames[:, :F.N_MFCC].T, aspect="auto", origin="lower", cmap="viridis",
                   extent=(t_frames[0], t_frames[-1], 0.5, F.N_MFCC + 0.5))
    axes[1].set_ylabel("MFCC c1-c12", fontsize=8)
    period = frames[:, F.NAMES.index("pitch_period")]
    axes[2].plot(t_frames, np.where(period > 0, 1 / np.maximum(period, 1e-9), np.nan), color="tab:red", label="F0 (Hz)")
    twin = axes[2].twinx()
    twin.plot(t_frames, frames[:, F.NAMES.index("hnr")], color="tab:blue", lw=0.8, label="HNR (dB)")
    axes[2].set_ylabel("F0 (Hz)", color="tab:red", fontsize=8)
    twin.set_ylabel("HNR (dB)", color="tab:blue", fontsize=8)
    probs = np.asarray(example["probabilities"])
    t_segments = t_frames[context:context + len(probs)]
    for k, name in enumerate(classes):
        axes[3].plot(t_segments, probs[:, k], label=name, lw=1)
    axes[3].set_ylabel("P(emotion | segment)", fontsize=8)
    axes[3].set_xlabel("time (s)")
    axes[3].legend(fontsize=7, ncol=len(classes))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: SpeechEmotionConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    corpus = load_corpus(config)
    folds = speaker_folds(corpus, config)[:config.max_folds or None]
    classes = list(config.emotions)
    run.describe_data(source=corpus.source, checksums=corpus.checksums, verified=corpus.verified,
                      utterances=len(corpus.utterances), speakers=len(corpus.speakers()),
                      per_class={e: sum(u.emotion == e for u in corpus.utterances) for e in classes})
    print(f"{config.variant}, preset {preset}: {len(corpus.utterances)} utterances of {len(corpus.speakers())} "
          f"speakers from {corpus.source}; {len(folds)} speaker-independent folds; working files in {run.dir}")
    frames, timing = extract_features(corpus, Path(config.feature_cache or Path(config.runs_dir) / PAPER / "features"))
    audio_h = sum(len(f) for f in frames.values()) * F.HOP / F.SAMPLE_RATE / 3600
    print(f"frame features: {timing['features_computed_s']:.0f} s for {timing['audio_computed_h'] * 60:.1f} min of "
          f"audio not yet cached ({audio_h * 60:.1f} min in all)")
    def show(fold, r):
        accuracy = {m: np.mean(np.array(r["predictions"][m]) == np.array(r["y_true"])) for m in METHODS}
        print(f"  fold {fold + 1}/{len(folds)} ({', '.join(r['test_speakers'])}): " +
              ", ".join(f"{m} {100 * a:.0f} %" for m, a in accuracy.items()) + f"; {r['fold_s']:.0f} s", flush=True)

    results = run.units(folds, lambda fold, speakers: run_fold(fold, speakers, corpus, frames, config),
                        state="folds.json", name="fold", done=show)
    final, confusions = summarise(results, classes)
    final.update(folds=len(results), audio_hours=round(audio_h, 4),
                 feature_s_per_audio_hour=timing["feature_s_per_audio_hour"],
                 fold_s_mean=float(np.mean([r["fold_s"] for r in results])),
                 dnn_s_mean=float(np.mean([r["dnn_s"] for r in results])))
    confusion_figure(run.figure_path("confusion"), confusions, classes)
    example = results[0]["example"]
    utterance_figure(run.figure_path("utterance"), example, frames[example["path"]], classes, config.context)
    summary = ", ".join(f"{LABELS[m]} WA {100 * final[f'wa_{m}']:.1f} % UA {100 * final[f'ua_{m}']:.1f} %"
                        for m in METHODS)
    return run.finish(final, summary=summary, extra={
        "confusions": {"classes": classes, **confusions}, "feature_timing": timing,
        # every test utterance (its file under the corpus folder), fold by fold, with true and predicted labels
        "folds": [{k: r[k] for k in ("fold", "test_speakers", "train_utterances", "dnn_training_segments", "chosen",
                                     "dnn_s", "fold_s", "test", "y_true", "predictions")} for r in results]})


def main(argv=None) -> int:
    return cfg.cli_main(SpeechEmotionConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

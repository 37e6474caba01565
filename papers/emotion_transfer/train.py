"""Cascaded fine-tuning for facial expressions (Ng et al., ICMI 2015): stage one on FER-2013, the schemes on
CK+48's subject-wise folds (or SFEW 2.0's Train/Val split: `--target=sfew`), and their results JSON and figures.

    python papers/emotion_transfer/port_weights.py                       # once: the ImageNet weights
    python papers/emotion_transfer/train.py --scheme=fer --seed=0        # stage one (FER-2013)
    python papers/emotion_transfer/train.py --scheme=b --seed=0          # the cascade on CK+48
    python papers/emotion_transfer/train.py --scheme=a --seed=0          # ... and a, c, d, e
    python papers/emotion_transfer/train.py --scheme=b --target=sfew     # the cascade on SFEW 2.0 (licensed copy)
    python papers/emotion_transfer/train.py --help

CK+48's classes are mapped to FER-2013's (anger -> angry, disgust, fear, happy, sadness -> sad, surprise);
contempt, which FER-2013 has no class for, is left out, and predictions are the most likely of the six
classes CK+48 has (so that scheme e, never trained on CK+48, is judged like the others); SFEW 2.0 has
FER-2013's seven classes. Every network ends in FER-2013's seven logits. An interrupted run resumes from its
last finished epoch (stage one) or fold (the schemes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common.data import ckplus, fer2013, sfew
from common.data.files import DataError, file_digest
from common.data.pipeline import ArrayBatches, pad_crop_flip
from common.lifecycle import config as cfg
from common.lifecycle import training
from common.lifecycle.run import Run
from papers.emotion_transfer.config import PRESETS, STAGE_ONE, EmotionTransferConfig
from papers.emotion_transfer.model import build_classifier, compile_model, set_population_statistics

PAPER = "emotion_transfer"
# CK+48 class -> FER-2013 label (fer2013.CLASSES: angry, disgust, fear, happy, sad, surprise, neutral).
CK_TO_FER = {"anger": 0, "disgust": 1, "fear": 2, "happy": 3, "sadness": 4, "surprise": 5}


@dataclass(frozen=True)
class TargetSet:
    """A target set as the schemes see it: grey images (n, 48, 48, 1) with labels in FER-2013's numbering, the test
    indices of each fold (the other images train), the file of each image, the FER-2013 classes it has (the ones
    a prediction chooses among), the subject of each image where folds go by subject, and what the record says
    of its data."""
    name: str
    x: np.ndarray
    y: np.ndarray
    folds: list
    names: np.ndarray
    classes: list
    subjects: np.ndarray | None
    facts: dict


def batches(x, y, config: EmotionTransferConfig, seed: int) -> ArrayBatches:
    return ArrayBatches(x, y, config.batch_size, seed=seed, workers=1,
                        augment=pad_crop_flip(4) if config.augment else None, drop_remainder=False)


def predict_target(model: keras.Model, x: np.ndarray, classes: list) -> np.ndarray:
    """The most likely of the target's classes (FER-2013 labels)."""
    logits = model.predict(x, batch_size=256, verbose=0)
    return np.asarray(classes)[np.argmax(logits[:, classes], axis=1)]


def stage_one_path(config: EmotionTransferConfig) -> Path:
    """Where the stage-one network of this configuration and seed is saved: named by a hash of the
    stage-one fields and of the ImageNet weights file's contents."""
    fields = {k: getattr(config, k) for k in STAGE_ONE}
    fields["imagenet_weights"] = file_digest(Path(config.imagenet_weights)) if Path(
        config.imagenet_weights).is_file() else None
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{config.backbone}-{config.input_size}px-seed{config.seed}-{digest}.keras"
    return Path(config.runs_dir) / PAPER / "stage_one" / name


def fer_arrays(config: EmotionTransferConfig):
    data = fer2013.load(config.data_dir or None, check_counts=config.verify_data)
    n = config.fer_subset or None
    return {k: (v[:n, ..., None], data.y[k][:n]) for k, v in data.x.items()}, data


def target_set(config: EmotionTransferConfig) -> TargetSet:
    """CK+48 without contempt and its subject-wise folds, or SFEW 2.0 (`--target=sfew`): Train trains, Val tests,
    the split the paper reports on (Test's labels are not public)."""
    if config.target == "sfew":
        data = sfew.load(config.data_dir or None)
        x = np.concatenate([data.x["train"], data.x["val"]])[..., None]
        y = np.concatenate([data.y["train"], data.y["val"]])
        facts = {"source": data.source, "checksums": data.checksums, "verified": data.verified, "images": len(y),
                 "train": len(data.y["train"]), "val": len(data.y["val"]), "folds": 1}
        return TargetSet("SFEW 2.0", x, y, [np.arange(len(data.y["train"]), len(y))],
                         np.concatenate([data.names["train"], data.names["val"]]), list(range(len(fer2013.CLASSES))),
                         None, facts)
    from sklearn.model_selection import GroupKFold

    data = ckplus.load(config.data_dir or None, verify=config.verify_data)
    keep = data.labels != "contempt"
    x, y = data.x[keep][..., None], np.array([CK_TO_FER[c] for c in data.labels[keep]], np.int32)
    subjects = data.subjects[keep]
    folds = [test for _, test in GroupKFold(config.folds).split(x, y, groups=subjects)]
    facts = {"source": data.source, "checksums": data.checksums, "verified": data.verified, "images": len(y),
             "subjects": len(set(subjects)), "folds": len(folds)}
    return TargetSet("CK+48", x, y, folds, data.names[keep], sorted(CK_TO_FER.values()), subjects, facts)


def confusion_figure(path: Path, confusion: np.ndarray, classes: list, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [fer2013.CLASSES[c] for c in classes]
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.4))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_stage_one(run: Run, config: EmotionTransferConfig) -> int:
    """Scheme fer: ImageNet -> FER-2013; its validation and test accuracy; the network saved for b and e."""
    from sklearn.metrics import confusion_matrix

    arrays, data = fer_arrays(config)
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified,
                      **{split: len(y) for split, (_, y) in arrays.items()})
    (x, y), (x_val, y_val), (x_test, y_test) = arrays["train"], arrays["val"], arrays["test"]
    train = batches(x, y, config, config.seed)
    model = compile_model(build_classifier(config), config.fer_learning_rate, config.fer_epochs * len(train), config)
    print(f"{config.variant}: {len(x)} FER-2013 training images from {data.source}, {config.fer_epochs} epochs of "
          f"{len(train)} steps at {config.input_size}x{config.input_size}; working files in {run.dir}")
    run.fit(model, train, epochs=config.fer_epochs, images_per_step=config.batch_size,
            validation_data=(x_val, y_val), validation_batch_size=256)
    if run.failed:
        return run.finish()
    _, val_accuracy = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
    predictions = np.argmax(model.predict(x_test, batch_size=256, verbose=0), axis=1)
    test_accuracy = float(np.mean(predictions == y_test))
    confusion = confusion_matrix(y_test, predictions, labels=range(len(fer2013.CLASSES)))
    confusion_figure(run.figure_path("confusion"), confusion, list(range(len(fer2013.CLASSES))),
                     f"FER-2013 test, {100 * test_accuracy:.1f} %")
    path = stage_one_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = run.state_file("stage_one.json")  # the digest of the file this run saved, should it be stopped later
    if path.exists() and not (mine.exists() and json.loads(mine.read_text())["sha256"] == file_digest(path)):
        raise DataError(f"{path} exists: a stage-one network of this configuration and seed was saved before; "
                        f"schemes b and e use it. Remove it to train a new one.")
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    mine.write_text(json.dumps({"sha256": file_digest(tmp)}))
    os.replace(tmp, path)
    final = {"accuracy": test_accuracy, "fer_val_accuracy": float(val_accuracy), "fer_test_accuracy": test_accuracy,
             "stage_one_file": str(path), "stage_one_sha256": file_digest(path)}
    summary = f"FER-2013 validation {100 * val_accuracy:.2f} %, test {100 * test_accuracy:.2f} %"
    return run.finish(final, summary=summary,
                      extra={"confusion": {"classes": list(fer2013.CLASSES), "counts": confusion.tolist()}})


def run_fold(fold: int, test: np.ndarray, target: TargetSet, config: EmotionTransferConfig, fer=None,
             stage_one: Path | None = None) -> dict:
    """One fold of a scheme (a, b, c, d, e): train as the scheme says, predict the held-out images."""
    keras.utils.set_random_seed(config.seed * 1000 + fold)  # each fold alike whether or not the run resumed
    x, y = target.x, target.y
    train_idx = np.setdiff1d(np.arange(len(y)), test)
    x_train, y_train = x[train_idx], y[train_idx]
    clock, images = training.RunningTime(), 0
    if config.scheme in ("b", "e"):
        model = keras.saving.load_model(stage_one, compile=False)
    else:
        model = build_classifier(config, imagenet=config.scheme != "d")
    if config.scheme == "c":  # one stage on FER-2013's training images and the target fold together
        x_train, y_train = np.concatenate([fer[0], x_train]), np.concatenate([fer[1], y_train])
    curves = {}
    if config.scheme != "e":
        epochs = config.fer_epochs if config.scheme == "c" else config.target_epochs
        lr = config.fer_learning_rate if config.scheme == "c" else config.target_learning_rate
        data = batches(x_train, y_train, config, config.seed * 1000 + fold)
        compile_model(model, lr, epochs * len(data), config)
        # The held-out fold after each epoch, for the curves only (nothing is chosen on it): training and test
        # curves tell a network that did not learn from one that learned but is tested wrongly.
        fitted = model.fit(data, epochs=epochs, verbose=0, shuffle=False, callbacks=[training.EpochSync(data)],
                           validation_data=(x[test], y[test]), validation_batch_size=256)
        curves = {k: [round(float(v), 4) for v in values] for k, values in fitted.history.items()}
        images = epochs * len(x_train)
    train_s = clock.seconds  # less any time the process was stopped (background runs paused)
    predictions = predict_target(model, x[test], target.classes)
    tested = {}
    if config.bn_statistics == "population" and config.scheme != "e":
        tested["accuracy_moving_bn"] = float(np.mean(predictions == y[test]))
        set_population_statistics(model, x[train_idx] if config.scheme != "c" else x_train)
        predictions = predict_target(model, x[test], target.classes)
    majority = np.bincount(y[train_idx]).argmax()  # the most frequent class of the target training fold
    return {"fold": fold, "test_images": len(test), "train_images": len(x_train),
            "accuracy": float(np.mean(predictions == y[test])), **tested,
            "majority_accuracy": float(np.mean(y[test] == majority)), "test_index": test.tolist(),
            "y_true": y[test].tolist(), "y_pred": predictions.tolist(), "curves": curves,
            "train_s": round(train_s, 1), "stopped_s": round(clock.stopped_s, 1),
            "train_images_per_s": images / train_s if images else None}


def run_scheme(run: Run, config: EmotionTransferConfig) -> int:
    from sklearn.metrics import confusion_matrix

    target = target_set(config)
    folds = target.folds[:config.max_folds or None]
    facts = {**target.facts, "folds": len(folds)}
    fer, stage_one = None, None
    if config.scheme == "c":
        arrays, fer_data = fer_arrays(config)
        fer = arrays["train"]
        facts["fer2013"] = {"source": fer_data.source, "checksums": fer_data.checksums, "train": len(fer[1])}
    if config.scheme in ("b", "e"):
        stage_one = stage_one_path(config)
        if not stage_one.is_file():
            raise DataError(f"scheme {config.scheme} starts from the stage-one network {stage_one}, which does not "
                            f"exist: run python papers/emotion_transfer/train.py --scheme=fer with the same settings "
                            f"(seed {config.seed}) first")
        facts["stage_one"] = {"file": str(stage_one), "sha256": file_digest(stage_one)}
    run.describe_data(**facts)
    print(f"{config.variant}: {len(target.y)} {target.name} images from {target.facts['source']}, "
          + (f"{target.facts['subjects']} subjects in {len(folds)} subject-wise folds" if target.subjects is not None
             else f"trained on {target.facts['train']}, tested on {target.facts['val']}")
          + f"; working files in {run.dir}")
    def show(fold, r):
        print(f"  fold {fold + 1}/{len(folds)}: {100 * r['accuracy']:.1f} % of {r['test_images']} images; "
              f"{r['train_s']:.0f} s", flush=True)

    results = run.units(folds, lambda fold, test: run_fold(fold, test, target, config, fer, stage_one),
                        state="folds.json", name="fold", done=show)
    accuracy = [r["accuracy"] for r in results]
    confusion = sum(confusion_matrix(r["y_true"], r["y_pred"], labels=target.classes) for r in results)
    confusion_figure(run.figure_path("confusion"), confusion, target.classes,
                     f"{target.name}, scheme {config.scheme}, {len(results)} folds: {100 * np.mean(accuracy):.1f} %")
    rates = [r["train_images_per_s"] for r in results if r["train_images_per_s"]]
    names = target.names
    final = {"accuracy": float(np.mean(accuracy)),
             "accuracy_fold_std": float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else None,
             "fold_accuracies": accuracy, "folds": len(results),
             "majority_accuracy": float(np.mean([r["majority_accuracy"] for r in results])),
             **({"accuracy_moving_bn": float(np.mean([r["accuracy_moving_bn"] for r in results]))}
                if "accuracy_moving_bn" in results[0] else {}),
             "train_s_per_fold": float(np.mean([r["train_s"] for r in results])),
             "train_images_per_s": float(np.median(rates)) if rates else None}
    spread = (f" ± {100 * final['accuracy_fold_std']:.1f} % over {len(results)} folds"
              if final["accuracy_fold_std"] is not None
              else " % on " + ("Val" if target.subjects is None else "1 fold"))
    return run.finish(final, summary=f"{target.name} accuracy {100 * final['accuracy']:.1f}{spread}",
                      extra={"confusion": {"classes": [fer2013.CLASSES[c] for c in target.classes],
                                           "counts": confusion.tolist()},
                             "fold_predictions": [r["y_pred"] for r in results],
                             # every test image (its CK+48 file), true and predicted label, fold by fold
                             "fold_tests": [{"fold": r["fold"], "images": names[r["test_index"]].tolist(),
                                             "y_true": r["y_true"], "y_pred": r["y_pred"]} for r in results],
                             "fold_curves": [r["curves"] for r in results]})


def train(config: EmotionTransferConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    return run_stage_one(run, config) if config.scheme == "fer" else run_scheme(run, config)


def main(argv=None) -> int:
    return cfg.cli_main(EmotionTransferConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

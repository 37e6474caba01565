"""Train a small classifier to score a generator's samples where Inception-v3 cannot be used.

    python -m common.metrics.score_network --dataset=mnist --seed=0

The GAN papers' scores (Inception Score, FID) need Inception-v3's ImageNet weights, which an offline
machine cannot download, and which say little about 32x32 grey digits anyway. This tool trains a plain
convolutional classifier on the GAN-format images of a dataset (`common.data.image_sets`: MNIST
zero-padded to 32x32x1, CIFAR-10 32x32x3, both scaled to [-1, 1]), measures its accuracy on the test
set and saves it as a `.keras` file with a card (`<file>.json`: dataset, test accuracy, seed, epochs,
git commit, library versions, device, wall time). Pass the file as `--feature_network` of a GAN's
train script; `common.metrics.generative.FeatureNetwork` reads the card, and the scores it gives are named
after the network ("MNIST classifier score"), never "Inception Score".

For CIFAR-10 this repository's ResNet-20 (`papers/resnet/train.py` saves `classifier.keras`) is the
stronger network; this small one is meant for MNIST, where it reaches about 99 % in three epochs.
The file is never overwritten: a second run with the same output path stops with an error.

    python -m common.metrics.score_network annotate results/wgan/<run>.json ...

adds the card's test accuracy to runs scored before their network had a card (ResNet classifiers saved
before `papers/resnet/write_card.py` existed). It checks that the network file still has the sha256 the
scores were made with, and writes a revision of the record (`common.lifecycle.results.write_revision`); the
original is kept and marked superseded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common.errors import UserError

DEFAULT_DIR = Path("runs") / "score_networks"


def card_path(model_file: str | os.PathLike) -> Path:
    """Where the card of a saved score network lives: beside it, same stem, `.json`."""
    return Path(model_file).with_suffix(".json")


def read_card(model_file: str | os.PathLike) -> dict | None:
    path = card_path(model_file)
    return json.loads(path.read_text()) if path.exists() else None


def write_card(model_file: str | os.PathLike, card: dict) -> Path:
    """Write the card of a saved network beside it, atomically; an existing card is never replaced."""
    path = card_path(model_file)
    if path.exists():
        raise FileExistsError(f"{path} exists; a network's card is written once, with the network")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def annotate(record_path: str | os.PathLike) -> Path:
    """A revision of a scored run's results record that adds its score network's test accuracy from
    the network's card. Raises ValueError when there is nothing to add or the network file changed."""
    from common.data.files import file_digest
    from common.lifecycle import results

    record_path = Path(record_path)
    results_dir = record_path.parent.parent
    matches = [r for r in results.load_all(results_dir, record_path.parent.name)
               if Path(r["_path"]).name == record_path.name]
    if not matches:
        raise ValueError(f"{record_path} is not a current results record of {results_dir} "
                         f"(missing, or superseded by a later revision)")
    record = matches[0]
    final = record["final"]
    if "score_network_sha256" not in final:
        raise ValueError(f"{record_path.name} has no sample scores, so there is no score network to describe")
    if final.get("score_network_test_accuracy") is not None:
        raise ValueError(f"{record_path.name} already records its score network's test accuracy")
    model_file = Path(final["score_network_file"])
    if not model_file.exists():
        raise ValueError(f"its score network {model_file} is not on this machine")
    card = read_card(model_file)
    if card is None:
        raise ValueError(f"{model_file} has no card ({card_path(model_file)}); write it first "
                         f"(papers/resnet/write_card.py for a ResNet classifier)")
    digest = file_digest(model_file)
    if digest != final["score_network_sha256"]:
        raise ValueError(f"{model_file} has sha256 {digest}, not the {final['score_network_sha256']} the "
                         f"scores of {record_path.name} were made with; its card describes another network")
    t0 = time.perf_counter()
    started = results.utc_now()
    added = {"score_network_test_accuracy": card.get("test_accuracy"),
             "score_network_card": {k: card.get(k) for k in
                                    ("dataset", "test_accuracy", "seed", "epochs", "git", "started")}}
    return results.write_revision(
        record, results_dir, config=record["config"], final=added, extra={}, started=started,
        wall_time_s=time.perf_counter() - t0,
        reason=f"score network's test accuracy added from its card {card_path(model_file).name}, written after "
               f"this run (same network file: sha256 checked); scores unchanged")


def build_classifier(image_shape: tuple[int, int, int], classes: int = 10, width: int = 32):
    """Two blocks of two 3x3 ReLU convolutions and 2x2 max pooling, a 128-unit ReLU layer (the
    features FeatureNetwork uses: the input of the last layer) and a softmax."""
    import keras
    from keras import layers

    x = keras.Input(image_shape, name="image")
    h = x
    for filters in (width, 2 * width):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D(2)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(128, activation="relu", name="features")(h)
    h = layers.Dropout(0.3)(h)
    return keras.Model(x, layers.Dense(classes, activation="softmax", name="probabilities")(h),
                       name=f"score_classifier_{image_shape[0]}x{image_shape[1]}x{image_shape[2]}")


def train(dataset: str, out: Path, *, seed: int = 0, epochs: int = 3, batch_size: int = 128,
          learning_rate: float = 1e-3, train_subset: int = 0, data_dir: str = "", download: bool = True,
          verify: bool = True, verbose: int = 2) -> dict:
    """Train, evaluate on the test set, save the model and its card; returns the card."""
    from common.data import image_sets
    from common.lifecycle import repro
    from common.lifecycle.results import utc_now

    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"the output must be a .keras file, got {out}")
    for path in (out, card_path(out)):
        if path.exists():
            raise FileExistsError(f"{path} exists; score networks are never overwritten (their SHA-256 "
                                  f"identifies the scores made with them): choose another --out")
    repro.seed_everything(seed)
    import keras

    started, t0 = utc_now(), time.perf_counter()
    images = image_sets.load(dataset, data_dir or None, download, verify)
    x_train, y_train = image_sets.to_tanh_range(images.train), images.y_train
    if train_subset:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]
    x_test, y_test = image_sets.to_tanh_range(images.test), images.y_test
    model = build_classifier(x_train.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, out)
    card = {"what": f"{dataset} classifier for sample scores (common.metrics.score_network)", "dataset": dataset,
            "source": images.source, "checksums": images.checksums, "train_images": len(x_train),
            "test_images": len(x_test),
            "test_accuracy": float(test_accuracy),
            "input": "images in [-1, 1], " + "x".join(map(str, x_train.shape[1:])),
            "seed": seed, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
            "parameters": int(model.count_params()), "git": repro.git_state(), "versions": repro.library_versions(),
            "device": repro.device_info(), "started": started, "wall_time_s": round(time.perf_counter() - t0, 1)}
    write_card(out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    from common.data.image_sets import DATASETS

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["annotate"]:
        if len(argv) < 2:
            print("usage: python -m common.metrics.score_network annotate RESULTS.json [...]", file=sys.stderr)
            return 2
        failed = 0
        for name in argv[1:]:
            try:
                print(f"{name} -> {annotate(name)}")
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                failed += 1
        return 2 if failed else 0

    parser = argparse.ArgumentParser(prog="python -m common.metrics.score_network", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--train_subset", type=int, default=0, help="first N training images only (0: all)")
    parser.add_argument("--data_dir", default="", help="data directory; empty: $KPB_DATA_DIR, else ~/.keras/datasets")
    parser.add_argument("--download", choices=("true", "false"), default="true")
    parser.add_argument("--verify_data", choices=("true", "false"), default="true",
                        help="check the data against the publisher's checksums (off only for synthetic test fixtures)")
    parser.add_argument("--out", default="",
                        help=f"the .keras file (default {DEFAULT_DIR}/<dataset>-classifier-seed<N>.keras)")
    args = parser.parse_args(argv)
    out = Path(args.out or DEFAULT_DIR / f"{args.dataset}-classifier-seed{args.seed}.keras")
    try:
        card = train(args.dataset, out, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                     learning_rate=args.learning_rate, train_subset=args.train_subset, data_dir=args.data_dir,
                     download=args.download == "true", verify=args.verify_data == "true")
    except (FileExistsError, ValueError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dataset} score network: test accuracy {100 * card['test_accuracy']:.2f} % "
          f"({card['wall_time_s']:.0f} s); saved {out} and its card {card_path(out)}")
    print(f"use it with --feature_network={out} \"--feature_network_name={_display(args.dataset)} classifier\"")
    return 0


def _display(dataset: str) -> str:
    return {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(dataset, dataset)


if __name__ == "__main__":
    sys.exit(main())

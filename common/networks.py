"""Trained networks published in this repository, each loadable in one call and checked by its SHA-256.

    from common import networks
    model = networks.load("cgan/mnist-score-classifier")     # results/cgan/networks/mnist-score-classifier.keras
    networks.available()                                      # every published network's card

    python -m common.networks list
    python -m common.networks publish runs/.../classifier.keras --paper=resnet --name=resnet20-fast-seed3 \\
        --card=card.json                                      # what the run's own card does not say

A published network is `results/<paper>/networks/<name>.keras`, an inference copy of the trained network
(plain Keras layers, no optimizer state), with its card `<name>.json` beside it: the paper, model, preset
and seed, the run's results file and commit, its test metric from that record and the slice check the
tests repeat, input shape, dtype, range and preprocessing, what the output means, the file's SHA-256 and
size, and the licence. `keras.saving.load_model(path)` reads the file as it is, with no import of this
repository (`publish` replaces this repository's layer subclasses by the Keras layers they extend; they
compute the same at inference). `load` also checks the file against its card's SHA-256, so a damaged file
or a Git LFS pointer is named instead of half-read.

The repository's budget for network files is `FILE_LIMIT_MIB` a file and `TOTAL_LIMIT_MIB` in all; a network
above it gets a card with `file: null` that says how to produce it with one command (`produce`) and, when a
hosted copy exists, its address and SHA-256 for `keras.utils.get_file(..., file_hash=...)`. So does a network
whose file was not kept (trained before networks were published, on a machine gone since): its card keeps
its run's record and metric, and `produce` trains a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common.data.files import file_digest
from common.errors import UserError, one_line


def _results_folder() -> Path:
    """The clone's results/: beside this package when it runs from the clone (or an editable install), else
    that of the clone the process runs in (`pip install .` from a clone, then `python papers/<name>/train.py`
    from its root, as the README runs it)."""
    beside = Path(__file__).resolve().parent.parent / "results"
    return beside if beside.is_dir() else Path.cwd() / "results"


RESULTS = _results_folder()
FILE_LIMIT_MIB, TOTAL_LIMIT_MIB = 4, 40
LICENCE = "MIT (this repository's licence); the training data keep their own terms (docs/data.md)"
CARD_KEYS = ("name", "paper", "model", "preset", "seed", "record", "commit", "metric", "check", "input", "output",
             "sha256", "bytes", "licence", "produce")


class NetworkError(UserError):
    """A published network that is missing, damaged, or not what its card says."""


def path_of(name: str, results: Path = RESULTS) -> Path:
    """`<paper>/<network>` -> results/<paper>/networks/<network>.keras."""
    paper, _, network = name.partition("/")
    if not paper or not network or "/" in network:
        raise NetworkError(f"a published network is named <paper>/<network>, e.g. cgan/mnist-score-classifier; "
                           f"got {name!r} (python -m common.networks list names them all)")
    return Path(results) / paper / "networks" / f"{network}.keras"


def card_of(name: str, results: Path = RESULTS) -> dict:
    path = path_of(name, results).with_suffix(".json")
    if not Path(results).is_dir():
        raise NetworkError(f"published networks such as {name!r} come with a clone of the repository "
                           f"(results/<paper>/networks/), and there is none at {results}: run from the root of a "
                           f"clone, or name a network file (e.g. --feature_network=FILE)")
    if not path.exists():
        known = ", ".join(c["name"] for c in available(results)) or "none"
        raise NetworkError(f"no published network {name!r} (no {path}); published: {known}")
    return json.loads(path.read_text())


def available(results: Path = RESULTS) -> list[dict]:
    """Every published network's card, by name."""
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("*/networks/*.json"))]


def load(name: str, results: Path = RESULTS):
    """The published network `name` (<paper>/<network>), its file checked against its card's SHA-256 first."""
    import keras

    card = card_of(name, results)
    path = path_of(name, results)
    if card.get("file") is None and not path.exists():
        raise NetworkError(f"{name} is not committed ({card.get('why_not_committed')}); produce one with: "
                           f"{card.get('produce')}")
    if not path.exists():
        raise NetworkError(f"{path} is missing; its card is there: restore the file from git")
    digest = file_digest(path)
    if digest != card["sha256"]:
        raise NetworkError(f"{path} has SHA-256 {digest[:12]}..., not its card's {card['sha256'][:12]}...: the file "
                           f"is damaged or not the published one (a Git LFS pointer?); restore it from git")
    return keras.saving.load_model(path, compile=False)


def inference_copy(model):
    """The network with plain Keras layers in place of this repository's subclasses (`common.layers`: the
    same computation at inference) and without optimizer state: what `publish` saves."""
    import keras

    from common import layers as ours

    def plain(layer):
        for kind in (ours.BatchNormalization, ours.Dropout, ours.GaussianNoise):
            if isinstance(layer, kind):
                return kind.__bases__[0].from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=plain, recursive=True)
    copy.set_weights(model.get_weights())
    if any(getattr(layer, "compiled", False) for layer in copy.layers):  # a nested model keeps its compilation
        # (its optimizer, whose schedule may be this repository's class): rebuilt from its config, it has none
        def uncompiled(node):
            if isinstance(node, dict):
                return {k: uncompiled(v) for k, v in node.items() if k != "compile_config"}
            return [uncompiled(v) for v in node] if isinstance(node, list) else node

        weights = copy.get_weights()
        copy = keras.Model.from_config(uncompiled(copy.get_config()))
        copy.set_weights(weights)
    return copy


def publish(model_file: Path, paper: str, name: str, card: dict, results: Path = RESULTS) -> Path:
    """Save the inference copy of the network in `model_file` as results/<paper>/networks/<name>.keras with its
    card (`card` gives the fields the file cannot: see CARD_KEYS); refuses a name already published and a
    file over the budget. Returns the card's path."""
    import keras

    import common.layers  # noqa: F401  (registers this repository's layers, which the run's file may hold)

    out = path_of(f"{paper}/{name}", results)
    if out.exists() or out.with_suffix(".json").exists():
        raise NetworkError(f"{out} is already published; a published network is never replaced: choose another name")
    try:
        trained = keras.saving.load_model(model_file, compile=False)
    except (OSError, ValueError) as e:  # Keras: ValueError for a missing file or one that is not a .keras zip
        raise NetworkError(f"{model_file}: not a Keras model file this can read ({e})") from None
    copy = inference_copy(trained)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.keras")
    copy.save(tmp)
    size = tmp.stat().st_size
    others = sum(p.stat().st_size for p in Path(results).glob("*/networks/*.keras"))
    if size > FILE_LIMIT_MIB * 2**20 or size + others > TOTAL_LIMIT_MIB * 2**20:
        tmp.unlink()
        raise NetworkError(f"{name} is {size / 2**20:.1f} MiB ({(size + others) / 2**20:.1f} MiB with the others): "
                           f"over the budget of {FILE_LIMIT_MIB} MiB a file, {TOTAL_LIMIT_MIB} MiB in all; publish "
                           f"a card with file null and its produce command instead")
    os.replace(tmp, out)
    full = {"name": f"{paper}/{name}", "paper": paper, "file": out.name, **card, "sha256": file_digest(out),
            "bytes": out.stat().st_size, "licence": LICENCE,
            "load": f"keras.saving.load_model('{out.relative_to(Path(results).parent).as_posix()}') or "
                    f"common.networks.load('{paper}/{name}')"}
    missing = [k for k in CARD_KEYS if k not in full]
    if missing:
        out.unlink()
        raise NetworkError(f"the card lacks {', '.join(missing)}")
    out.with_suffix(".json").write_text(json.dumps(full, indent=1) + "\n")
    return out.with_suffix(".json")


@one_line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.networks", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every published network with its metric and input")
    p = sub.add_parser("publish", help="publish a trained network with its card")
    p.add_argument("model_file", type=Path)
    p.add_argument("--paper", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--card", type=Path, required=True, help="a JSON file with the card's fields (CARD_KEYS)")
    args = ap.parse_args(argv)
    if args.action == "list":
        for card in available():
            metric = card.get("metric")
            if card.get("file") is None:
                reached = f", its run: {metric['name']} {metric['value']:.4f}" if metric else ""
                print(f"{card['name']}: {card['model']}{reached}; not committed ({card['why_not_committed']}); "
                      f"produce one with: {card['produce']}")
                continue
            print(f"{card['name']}: {card['model']} ({card['preset']}, seed {card['seed']}), {metric['name']} "
                  f"{metric['value']:.4f} on {metric['on']}; input {card['input']['shape']} {card['input']['range']}")
    else:
        try:
            card = json.loads(args.card.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise NetworkError(f"--card {args.card}: not a readable JSON file ({e})") from None
        print(publish(args.model_file, args.paper, args.name, card))
    return 0


if __name__ == "__main__":
    sys.exit(main())

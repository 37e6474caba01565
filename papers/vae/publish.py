"""Publish a finished MNIST VAE run's encoder and decoder (results/vae/networks/) with their cards.

    python papers/vae/publish.py results/vae/<run>.json

The run's record names its `encoder.keras` and `decoder.keras` (train.py saves them when it finishes), which
must still be on this machine. Each card gives the record's importance-sampled log p(x) as its metric and, as
its check, the one-sample bound of the two files together on the first 1,000 binarized test images with
the noise of NumPy's generator seeded 0 (model.py, `bound_of_networks`); tests/common/test_networks.py
recomputes it from the committed files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import networks
from common.data import mnist
from common.errors import UserError, one_line
from papers.vae.config import PAPER_HIDDEN
from papers.vae.data import BINARIZE_SEEDS, binarize

CHECK_POINTS, CHECK_SEED = 1000, 0


def binarized_test_images(data_dir: str | None = None, verify: bool = True) -> np.ndarray:
    """MNIST's 10,000 test images as the VAE is measured on them: flattened, each pixel on with probability
    grey / 255, drawn once with the test set's seed (papers/vae/data.py)."""
    test = mnist.load(data_dir, download=False, verify=verify).x_test
    return binarize(test.reshape(len(test), -1), np.random.default_rng(BINARIZE_SEEDS["test"]))


def check_bound(encoder, decoder, data_dir: str | None = None, verify: bool = True) -> float:
    """The check a card gives: the mean one-sample bound on the first CHECK_POINTS binarized test images."""
    from papers.vae.model import bound_of_networks

    x = binarized_test_images(data_dir, verify)[:CHECK_POINTS]
    return round(float(np.mean(bound_of_networks(encoder, decoder, x, seed=CHECK_SEED))), 4)


def cards(record: dict, record_path: str, bound: float) -> dict:
    """The encoder's and the decoder's cards (the fields `networks.publish` does not fill in)."""
    c, final = record["config"], record["final"]
    stem = f"mnist-z{c['latent_dim']}-{record['preset']}-seed{c['seed']}"
    mlp = (f"one tanh hidden layer of {c['hidden_units']} units, N_z = {c['latent_dim']} (Kingma & Welling 2013, "
           f"Appendix C; Adagrad step size {final['learning_rate']}, {final['samples_seen']:,} training samples)")
    paper_preset = c["hidden_units"] == PAPER_HIDDEN["mnist"] and record["preset"] == "paper"
    common = {
        "preset": "paper (the paper's recipe, §5 and Appendix C)" if paper_preset else record["preset"],
        "seed": c["seed"], "record": record_path, "commit": record["sessions"][-1]["commit"][:7],
        "metric": {"name": f"importance-sampled log p(x) in nats (k = {final['ll_k']})", "value": final["test_ll"],
                   "on": f"MNIST's first {final['ll_test_points']:,} test images, binarized once (the record's "
                         f"final.test_ll; its one-sample bound: final.test_elbo {final['test_elbo']:.2f})"},
        "check": {"kind": "vae_bound", "dataset": "mnist", "first": CHECK_POINTS, "seed": CHECK_SEED,
                  "encoder": f"vae/{stem}-encoder", "decoder": f"vae/{stem}-decoder", "bound": bound},
        "produce": f"python papers/vae/train.py --dataset=mnist --latent_dim={c['latent_dim']} --seed={c['seed']}"
                   + ("" if paper_preset else f" --preset={record['preset']}")
                   + " (another machine may give another file: the card's SHA-256 names this one)",
        "device": record["device"]["name"], "wall_time_s": record["wall_time_s"]}
    binary = ("a binarized MNIST image, flattened: each pixel 1 with probability grey / 255, else 0 (the test set "
              f"drawn once with seed {BINARIZE_SEEDS['test']}: papers/vae/data.py)")
    return {
        "encoder": {**common, "model": f"VAE encoder q(z|x), {mlp}",
                    "input": {"shape": [784], "dtype": "float32", "range": "{0, 1}", "preprocessing": binary},
                    "output": f"[mean, log-variance] of the Gaussian q(z|x), each of {c['latent_dim']} units"},
        "decoder": {**common, "model": f"VAE decoder p(x|z), {mlp}",
                    "input": {"shape": [c["latent_dim"]], "dtype": "float32", "range": "z ~ N(0, I), the prior",
                              "preprocessing": "none"},
                    "output": "784 Bernoulli logits of p(x|z); sigmoid gives E[x|z], a 28x28 image in [0, 1] "
                              "(reshape row by row)"}}


@one_line
def main(argv: list[str] | None = None) -> int:
    import keras

    ap = argparse.ArgumentParser(prog="python papers/vae/publish.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("record", type=Path, help="the run's results JSON, results/vae/<run>.json")
    path = ap.parse_args(argv).record
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable results JSON ({e})") from None
    if (record.get("paper") != "vae" or record.get("status") != "completed" or record["config"]["dataset"] != "mnist"
            or record["data"]["binarization"] not in ("dynamic", "fixed")):
        raise UserError(f"{path} is not a completed MNIST VAE run measured on the sampled binary test set")
    files = {name: record["final"].get(f"{name}_file") for name in ("encoder", "decoder")}
    if not all(files.values()) or not all(Path(f).exists() for f in files.values()):
        raise UserError(f"its networks {list(files.values())} are not on this machine (runs finished before "
                        "train.py saved them have none)")
    bound = check_bound(*(keras.saving.load_model(files[n]) for n in ("encoder", "decoder")),
                        record["config"]["data_dir"] or None, record["config"]["verify_data"])
    for name, card in cards(record, path.as_posix(), bound).items():
        print(networks.publish(Path(files[name]), "vae", card["check"][name].removeprefix("vae/"), card))
    print(f"check: one-sample bound {bound} nats on the first {CHECK_POINTS} binarized test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

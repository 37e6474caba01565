"""Train a WGAN (weight clipping, Arjovsky et al. 2017) or WGAN-GP (gradient penalty, Gulrajani et al.
2017) on CIFAR-10 or MNIST, and write its results JSON and figures.

    python papers/wgan/train.py --loss=gp --dataset=cifar10 --seed=0   # Gulrajani et al.'s recipe
    python papers/wgan/train.py --loss=clip --dataset=cifar10          # Arjovsky et al.'s
    python papers/wgan/train.py --preset=quick --loss=gp               # a short CPU run
    python papers/wgan/train.py --help                                 # every field, default and preset

Every epoch (and after the first) the run logs, beside the critic's training estimate of the
Wasserstein distance, the same estimate on held-out real images and an independent sample-quality
signal: the distance of fixed-z samples to their nearest held-out image, and, given a feature
network (`--feature_network=model.keras --feature_network_name=...` or `--inception_weights=...h5`),
its score and Fréchet distance. The figure `w_vs_quality` sets them side by side (Arjovsky et al.
§4, Figs. 3-4). An interrupted run resumes from its last finished epoch.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import gan, images
from common.data import image_sets
from common.data.pipeline import ArrayBatches
from common.lifecycle import config as cfg
from common.lifecycle import distribute
from common.lifecycle.run import Run
from papers.wgan.config import PRESETS, WGANConfig
from papers.wgan.model import AUTHORS_SCHEDULE, WGAN, build_model, train_steps_for

PAPER = "wgan"


def critic_gap(model: WGAN, held_out: np.ndarray):
    """The critic's Wasserstein estimate between held-out real images and samples (inference mode)."""
    def gap(samples):
        real = gan.generate(model.critic, held_out[:len(samples)])
        return float(real.mean() - gan.generate(model.critic, samples).mean())
    return gap


class QualityTrack(keras.callbacks.Callback):
    """Sample quality over training, added to the epoch's logs (and so to the CSV history) every
    `every` epochs and after the first: for `len(z)` samples of fixed latent vectors, the mean distance
    to the nearest held-out real image (`sample_nn_distance`), the fraction of distinct nearest
    neighbours, the score and Fréchet distance of a feature network if one is given
    (`sample_score`, `sample_fd`), and `extra` numbers: name -> fn(samples) -> float. Epochs in
    between log NaN. Put it before the CSV logger in the callback list."""

    def __init__(self, generator, z: np.ndarray, held_out: np.ndarray, every: int = 1, network=None,
                 extra: dict | None = None):
        super().__init__()
        self.generator, self.z, self.held_out, self.every = generator, z, held_out, every
        self.network, self.extra = network, dict(extra or {})

    def measure(self) -> dict:
        samples = gan.generate(self.generator, self.z)
        out = {"sample_nn_distance": float(gan.nearest_neighbour_distance(samples, self.held_out).mean()),
               "sample_nn_distinct": len(np.unique(gan.nearest_neighbour_index(samples, self.held_out))) / len(samples)}
        if self.network is not None:
            scores = self.network.scores(samples, self.held_out[:len(samples)], splits=1)
            out.update(sample_score=scores["score"], sample_fd=scores["frechet_distance"])
        out.update({name: float(fn(samples)) for name, fn in self.extra.items()})
        return out

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        due = epoch == 0 or (epoch + 1) % self.every == 0
        measured = self.measure() if due else None
        keys = ["sample_nn_distance", "sample_nn_distinct", *(["sample_score", "sample_fd"] if self.network else []),
                *self.extra]
        logs.update({k: measured[k] if measured else float("nan") for k in keys})


class CountGeneratorSteps(keras.callbacks.Callback):
    """Adds the generator updates made so far to each epoch's logs (the history's x axis)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["generator_steps"] = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


def plot_w_vs_quality(history: list[dict], path: Path, steps_per_epoch: int, quality_label: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h.get("generator_steps") or h["epoch"] * steps_per_epoch for h in history]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(steps, [h.get("w_estimate") for h in history], color="tab:blue", label="critic: W estimate (training)")
    ax.plot(steps, [h.get("heldout_w_estimate") for h in history], color="tab:blue", ls="--",
            label="critic: W estimate (held-out)")
    ax.set_xlabel("generator iterations")
    ax.set_ylabel("Wasserstein estimate", color="tab:blue")
    twin = ax.twinx()
    key = "sample_score" if any(h.get("sample_score") is not None for h in history) else "sample_nn_distance"
    twin.plot(steps, [h.get(key) for h in history], color="tab:red", marker="o", ms=3, label=quality_label)
    twin.set_ylabel(textwrap.fill(quality_label, 40), color="tab:red")  # a long network name stays on the figure
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def train(config: WGANConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, callbacks=extra_callbacks)
    distribute.check_batch(config.generator_batch, "generator_batch")  # G's minibatch splits over replicas too
    data = image_sets.load(config.dataset, config.data_dir, config.download, config.verify_data)
    train_images = image_sets.to_tanh_range(data.train[:config.train_subset or None])
    test = image_sets.to_tanh_range(data.test)
    run.describe_data(source=data.source, checksums=data.checksums, verified=data.verified, train=len(train_images),
                      test=len(test))
    model = build_model(config, train_images.shape[1:])
    network = config.score_network()
    # One step of the model = n_critic critic minibatches + one generator minibatch.
    per_step = config.batch_size * config.n_critic
    train_ds = distribute.minibatches_for_replicas(
        ArrayBatches(train_images, None, per_step, seed=config.seed, workers=config.data_workers), config.n_critic)
    train_steps = train_steps_for(config.generator_steps, config.n_critic, config.critic_schedule)
    epochs = math.ceil(train_steps / len(train_ds))
    a = AUTHORS_SCHEDULE
    schedule = ("" if config.critic_schedule == "algorithm1" else
                f", {a['heavy_critic_updates']} before each of the first {a['first']} and every {a['every']}th "
                f"({train_steps} steps in all)")
    print(f"{config.variant}, preset {preset}: {len(train_images)} training images from {data.source}; "
          f"{config.generator_steps} generator steps of {config.n_critic} critic steps{schedule} "
          f"({epochs} epochs of {len(train_ds)}); working files in {run.dir}")
    rng = np.random.default_rng([config.seed, 1])
    fixed_z = rng.normal(size=(100, config.latent_dim)).astype(np.float32)
    track_z = rng.normal(size=(config.track_samples, config.latent_dim)).astype(np.float32)
    held_out = test[rng.choice(len(test), min(len(test), max(config.track_samples, 10_000)), replace=False)]
    quality = QualityTrack(model.generator, track_z, held_out, every=config.track_every, network=network,
                               extra={"heldout_w_estimate": critic_gap(model, held_out)})
    grid = gan.SampleGrid(model.generator, fixed_z, run.dir / "samples", rows=10, every=config.sample_every)

    run.fit(model, train_ds, epochs=epochs, images_per_step=per_step, max_steps=train_steps,
            callbacks=[CountGeneratorSteps(), grid, quality], reseed=[model.noise])
    history = run.history()
    g_steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    critic_steps = int(keras.ops.convert_to_numpy(model.optimizer.players["critic"].iterations))
    # A train step is n_critic critic updates; it makes a generator update unless the schedule says wait.
    generator_per_step = g_steps / max(1, critic_steps // config.n_critic)
    final = {"generator_steps": g_steps, "critic_steps": critic_steps,  # images/s: real images through the critic
             "generator_steps_per_s": (run.throughput or 0) / per_step * generator_per_step or None,
             "w_estimate": history[-1].get("w_estimate") if history else None}
    if run.failed:
        return run.finish(final)

    end = quality.measure()
    final.update(heldout_w_estimate=end["heldout_w_estimate"], nn_distance=end["sample_nn_distance"],
                 nn_distinct_fraction=end["sample_nn_distinct"])
    scores = None
    if network is not None:
        z = np.random.default_rng([config.seed, 2]).normal(size=(config.score_samples, config.latent_dim))
        scores, kept = gan.score_samples(network, model.generator, z.astype(np.float32), test)
        final.update(kept)
    for name, net in (("generator", model.generator), ("critic", model.critic)):
        final[f"{name}_file"] = str(run.save_model(net, name))
    images.save_grid(run.figure_path("samples"), gan.generate(model.generator, fixed_z), 10, 10, value_range=(-1, 1))
    walk = gan.interpolate(fixed_z[:10], fixed_z[10:20], 10)
    images.save_grid(run.figure_path("interpolation"), gan.generate(model.generator, walk), 10, 10,
                     value_range=(-1, 1))
    quality_label = (f"{network.name} score of samples" if network is not None
                     else "samples: distance to nearest held-out image")
    plot_w_vs_quality(history, run.figure_path("w_vs_quality"), len(train_ds), quality_label)
    summary = (f"critic's W estimate {final['w_estimate']:.3f} (training), {final['heldout_w_estimate']:.3f} "
               f"(held-out); samples {final['nn_distance']:.2f} from their nearest held-out image")
    if scores:
        summary += f"; {network.name} score {scores['score']:.2f}, FD {scores['frechet_distance']:.2f}"
    return run.finish(final, summary=summary, extra={"scores": scores})


def main(argv=None) -> int:
    return cfg.cli_main(WGANConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

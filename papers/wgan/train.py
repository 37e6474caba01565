"""Train a WGAN (weight clipping, Arjovsky et al. 2017) or WGAN-GP (gradient penalty, Gulrajani et al.
2017) on CIFAR-10 or MNIST, and write its results JSON, figures and report.

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
import time
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import config as cfg
from common import gan, images, results, training
from common.data.pipeline import ArrayBatches
from common.repro import seed_everything
from papers.wgan import resnet
from papers.wgan.config import PRESETS, WGANConfig
from papers.wgan.model import AUTHORS_SCHEDULE, WGAN, train_steps_for

PAPER = "wgan"


def build(config: WGANConfig, image_shape) -> WGAN:
    norm = config.resolved("critic_norm")
    if config.architecture == "resnet":
        generator = resnet.resnet_generator(image_shape, config.latent_dim, config.ngf)
        critic = resnet.resnet_critic(image_shape, config.ndf, norm=norm)
    else:
        generator = gan.dcgan_generator(image_shape, config.latent_dim, config.ngf, config.init_std)
        critic = gan.dcgan_critic(image_shape, config.ndf, config.init_std, norm=norm, name="critic")
    model = WGAN(generator, critic, config.latent_dim, loss=config.loss, n_critic=config.n_critic,
                 batch_size=config.batch_size, clip_value=config.clip_value, gp_weight=config.gp_weight,
                 seed=config.seed, g_batch_size=config.resolved("generator_batch"),
                 critic_schedule=config.critic_schedule, name=f"wgan_{config.loss}")
    steps = config.resolved("generator_steps")
    critic_updates = config.n_critic * train_steps_for(steps, config.n_critic, config.critic_schedule)
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(optimizer(config, critic_updates), optimizer(config, steps), jit_compile=jit)
    return model


def optimizer(config: WGANConfig, updates: int) -> keras.optimizers.Optimizer:
    """The variant's optimizer for a player making `updates` updates in the whole run (for the decay)."""
    lr = config.resolved("learning_rate")
    if config.resolved("lr_decay") == "true":  # linearly to 0 at the last update (Gulrajani et al.'s script)
        lr = keras.optimizers.schedules.PolynomialDecay(lr, updates, end_learning_rate=0.0, power=1.0)
    if config.loss == "clip":
        return keras.optimizers.RMSprop(lr, rho=config.rmsprop_rho)
    return keras.optimizers.Adam(lr, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2)


def critic_gap(model: WGAN, held_out: np.ndarray):
    """The critic's Wasserstein estimate between held-out real images and samples (inference mode)."""
    def gap(samples):
        real = gan.generate(model.critic, held_out[:len(samples)])
        return float(real.mean() - gan.generate(model.critic, samples).mean())
    return gap


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


def run(config: WGANConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    started, t0 = results.utc_now(), time.perf_counter()
    seed_everything(config.seed)
    data = gan.load_images(config.dataset, config.data_dir, config.download)
    train = gan.scale_images(data["train"][:config.train_subset or None])
    test = gan.scale_images(data["test"])
    model = build(config, train.shape[1:])
    network = config.score_network()
    run_path = training.run_dir(config, PAPER, config.variant, preset)
    # One step of the model = n_critic critic minibatches + one generator minibatch.
    per_step = config.batch_size * config.n_critic
    train_ds = ArrayBatches(train, None, per_step, seed=config.seed, workers=config.data_workers)
    steps_per_epoch = len(train_ds)
    generator_steps = config.resolved("generator_steps")
    train_steps = train_steps_for(generator_steps, config.n_critic, config.critic_schedule)
    epochs = math.ceil(train_steps / steps_per_epoch)
    a = AUTHORS_SCHEDULE
    schedule = ("" if config.critic_schedule == "algorithm1" else
                f", {a['heavy_critic_updates']} before each of the first {a['first']} and every {a['every']}th "
                f"({train_steps} steps in all)")
    print(f"{config.variant}, preset {preset}: {len(train)} training images from {data['source']}; "
          f"{generator_steps} generator steps of {config.n_critic} critic steps{schedule} "
          f"({epochs} epochs of {steps_per_epoch}); working files in {run_path}")
    rng = np.random.default_rng([config.seed, 1])
    fixed_z = rng.normal(size=(100, config.latent_dim)).astype(np.float32)
    track_z = rng.normal(size=(config.track_samples, config.latent_dim)).astype(np.float32)
    held_out = test[rng.choice(len(test), min(len(test), max(config.track_samples, 10_000)), replace=False)]
    quality = gan.QualityTrack(model.generator, track_z, held_out, every=config.track_every, network=network,
                               extra={"heldout_w_estimate": critic_gap(model, held_out)})
    std = training.callbacks(run_path, per_step, config.tensorboard)
    cbs = [training.EpochSync(train_ds), CountGeneratorSteps(), training.ReseedEachEpoch([model.noise], config.seed),
           gan.SampleGrid(model.generator, fixed_z, run_path / "samples", rows=10, every=config.sample_every),
           quality, *std.values(), training.StopAtIteration(train_steps, steps_per_epoch),
           *extra_callbacks]
    training.fit(model, train_ds, run_path, epochs=epochs, callbacks=cbs)

    failed = std["nan"].failed_at
    history = training.read_history(run_path)
    g_steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    critic_steps = int(keras.ops.convert_to_numpy(model.optimizer.players["critic"].iterations))
    # A train step is n_critic critic updates; it makes a generator update unless the schedule says wait.
    generator_per_step = g_steps / max(1, critic_steps // config.n_critic)
    final = {"iterations": g_steps, "generator_steps": g_steps, "critic_steps": critic_steps,
             "train_images_per_s": std["timer"].steady_throughput(),  # real images through the critic
             "generator_steps_per_s": (std["timer"].steady_throughput() or 0) / per_step * generator_per_step or None,
             "w_estimate": history[-1].get("w_estimate") if history else None}
    figures, scores = {}, None
    if failed is None:
        end = quality.measure()
        final.update(heldout_w_estimate=end["heldout_w_estimate"], nn_distance=end["sample_nn_distance"],
                     nn_distinct_fraction=end["sample_nn_distinct"])
        if network is not None:
            z = np.random.default_rng([config.seed, 2]).normal(size=(config.score_samples, config.latent_dim))
            scores, kept = gan.score_samples(network, model.generator, z.astype(np.float32), test)
            final.update(kept)
        for name, net in (("generator", model.generator), ("critic", model.critic)):
            final[f"{name}_file"] = str(training.save_model(net, run_path, name))
        folder = Path(config.results_dir) / PAPER / "figures"
        stem = f"{config.variant}_{preset}_seed{config.seed}_{started.replace(':', '').replace('-', '')[:15]}Z"
        quality_label = (f"{network.name} score of samples" if network is not None
                         else "samples: distance to nearest held-out image")
        written = {
            "samples": images.save_grid(folder / f"{stem}_samples.png", gan.generate(model.generator, fixed_z), 10, 10,
                                        value_range=(-1, 1)),
            "interpolation": images.save_grid(
                folder / f"{stem}_interpolation.png",
                gan.generate(model.generator, gan.interpolate(fixed_z[:10], fixed_z[10:20], 10)), 10, 10,
                value_range=(-1, 1)),
            "w_vs_quality": plot_w_vs_quality(history, folder / f"{stem}_w_vs_quality.png", steps_per_epoch,
                                              quality_label)}
        figures = {k: Path(v).relative_to(folder.parent).as_posix() for k, v in written.items()}
    else:
        final["failure"] = failed
    record = results.make_record(
        paper=PAPER, variant=config.variant, preset=preset, config=config, started=started,
        wall_time_s=std["timer"].wall_time_s, history=history, final=final,
        status="failed" if failed else "completed",
        extra={"data": {"source": data["source"], "train": len(train), "test": len(test)}, "figures": figures,
               "resolved": {k: config.resolved(k) for k in config.RESOLVED}, "scores": scores,
               "sessions": std["timer"].sessions, "process_time_s": round(time.perf_counter() - t0, 1)},
    )
    if failed is None:
        outcome = (f"critic's W estimate {final['w_estimate']:.3f} (training), {final['heldout_w_estimate']:.3f} "
                   f"(held-out); samples {final['nn_distance']:.2f} from their nearest held-out image")
        if scores:
            outcome += f"; {network.name} score {scores['score']:.2f}, FD {scores['frechet_distance']:.2f}"
    else:
        outcome = training.failure_text(failed)
    return training.conclude(record, config.results_dir, PAPER, outcome, run_path)


def main(argv=None) -> int:
    return cfg.cli_main(WGANConfig, PRESETS, run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

"""Train a VAE as in Kingma & Welling 2013, §5, then measure it and write its results JSON and figures.

    python papers/vae/train.py --dataset=mnist --latent_dim=20 --seed=0     # the paper's recipe
    python papers/vae/train.py --preset=quick --dataset=frey_face --latent_dim=2
    python papers/vae/train.py --help                                       # every field, default and preset

Measured after training: the lower bound per datapoint on the test set and on training images, the
importance-sampled log p(x) (k = ll_samples) on the test set, a grid of samples, reconstructions,
and for N_z = 2 the learned manifold (Fig. 4). The trained encoder and decoder are saved in the run's
directory as plain Keras models (`encoder.keras`, `decoder.keras`; model.py, `inference_networks`). An
interrupted run resumes from its last finished epoch when the same command is run again.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import common.tf_env  # noqa: F401

import keras
import numpy as np

from common import images
from common.data.pipeline import ArrayBatches
from common.lifecycle import config as cfg
from common.lifecycle import distribute, training
from common.lifecycle.repro import seed_everything
from common.lifecycle.run import Run
from papers.vae.config import PRESETS, VAEConfig
from papers.vae.data import prepare_data
from papers.vae.model import VAE, inference_networks, marginal_log_likelihood

PAPER = "vae"
def build_model(config: VAEConfig, n_train: int, data_dim: int, likelihood: str) -> VAE:
    l2 = 1.0 / (2.0 * n_train * config.prior_std**2) if config.prior_std else 0.0
    model = VAE(data_dim, config.latent_dim, config.hidden_units, likelihood, init_std=config.init_std,
                l2=l2, seed=config.seed, name="vae")
    model.build((None, data_dim))
    return model


def compile_model(model: VAE, config: VAEConfig, learning_rate: float) -> VAE:
    model.compile(optimizer=keras.optimizers.Adagrad(learning_rate,
                                                     initial_accumulator_value=config.adagrad_initial_accumulator),
                  jit_compile=config.jit)
    return model


def choose_learning_rate(config: VAEConfig, data: dict, cache: Path) -> tuple[float, dict | None]:
    """§5: 'stepsizes were adapted with Adagrad; the Adagrad global stepsize parameters were chosen
    from {0.01, 0.02, 0.1} based on performance on the training set in the first few iterations'.
    Each candidate trains a fresh model (same seed) for `lr_search_samples`; the one with the highest
    bound on the train-bound subset wins. The choice is kept in `cache` (run state) for resumes."""
    if config.learning_rate:
        return config.learning_rate, None
    if cache.exists():
        found = json.loads(cache.read_text())
        return found["chosen"], found
    train = data["train"]
    steps = max(1, config.lr_search_samples // config.batch_size)
    passes = math.ceil(steps * config.batch_size / len(train))
    bounds = {}
    for lr in config.lr_candidates:
        distribute.clear_session()  # a fresh graph per candidate, instead of retracing into the old one
        seed_everything(config.seed)
        model = compile_model(build_model(config, len(train), train.shape[1], data["likelihood"]), config, lr)
        ds = ArrayBatches(train, None, config.batch_size, seed=config.seed, augment=data["transform"],
                          workers=config.data_workers, passes=passes)
        distribute.prepare_model(model)
        model.fit(distribute.shard_for_process(ds), epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        bound = model.evaluate(data["train_eval"], batch_size=config.eval_batch_size, verbose=0,
                               return_dict=True)["elbo"]
        bounds[str(lr)] = float(bound) if math.isfinite(bound) else None
        print(f"  step size {lr}: training bound {bound:.2f} nats after {steps * config.batch_size} samples",
              flush=True)
    finite = {float(k): v for k, v in bounds.items() if v is not None}
    if not finite:
        raise RuntimeError(f"every candidate step size diverged in the first {steps} iterations: {bounds}")
    chosen = max(finite, key=finite.get)
    found = {"chosen": chosen, "bounds": bounds, "samples": steps * config.batch_size}
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(found))
    os.replace(tmp, cache)
    return chosen, found


class BoundOnTrainSet(keras.callbacks.Callback):
    """After each epoch: the lower bound on a fixed set of training images (Fig. 2's train curve),
    and the number of training samples seen so far (Fig. 2's horizontal axis; a last epoch cut short
    by max_samples counts only its iterations)."""

    def __init__(self, x: np.ndarray, eval_batch_size: int, train_batch_size: int):
        super().__init__()
        self.x, self.eval_batch_size, self.train_batch_size = x, eval_batch_size, train_batch_size

    def on_epoch_end(self, epoch, logs=None):
        result = self.model.evaluate(self.x, batch_size=self.eval_batch_size, verbose=0, return_dict=True)
        logs["train_elbo"] = result["elbo"]
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        logs["samples_seen"] = iterations * self.train_batch_size


def write_figures(model: VAE, config: VAEConfig, data: dict, run: Run) -> None:
    """Samples from the prior, test reconstructions and (N_z = 2) the manifold of Fig. 4, as PNGs."""
    from scipy.special import ndtri

    shape = data["image_shape"]
    rng = np.random.default_rng(config.seed)
    z = rng.standard_normal((100, config.latent_dim)).astype(np.float32)
    samples = keras.ops.convert_to_numpy(model.mean_image(z)).reshape(-1, *shape)
    images.save_grid(run.figure_path("samples"), samples, 10, 10)
    x = data["test"][:20]
    mean, _ = model.encode(x)
    recon = keras.ops.convert_to_numpy(model.mean_image(mean)).reshape(-1, *shape)
    pairs = np.concatenate([x.reshape(2, 10, *shape), recon.reshape(2, 10, *shape)], axis=1).reshape(-1, *shape)
    images.save_grid(run.figure_path("reconstructions"), pairs, 4, 10)
    if config.latent_dim == 2:
        # Fig. 4: linearly spaced points of the unit square through the inverse Gaussian CDF.
        n = 20
        u = ndtri(np.linspace(0.5 / n, 1 - 0.5 / n, n))
        grid_z = np.stack(np.meshgrid(u, u[::-1]), axis=-1).reshape(-1, 2).astype(np.float32)
        manifold = keras.ops.convert_to_numpy(model.mean_image(grid_z)).reshape(-1, *shape)
        images.save_grid(run.figure_path("manifold"), manifold, n, n)


def train(config: VAEConfig, preset: str = cfg.PAPER_PRESET, extra_callbacks=()) -> int:
    run = Run(PAPER, config, preset, PRESETS, throughput_key="train_samples_per_s", callbacks=extra_callbacks)
    data = prepare_data(config)
    train_x, test = data["train"], data["test"]
    run.describe_data(source=data["source"], checksums=data["checksums"], verified=data["verified"],
                      train=len(train_x), test=len(test), binarization=data["binarization"])
    print(f"{config.variant}, preset {preset}: {len(train_x)} train / {len(test)} test images from {data['source']} "
          f"(binarization: {data['binarization']}); working files in {run.dir}")
    learning_rate, lr_search = choose_learning_rate(config, data, run.state_file("lr_search.json"))
    print(f"Adagrad step size {learning_rate}" + (" (chosen by the search above)" if lr_search else ""))

    distribute.clear_session()
    seed_everything(config.seed)
    model = compile_model(build_model(config, len(train_x), train_x.shape[1], data["likelihood"]), config,
                          learning_rate)
    train_ds = ArrayBatches(train_x, None, config.batch_size, seed=config.seed, augment=data["transform"],
                            workers=config.data_workers, passes=config.passes_per_epoch)
    max_iterations = math.ceil(config.max_samples / config.batch_size)
    epochs = math.ceil(max_iterations / len(train_ds))
    print(f"{max_iterations} iterations of {config.batch_size} = {max_iterations * config.batch_size:.3g} samples, "
          f"{epochs} epochs of {len(train_ds)} steps")
    run.fit(model, train_ds, epochs=epochs, images_per_step=config.batch_size, max_steps=max_iterations,
            callbacks=[BoundOnTrainSet(data["train_eval"], config.eval_batch_size, config.batch_size)],
            reseed=[model.noise], validation_data=(test,), validation_batch_size=config.eval_batch_size)
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    final = {"samples_seen": iterations * config.batch_size, "epochs": epochs, "learning_rate": learning_rate}
    if run.failed:
        return run.finish(final, extra={"lr_search": lr_search})

    training.reseed([model.noise], config.seed, epochs)  # the evaluation's noise, resumed or not
    evaluate = {"batch_size": config.eval_batch_size, "verbose": 0, "return_dict": True}
    test_eval = model.evaluate(test, **evaluate)
    train_eval = model.evaluate(data["train_eval"], **evaluate)
    final.update(test_elbo=test_eval["elbo"], test_reconstruction=test_eval["reconstruction"],
                 test_kl=test_eval["kl"], train_elbo=train_eval["elbo"], train_elbo_points=len(data["train_eval"]))
    points = test[:config.ll_test_points or None]
    print(f"Importance-sampled log p(x) on {len(points)} test images, k = {config.ll_samples}:", flush=True)
    clock = training.RunningTime()
    ll = marginal_log_likelihood(model, points, config.ll_samples, chunk=config.ll_chunk, seed=config.seed)
    final.update(test_ll=float(ll.mean()), test_ll_sem=float(ll.std(ddof=1) / math.sqrt(len(ll))),
                 ll_k=config.ll_samples, ll_test_points=len(points), ll_time_s=round(clock.seconds, 1))
    write_figures(model, config, data, run)
    encoder, decoder = inference_networks(model)  # plain Keras: what `python -m common.networks publish` takes
    final.update(encoder_file=str(run.save_model(encoder, "encoder")),
                 decoder_file=str(run.save_model(decoder, "decoder")))
    summary = (f"test bound {final['test_elbo']:.2f}, train bound {final['train_elbo']:.2f}, "
               f"log p(x) {final['test_ll']:.2f} ± {final['test_ll_sem']:.2f} nats (k = {config.ll_samples})")
    return run.finish(final, summary=summary, extra={"lr_search": lr_search})


def main(argv=None) -> int:
    return cfg.cli_main(VAEConfig, PRESETS, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())

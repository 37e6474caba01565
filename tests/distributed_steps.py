"""A few train steps of one paper's model on one placement, for tests/common/test_distribute.py: run as

    python tests/distributed_steps.py MODELS DISTRIBUTE OUT_DIR [--devices=N] [--processes=P --process_id=I
                                                                  --coordinator=HOST:PORT] [--sync_batchnorm=false]
                                                                  [--fused_batchnorm=false]

MODELS, comma-separated: resnet (ResNet-8 with batch normalisation, `Model.fit`; two steps), dcgan (the adversarial
custom step with batch normalisation and drawn noise), vae (its own loss with the weight prior, drawn noise),
cgan (Dropout in both networks), ssgan (MNIST: Gaussian noise in D, feature matching of batch means, the
moving average of D's weights), wgan (the critic's minibatches cut from one batch, the gradient penalty),
wgan_clip (weight clipping after each critic update).
DISTRIBUTE: none or data_parallel, set up by `common.lifecycle.distribute` as a run does. `--devices`: host CPU
devices to show (on JAX through XLA_FLAGS, on TensorFlow as logical CPUs), set before the backend starts.
`--naive=true` undoes, for a test that must then fail, what common does for TensorFlow replicas beyond
Keras: Keras' own per-replica Dropout and noise draws, per-replica batch means, uncut critic minibatches.
`--fused_batchnorm=false`: batch normalisation by Keras' composed ops, not TensorFlow's fused kernel.
Process 0 writes every weight and the per-step losses of each model to OUT_DIR/<model>.npz.
"""

import faulthandler
import os
import sys
from pathlib import Path

faulthandler.dump_traceback_later(float(os.environ.get("KPB_STACKS_AFTER_S", "1e9")), exit=False)

args = dict(a[2:].split("=", 1) for a in sys.argv[4:])
MODELS, DISTRIBUTE, OUT = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
DEVICES = int(args.get("devices", 1))
if DEVICES > 1:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common.tf_env  # noqa: E402,F401

import keras  # noqa: E402
import numpy as np  # noqa: E402

if keras.backend.backend() == "tensorflow" and DEVICES > 1:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)

from common import layers  # noqa: E402
from common.data.pipeline import ArrayBatches  # noqa: E402
from common.lifecycle import distribute, repro  # noqa: E402
from common.lifecycle.config import make_config  # noqa: E402
from papers.resnet.config import PRESETS as RESNET_PRESETS  # noqa: E402
from papers.resnet.config import ResNetConfig  # noqa: E402

STEPS, BATCH = 3, 16


class Losses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        self.rows.append([float(v) for _, v in sorted(logs.items())])


def naive():
    """Each replica on its own share, as plain Keras would do it (see --naive)."""
    distribute.replicated = lambda: False
    distribute.batch_mean = lambda x: keras.ops.mean(x, axis=0)
    distribute.minibatches_for_replicas = lambda data, groups: data


def main():
    """Each model of MODELS in turn, in one process, on the placement that the switch's fields give."""
    overrides = {"distribute": DISTRIBUTE, "num_processes": int(args.get("processes", 0)),
                 "process_id": int(args.get("process_id", -1)), "coordinator": args.get("coordinator", ""),
                 "sync_batchnorm": args.get("sync_batchnorm", "true") == "true"}
    if args.get("naive") == "true":
        naive()
    layers.use_fused_batchnorm(args.get("fused_batchnorm", "true") == "true")
    placement = distribute.setup(make_config(ResNetConfig, RESNET_PRESETS, "smoke", **overrides))
    for name in MODELS:
        config, model, data = build(name, overrides)
        distribute.check_batch(BATCH)
        distribute.prepare_model(model, config.sync_batchnorm)
        losses = Losses()
        model.fit(distribute.shard_for_process(data), epochs=1, verbose=0, shuffle=False, callbacks=[losses])
        if placement.chief:
            weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
            np.savez(Path(OUT) / f"{name}.npz", losses=np.array(losses.rows), replicas=placement.replicas,
                     hosts=placement.hosts, **{f"w{i}": w for i, w in enumerate(weights)})
    print(f"done: {placement}", flush=True)


def build(name, overrides):
    """(config, compiled model, batches) of `name`, from seed 0 and the same fixed data whatever the placement."""
    if name == "resnet":
        from papers.resnet.model import build_model

        config = make_config(ResNetConfig, RESNET_PRESETS, "smoke", **overrides)
    elif name == "dcgan":
        from papers.dcgan.config import PRESETS, DCGANConfig
        from papers.dcgan.model import build_model

        config = make_config(DCGANConfig, PRESETS, "smoke", **overrides)
    elif name == "cgan":
        from papers.cgan.config import PRESETS, CGANConfig
        from papers.cgan.model import build_model

        config = make_config(CGANConfig, PRESETS, "smoke", **overrides)
    elif name == "ssgan":
        from papers.semi_supervised_gan.config import PRESETS, SemiSupervisedGANConfig
        from papers.semi_supervised_gan.model import build_model

        config = make_config(SemiSupervisedGANConfig, PRESETS, "smoke", **overrides)
    elif name.startswith("wgan"):
        from papers.wgan.config import PRESETS, WGANConfig
        from papers.wgan.model import build_model

        config = make_config(WGANConfig, PRESETS, "smoke", loss="clip" if name == "wgan_clip" else "gp",
                             **overrides)
    else:
        from papers.vae import train as vae
        from papers.vae.config import PRESETS, VAEConfig

        config = make_config(VAEConfig, PRESETS, "smoke", **overrides)
    repro.seed_everything(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (STEPS * BATCH, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, STEPS * BATCH)
    flat = (x.reshape(len(x), -1)[:, :784] + 1) / 2
    if name == "resnet":
        # Two steps, not three: each batch normalisation's shift sums its gradient over every pixel of the batch,
        # terms that nearly cancel (the next convolution feeds another batch normalisation), so float32 rounding
        # of the sum, whose order differs with the placement and between CPUs, is a large part of it. By the
        # third step the shifts jump a thousandfold and that rounding reached 3e-4 of them on one CPU (AMD family
        # 23), beyond the comparison's tolerance; after two it is under 2e-6, per-replica statistics 0.2.
        model = build_model(depth=8)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), keras.losses.SparseCategoricalCrossentropy())
        return config, model, ArrayBatches(x[:2 * BATCH], y[:2 * BATCH], BATCH, shuffle=False, workers=1)
    # Plain SGD, not the papers' Adam and Adagrad: their steps hardly depend on the gradient's scale, so they
    # would hide a loss that a replica failed to scale by 1 / replicas.
    if name == "dcgan":
        model = build_model(config, (32, 32, 3))
        model.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05), jit_compile=config.jit)
        return config, model, ArrayBatches(x, None, BATCH, shuffle=False, workers=1)
    if name == "cgan":  # its own momentum SGD, whose step scales with the gradient
        model = build_model(config, STEPS)
        return config, model, ArrayBatches(flat, y, BATCH, shuffle=False, workers=1)
    if name == "ssgan":  # after the authors' data-dependent initialisation, made on one batch outside the step
        from papers.semi_supervised_gan.data import Batches
        from papers.semi_supervised_gan.model import initialize

        model = build_model(config, STEPS)
        model.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05), jit_compile=config.jit)
        initialize(model.discriminator, flat[:BATCH])
        return config, model, Batches(flat, y, np.arange(BATCH), BATCH, seed=0)
    if name.startswith("wgan"):  # each step: 2 critic minibatches of 16, then one of the generator
        model = build_model(config, (32, 32, 3))
        model.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05), jit_compile=config.jit)
        return config, model, distribute.minibatches_for_replicas(
            ArrayBatches(np.concatenate([x, x]), None, BATCH * config.n_critic, shuffle=False, workers=1),
            config.n_critic)
    model = vae.build_model(config, len(x), 784, "bernoulli")
    model.compile(keras.optimizers.SGD(1e-3), jit_compile=config.jit)
    return config, model, ArrayBatches((x.reshape(len(x), -1)[:, :784] > 0).astype("float32"), None, BATCH,
                                       shuffle=False, workers=1)


if __name__ == "__main__":
    main()

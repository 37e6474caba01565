"""What a paper's `train.py` would train, read from the objects it builds: the tests that pin a paper's
recipe (its `test_recipe_*` tests) call `planned_training`, which runs `train.train` with the paper preset
up to its `Run.fit` and returns the model, the batches and the fit's arguments instead of training.
A test that built its own model would not notice a change to `train.py`; a test of a config field
would not notice a change to how the field is used.

`python -m tests.recipe` changes each constant of every paper's recipe in turn, in a copy of the
repository, and runs that paper's recipe tests, so that a constant no test guards is named."""

from __future__ import annotations

import types

import pytest

from common.lifecycle.config import make_config
from common.lifecycle.run import Run


class _Planned(Exception):
    """Raised by the patched `Run.fit` once it has recorded what it was given."""


def planned_training(monkeypatch, train_module, config_cls, presets, tmp_path, *, keras_fit: bool = False,
                     preset: str = "paper", **overrides):
    """Run `train_module.train` with the paper preset, or `preset` (and `overrides`, for data locations and subsets
    that keep fixtures small) until it calls `Run.fit` (with `keras_fit`: the first `keras.Model.fit`,
    for papers that train several models in one run); return a namespace of that call: `model`,
    `data`, `epochs`, `images_per_step`, `max_steps`, `callbacks`, `reseed`, the other keyword
    arguments, and `config`, `run` (the Run object, with Run.fit)."""
    import keras

    plan = {}

    def run_fit(self, model, data, **kwargs):
        plan.update(model=model, data=data, run=self, **kwargs)
        raise _Planned

    def model_fit(self, data=None, *args, **kwargs):
        plan.update(model=self, data=data, **kwargs)
        raise _Planned

    describe = Run.describe_data

    def describe_data(self, **facts):
        plan["run"] = self
        describe(self, **facts)

    monkeypatch.setattr(Run, "describe_data", describe_data)
    if keras_fit:
        monkeypatch.setattr(keras.Model, "fit", model_fit)
    else:
        monkeypatch.setattr(Run, "fit", run_fit)
    config = make_config(config_cls, presets, preset, verify_data=False, download=False,
                         results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"), **overrides)
    with pytest.raises(_Planned):
        train_module.train(config, preset)
    plan.setdefault("max_steps", None)
    plan.setdefault("callbacks", ())
    plan.setdefault("reseed", ())
    return types.SimpleNamespace(config=config, **plan)


def recipe_plan(tmp_path_factory, train_module, config_cls, presets, data_root, **overrides):
    """`planned_training` for a module-scoped fixture: its own monkeypatch, undone once the plan is
    made, its own folder, and the data in `data_root`."""
    with pytest.MonkeyPatch.context() as mp:
        return planned_training(mp, train_module, config_cls, presets, tmp_path_factory.mktemp("recipe"),
                                data_dir=str(data_root), **overrides)


def crop_offsets(augment, pad: int, size: int = 32, n: int = 64) -> set[tuple[int, int, bool]]:
    """The (dy, dx, flipped) of each crop `augment` (a pipeline augmentation) makes of `n` random images:
    each output must be a `size`-pixel window of the image zero-padded by `pad`, or its mirror image;
    an output that is neither fails."""
    import numpy as np

    x = np.random.default_rng(0).normal(size=(n, size, size, 1)).astype(np.float32)
    out = augment(x, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    found = set()
    for i in range(n):
        matches = [(dy, dx, flip) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for flip in (False, True)
                   if np.array_equal(out[i], (lambda c, f: c[:, ::-1] if f else c)(
                       padded[i, dy:dy + size, dx:dx + size], flip))]
        assert matches, f"augmented image {i} is not a {size}-pixel crop of the {pad}-pixel padded image"
        found.update(matches)
    return found


# (file, text, its replacement, what the change does): one constant of a paper's recipe each.
MUTATIONS = {
    "dcgan": [
        ("papers/dcgan/model.py", "h = layers.LeakyReLU(0.2)(h)", "h = layers.LeakyReLU(0.1)(h)", "D's first slope"),
        ("papers/dcgan/model.py", "layers.LeakyReLU(0.2)(_batch_norm", "layers.LeakyReLU(0.1)(_batch_norm",
         "D's other slopes"),
        ("papers/dcgan/config.py", 'param(0.02, "weights from N(0, 0.02)', 'param(0.03, "weights from N(0, 0.02)',
         "init std"),
        ("papers/dcgan/model.py", "RandomNormal(1.0, init_std)", "RandomNormal(0.0, init_std)", "BN gain's mean"),
        ("papers/dcgan/config.py", "param(1e-5, ", "param(1e-4, ", "weight decay x 10"),
        ("papers/dcgan/model.py", "return 0.5 * self.weight_decay", "return self.weight_decay", "decay's factor"),
        ("papers/dcgan/config.py", 'param(2e-4, "Adam', 'param(1e-4, "Adam', "learning rate"),
        ("papers/dcgan/config.py", 'param(0.5, "Adam', 'param(0.9, "Adam', "beta_1"),
        ("papers/dcgan/model.py", "keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1)",
         "keras.optimizers.RMSprop(config.learning_rate)", "optimizer kind"),
        ("papers/dcgan/config.py", 'param(128, "minibatch', 'param(64, "minibatch', "batch size"),
        ("papers/dcgan/config.py", 'param(25, "passes', 'param(20, "passes', "epochs"),
        ("papers/dcgan/config.py", 'param(100, "dimension of z', 'param(128, "dimension of z', "latent size"),
        ("papers/dcgan/model.py", "uniform((rows, self.latent_dim), -1.0, 1.0",
         "uniform((rows, self.latent_dim), 0.0, 1.0",
         "z's range"),
        ("papers/dcgan/config.py", 'ngf: int = param(128,', 'ngf: int = param(64,', "G's width"),
        ("papers/dcgan/config.py", 'ndf: int = param(128,', 'ndf: int = param(64,', "D's width"),
        ("papers/dcgan/model.py", "layers.Conv2DTranspose(filters, 5, strides=2", "layers.Conv2DTranspose(filters, 4, "
         "strides=2", "G's kernel size"),
        ("papers/dcgan/model.py", 'padding="same", activation="tanh"', 'padding="same", activation="sigmoid"',
         "G's output"),
        ("papers/dcgan/model.py", "name=\"conv1\")(x)", "name=\"conv1\")(BatchNormalization()(x))",
         "BN on D's input"),
        ("common/data/image_sets.py", "x.astype(np.float32) / 127.5 - 1.0", "x.astype(np.float32) / 255.0",
         "scaling"),
    ],
    "vae": [
        ("papers/vae/train.py", "l2 = 1.0 / (2.0 * n_train", "l2 = 1.0 / (1.0 * n_train", "prior 1/(2N) -> 1/N"),
        ("papers/vae/config.py", 'PAPER_HIDDEN = {"mnist": 500', 'PAPER_HIDDEN = {"mnist": 400', "MNIST hidden"),
        ("papers/vae/config.py", '"frey_face": 200}', '"frey_face": 100}', "Frey hidden"),
        ("papers/vae/model.py", 'self.encoder_hidden = dense(hidden_units, "tanh"',
         'self.encoder_hidden = dense(hidden_units, "relu"', "encoder activation"),
        ("papers/vae/model.py", 'self.decoder_hidden = dense(hidden_units, "tanh"',
         'self.decoder_hidden = dense(hidden_units, "relu"', "decoder activation"),
        ("papers/vae/config.py", 'init_std: float = param(0.01,', 'init_std: float = param(0.1,', "init std"),
        ("papers/vae/model.py", "bias_initializer=init,", "", "bias init"),
        ("papers/vae/config.py", 'param(100, "minibatch size M', 'param(128, "minibatch size M', "batch size"),
        ("papers/vae/config.py", "param((0.01, 0.02, 0.1),", "param((0.01, 0.03, 0.1),", "step-size candidates"),
        ("papers/vae/train.py", "chosen = max(finite, key=finite.get)", "chosen = min(finite, key=finite.get)",
         "choice rule"),
        ("papers/vae/train.py", "keras.optimizers.Adagrad(learning_rate,", "keras.optimizers.Adam(learning_rate,",
         "optimizer kind"),
        ("papers/vae/config.py", "param(0.0, \"Adagrad's starting", "param(0.1, \"Adagrad's starting",
         "Adagrad accumulator"),
        ("papers/vae/config.py", 'PAPER_SAMPLES = {"mnist": 10**8', 'PAPER_SAMPLES = {"mnist": 10**7', "MNIST samples"),
        ("papers/vae/config.py", '"frey_face": 10**7}', '"frey_face": 10**6}', "Frey samples"),
        ("papers/vae/model.py", "return ops.sigmoid(out), self.decoder_logvar(h)", "return out, self.decoder_logvar(h)",
         "Frey mean's sigmoid"),
        ("papers/vae/config.py", "param(1600, ", "param(1500, ", "Frey Face split"),
    ],
    "resnet": [
        ("papers/resnet/config.py", 'param(128, "minibatch size', 'param(64, "minibatch size', "batch size"),
        ("papers/resnet/config.py", "FAST_BATCH = 256", "FAST_BATCH = 200", "fast: batch"),
        ("papers/resnet/config.py", "64_000 * 128 // 6 // FAST_BATCH", "64_000 * 128 // 5 // FAST_BATCH",
         "fast: a sixth"),
        ("papers/resnet/config.py", '"learning_rate": 0.2, "lr_peak_share": 0.2', '"learning_rate": 0.3, '
         '"lr_peak_share": 0.2', "fast: peak lr"),
        ("papers/resnet/config.py", '"lr_peak_share": 0.2,', '"lr_peak_share": 0.3,', "fast: peak share"),
        ("papers/resnet/config.py", '"nesterov": True', '"nesterov": False', "fast: Nesterov"),
        ("papers/resnet/config.py", '"weight_decay": 5e-4', '"weight_decay": 1e-4', "fast: weight decay"),
        ("papers/resnet/config.py", '"label_smoothing": 0.1', '"label_smoothing": 0.2', "fast: smoothing"),
        ("papers/resnet/config.py", '"val_size": 0,', '"val_size": 5000,', "fast: no validation split"),
        ("papers/resnet/model.py", "(1.0 - self.epsilon) * nll", "nll", "fast: smoothed loss"),
        ("papers/resnet/train.py", "x[:, :, ::-1]", "x[:, ::-1]", "fast: mirror axis"),
        ("papers/resnet/config.py", 'precision: str = param("float32",', 'precision: str = param("mixed_bfloat16",',
         "float32 arithmetic"),
        ("papers/resnet/model.py", 'dtype="float32", name="fc"', 'name="fc"', "mixed: float32 softmax"),
        ("papers/resnet/config.py", 'param(0.1, "initial learning rate', 'param(0.2, "initial learning rate', "lr"),
        ("papers/resnet/config.py", "param((32000, 48000),", "param((32000, 46000),", "lr boundaries"),
        ("papers/resnet/model.py", "config.learning_rate * 0.1**i", "config.learning_rate * 0.2**i", "lr drop factor"),
        ("papers/resnet/model.py", "[b - 1 for b in boundaries]", "list(boundaries)", "boundary off by one"),
        ("papers/resnet/config.py", "param(64000, ", "param(60000, ", "iterations"),
        ("papers/resnet/config.py", "400 if self.depth >= 110", "500 if self.depth >= 110", "warm-up length"),
        ("papers/resnet/config.py", "warmup_lr: float = param(0.01,", "warmup_lr: float = param(0.02,", "warm-up lr"),
        ("papers/resnet/config.py", 'param(0.9, "SGD momentum', 'param(0.95, "SGD momentum', "momentum"),
        ("papers/resnet/config.py", 'param(1e-4, "weight decay', 'param(2e-4, "weight decay', "weight decay"),
        ("papers/resnet/model.py", "L2(weight_decay / 2)", "L2(weight_decay)", "decay's factor"),
        ("papers/resnet/model.py", "return BatchNormalization(gamma_regularizer=reg, beta_regularizer=reg,",
         "return BatchNormalization(", "decay on BN"),
        ("papers/resnet/model.py", 'VarianceScaling(2.0, "fan_in"', 'VarianceScaling(1.0, "fan_in"', "He init"),
        ("papers/resnet/model.py", "FILTERS = (16, 32, 64)", "FILTERS = (16, 32, 48)", "filters"),
        ("papers/resnet/model.py", "stride = 2 if stage > 1 and block == 1 else 1", "stride = 1", "subsampling"),
        ("papers/resnet/model.py", '_add")([y, shortcut])', '_add")([y, y])', "no shortcut"),
        ("papers/resnet/model.py", "(extra // 2, extra - extra // 2)", "(0, extra)", "option A padding"),
        ("papers/resnet/config.py", 'param(5000, "images held out', 'param(10000, "images held out', "45k/5k split"),
        ("papers/resnet/config.py", "pad: int = param(4,", "pad: int = param(2,", "crop padding"),
        ("common/data/pipeline.py", "flip = rng.random(n) < 0.5", "flip = rng.random(n) < 0.0", "flips"),
        ("papers/resnet/data.py", "mean = train.x.mean(axis=0, dtype=np.float64) / 255.0",
         "mean = train.x.mean(dtype=np.float64) / 255.0", "per-pixel mean"),
    ],
    "unet": [
        ("papers/unet/config.py", 'filters: int = param(64,', 'filters: int = param(32,', "filters"),
        ("papers/unet/config.py", 'dropout: float = param(0.5,', 'dropout: float = param(0.3,', "dropout rate"),
        ("papers/unet/model.py", "    h = block(h, filters * 2**depth)\n    if dropout:",
         "    if dropout:", "dropout placement"),
        ("papers/unet/config.py", 'momentum: float = param(0.99,', 'momentum: float = param(0.9,', "momentum"),
        ("papers/unet/config.py", 'learning_rate: float = param(0.001,', 'learning_rate: float = param(0.01,', "lr"),
        ("papers/unet/config.py", 'batch_size: int = param(1,', 'batch_size: int = param(2,', "batch size"),
        ("papers/unet/config.py", 'tile: int = param(572,', 'tile: int = param(508,', "tile"),
        ("papers/unet/config.py", 'w0: float = param(10.0,', 'w0: float = param(5.0,', "w0"),
        ("papers/unet/config.py", 'sigma: float = param(5.0,', 'sigma: float = param(3.0,', "sigma"),
        ("papers/unet/config.py", 'elastic_sigma: float = param(10.0,', 'elastic_sigma: float = param(5.0,',
         "elastic sigma"),
        ("papers/unet/config.py", 'elastic_grid: int = param(3,', 'elastic_grid: int = param(4,', "elastic grid"),
        ("papers/unet/model.py", 'VarianceScaling(2.0, "fan_in"', 'VarianceScaling(1.0, "fan_in"', "He init"),
        ("papers/unet/model.py", 'layers.Conv2D(f, 3, padding="valid"', 'layers.Conv2D(f, 3, padding="same"',
         "unpadded convolutions"),
        ("papers/unet/model.py", "layers.Conv2DTranspose(f, 2, strides=2", "layers.Conv2DTranspose(f, 3, strides=2",
         "up-convolution"),
        ("papers/unet/model.py", "(dy // 2, dy - dy // 2)", "(0, dy)", "centre crop"),
        ("papers/unet/model.py", "layers.MaxPooling2D(2)(h)", "layers.AveragePooling2D(2)(h)", "max pooling"),
        ("papers/unet/train.py", "SparseCategoricalCrossentropy(from_logits=True)", "CategoricalFocalCrossentropy()",
         "loss"),
        ("papers/unet/data.py", "lab[y:y + out, x:x + out], wts[y:y + out, x:x + out])",
         "lab[y:y + out, x:x + out], np.ones_like(wts[y:y + out, x:x + out]))", "weights reach the loss"),
    ],
    "wgan": [
        ("papers/wgan/config.py", "clip_value: float = param(0.01,", "clip_value: float = param(0.02,", "clip c"),
        ("papers/wgan/config.py", "n_critic: int = param(5,", "n_critic: int = param(4,", "n_critic"),
        ("papers/wgan/config.py", "gp_weight: float = param(10.0,", "gp_weight: float = param(5.0,", "lambda"),
        ("papers/wgan/model.py", "return -w + self.gp_weight * penalty if", "return -w + penalty if", "lambda used"),
        ("papers/wgan/config.py", '"clip": {"learning_rate": 5e-5', '"clip": {"learning_rate": 1e-4', "RMSProp lr"),
        ("papers/wgan/config.py", '"gp": {"learning_rate": 1e-4', '"gp": {"learning_rate": 2e-4', "Adam lr"),
        ("papers/wgan/config.py", "beta_1: float = param(0.0, \"gp", "beta_1: float = param(0.5, \"gp", "beta_1"),
        ("papers/wgan/config.py", "beta_2: float = param(0.9, \"gp", "beta_2: float = param(0.999, \"gp", "beta_2"),
        ("papers/wgan/config.py", "rmsprop_rho: float = param(0.99,", "rmsprop_rho: float = param(0.9,", "rho"),
        ("papers/wgan/model.py", "return keras.optimizers.RMSprop(lr, rho=config.rmsprop_rho)",
         "return keras.optimizers.Adam(lr)", "clip's optimizer"),
        ("papers/wgan/config.py", 'batch_size: int = param(64,', 'batch_size: int = param(32,', "m"),
        ("papers/wgan/config.py", 'latent_dim: int = param(128,', 'latent_dim: int = param(100,', "latent size"),
        ("papers/wgan/model.py", "lambda rows: keras.random.normal((rows, self.latent_dim)",
         "lambda rows: keras.random.uniform((rows, self.latent_dim)", "z's distribution"),
        ("papers/wgan/config.py", 'init_std: float = param(0.02,', 'init_std: float = param(0.05,', "init std"),
        ("papers/wgan/model.py", "    h = layers.LeakyReLU(0.2)(h)", "    h = layers.LeakyReLU(0.1)(h)", "slope"),
        ("papers/wgan/config.py", '"gp": {"learning_rate": 1e-4, "critic_norm": "none"}',
         '"gp": {"learning_rate": 1e-4, "critic_norm": "layer"}', "GP critic norm"),
        ("papers/wgan/config.py", '"clip": {"learning_rate": 5e-5, "critic_norm": "batch"}',
         '"clip": {"learning_rate": 5e-5, "critic_norm": "none"}', "clip critic norm"),
        ("papers/wgan/config.py", '"dcgan": {"generator_steps": 200_000', '"dcgan": {"generator_steps": 100_000',
         "DCGAN steps"),
        ("papers/wgan/config.py", '"resnet": {"generator_steps": 100_000', '"resnet": {"generator_steps": 200_000',
         "ResNet steps"),
        ("papers/wgan/config.py", '"lr_decay": "true", "generator_batch_multiple": 2}',
         '"lr_decay": "false", "generator_batch_multiple": 2}', "ResNet decay"),
        ("papers/wgan/config.py", '"generator_batch_multiple": 2}', '"generator_batch_multiple": 1}',
         "ResNet G batch"),
        ("papers/wgan/config.py", 'JOINT_DEFAULTS = {("gp", "resnet"): {"learning_rate": 2e-4}}',
         'JOINT_DEFAULTS = {}', "ResNet lr"),
        ("papers/wgan/model.py", "v.assign(ops.clip(v, -self.clip_value, self.clip_value))",
         "v.assign(ops.clip(v, -1.0, 1.0))", "clip used"),
    ],
    "cgan": [
        ("papers/cgan/config.py", "latent_dim: int = param(100,", "latent_dim: int = param(64,", "latent size"),
        ("papers/cgan/config.py", 'batch_size: int = param(100,', 'batch_size: int = param(128,', "batch size"),
        ("papers/cgan/config.py", 'learning_rate: float = param(0.1,', 'learning_rate: float = param(0.05,', "lr"),
        ("papers/cgan/config.py", 'LR_DECAY = {"cgan": 1.00004,', 'LR_DECAY = {"cgan": 1.0001,', "decay"),
        ("papers/cgan/config.py", 'min_learning_rate: float = param(1e-6,', 'min_learning_rate: float = param(1e-5,',
         "lr floor"),
        ("papers/cgan/config.py", 'initial_momentum: float = param(0.5,', 'initial_momentum: float = param(0.6,',
         "momentum start"),
        ("papers/cgan/config.py", 'final_momentum: float = param(0.7,', 'final_momentum: float = param(0.9,',
         "momentum end"),
        ("papers/cgan/config.py", "momentum_saturate_epoch: int = param(250,",
         "momentum_saturate_epoch: int = param(200,", "momentum saturation"),
        ("papers/cgan/config.py", 'param(0.5, "dropout on every', 'param(0.3, "dropout on every', "dropout"),
        ("papers/cgan/config.py", 'd_input_dropout: float = param(0.2,', 'd_input_dropout: float = param(0.0,',
         "D input dropout"),
        ("papers/cgan/config.py", 'g_init_scale: float = param(0.05,', 'g_init_scale: float = param(0.01,', "G init"),
        ("papers/cgan/config.py", 'd_init_scale: float = param(0.005,', 'd_init_scale: float = param(0.05,', "D init"),
        ("papers/cgan/config.py", 'epochs: int = param(576,', 'epochs: int = param(500,', "epochs"),
        ("papers/cgan/model.py", "z_units: int = 200, y_units: int = 1000,", "z_units: int = 256, y_units: int = 1000,",
         "G z units"),
        ("papers/cgan/model.py", "x_units=(240, 5), y_units=(50, 5), joint_units=(240, 4)",
         "x_units=(240, 5), y_units=(50, 5), joint_units=(240, 5)", "D joint pieces"),
        ("papers/cgan/model.py", "lambda rows: keras.random.uniform((rows, self.latent_dim), 0.0, 1.0,",
         "lambda rows: keras.random.uniform((rows, self.latent_dim), -1.0, 1.0,", "z's range"),
    ],
    "semi_supervised_gan": [
        ("papers/semi_supervised_gan/config.py", '"mnist": {"labels": 100, "epochs": 300, "learning_rate": 0.003',
         '"mnist": {"labels": 200, "epochs": 300, "learning_rate": 0.003', "MNIST labels"),
        ("papers/semi_supervised_gan/config.py", '"labels": 100, "epochs": 300,', '"labels": 100, "epochs": 200,',
         "MNIST epochs"),
        ("papers/semi_supervised_gan/config.py", '"epochs": 300, "learning_rate": 0.003',
         '"epochs": 300, "learning_rate": 0.001', "MNIST lr"),
        ("papers/semi_supervised_gan/config.py", '"cifar10": {"labels": 4000,', '"cifar10": {"labels": 2000,',
         "CIFAR labels"),
        ("papers/semi_supervised_gan/config.py", '"epochs": 1200, "learning_rate": 0.0003, "decay_share": 1 / 3',
         '"epochs": 1200, "learning_rate": 0.0003, "decay_share": 1 / 4', "CIFAR decay"),
        ("papers/semi_supervised_gan/config.py", 'batch_size: int = param(100,', 'batch_size: int = param(64,',
         "batch size"),
        ("papers/semi_supervised_gan/config.py", 'beta_1: float = param(0.5,', 'beta_1: float = param(0.9,', "beta_1"),
        ("papers/semi_supervised_gan/config.py", 'unlabelled_weight: float = param(1.0,',
         'unlabelled_weight: float = param(0.5,', "unlabelled weight"),
        ("papers/semi_supervised_gan/config.py", 'average_rate: float = param(1e-4,',
         'average_rate: float = param(1e-3,', "averaging rate"),
        ("papers/semi_supervised_gan/config.py", 'init_examples: int = param(500,', 'init_examples: int = param(250,',
         "init examples"),
        ("papers/semi_supervised_gan/model.py", 'GaussianNoise(0.3, name="input_noise")',
         'GaussianNoise(0.2, name="input_noise")', "MNIST input noise"),
        ("papers/semi_supervised_gan/model.py", 'GaussianNoise(0.5, name=f"noise{i}")',
         'GaussianNoise(0.3, name=f"noise{i}")', "MNIST hidden noise"),
        ("papers/semi_supervised_gan/model.py", "for i, units in enumerate((1000, 500, 250, 250, 250), start=1):",
         "for i, units in enumerate((1000, 500, 250, 250), start=1):", "MNIST D depth"),
        ("papers/semi_supervised_gan/model.py", 'WeightNormDense(units, "relu", theta_std=0.1,',
         'WeightNormDense(units, "relu", theta_std=0.05,', "MNIST theta std"),
        ("papers/semi_supervised_gan/model.py", "return ops.leaky_relu(x, negative_slope=0.2)",
         "return ops.leaky_relu(x, negative_slope=0.1)", "CIFAR lrelu"),
        ("papers/semi_supervised_gan/model.py", 'Dropout(0.2, name="input_dropout")',
         'Dropout(0.1, name="input_dropout")', "CIFAR input dropout"),
        ("papers/semi_supervised_gan/model.py", 'feature_layer, distance = "hidden5", "squared"',
         'feature_layer, distance = "hidden4", "squared"', "MNIST feature layer"),
    ],
    "emotion_transfer": [
        ("papers/emotion_transfer/config.py", 'fer_epochs: int = param(5,', 'fer_epochs: int = param(4,', "FER epochs"),
        ("papers/emotion_transfer/config.py", 'fer_learning_rate: float = param(0.01,',
         'fer_learning_rate: float = param(0.02,', "FER lr"),
        ("papers/emotion_transfer/config.py", 'target_epochs: int = param(30,', 'target_epochs: int = param(20,',
         "target epochs"),
        ("papers/emotion_transfer/config.py", 'target_learning_rate: float = param(0.005,',
         'target_learning_rate: float = param(0.01,', "target lr"),
        ("papers/emotion_transfer/config.py", 'batch_size: int = param(64,', 'batch_size: int = param(32,',
         "batch size"),
        ("papers/emotion_transfer/config.py", 'momentum: float = param(0.9,', 'momentum: float = param(0.0,',
         "momentum"),
        ("papers/emotion_transfer/config.py", 'dropout: float = param(0.2,', 'dropout: float = param(0.5,', "dropout"),
        ("papers/emotion_transfer/config.py", "CK_FOLDS = 10", "CK_FOLDS = 5", "folds"),
        ("papers/emotion_transfer/model.py", "CosineDecay(learning_rate, decay_steps=max(steps, 1))",
         "CosineDecay(learning_rate, decay_steps=max(2 * steps, 1))", "decay length"),
        ("papers/emotion_transfer/train.py", "augment=pad_crop_flip(4) if", "augment=pad_crop_flip(2) if", "shifts"),
        ("papers/emotion_transfer/train.py", 'keep = data.labels != "contempt"', "keep = data.labels != None",
         "contempt"),
        ("papers/emotion_transfer/model.py", 'layers.Rescaling(1 / 128, offset=-127 / 128,',
         'layers.Rescaling(1 / 255, offset=0.0,', "input scaling"),
        ("papers/emotion_transfer/train.py", 'epochs = config.fer_epochs if config.scheme == "c" else',
         'epochs = config.target_epochs if config.scheme == "c" else', "scheme c length"),
        ("papers/emotion_transfer/train.py", 'imagenet=config.scheme != "d")', 'imagenet=True)', "scheme d start"),
    ],
    "speech_emotion": [
        ("papers/speech_emotion/config.py", 'context: int = param(12,', 'context: int = param(10,', "segment width"),
        ("papers/speech_emotion/config.py", "energy_fraction: float = param(0.1,",
         "energy_fraction: float = param(0.2,", "energetic share"),
        ("papers/speech_emotion/config.py", 'threshold: float = param(0.2,', 'threshold: float = param(0.3,',
         "threshold"),
        ("papers/speech_emotion/config.py", 'param((256, 256, 256), "the DNN', 'param((256, 256), "the DNN',
         "DNN depth"),
        ("papers/speech_emotion/model.py", 'layers.Dense(units, activation="relu"',
         'layers.Dense(units, activation="tanh"', "DNN activation"),
        ("papers/speech_emotion/config.py", 'dnn_epochs: int = param(20,', 'dnn_epochs: int = param(10,', "epochs"),
        ("papers/speech_emotion/config.py", 'batch_size: int = param(128,', 'batch_size: int = param(64,', "batch"),
        ("papers/speech_emotion/config.py", 'learning_rate: float = param(1e-3,', 'learning_rate: float = param(1e-2,',
         "lr"),
        ("papers/speech_emotion/config.py", 'elm_hidden: int = param(120,', 'elm_hidden: int = param(100,',
         "ELM hidden"),
        ("papers/speech_emotion/features.py", ", p.mean(0), (p > threshold).mean(0)])", ", p.mean(0)])",
         "utterance statistics"),
        ("papers/speech_emotion/features.py", "keep = max(1, int(round(fraction * len(energy))))",
         "keep = max(1, int(fraction * len(energy)))", "energetic rounding"),
        ("papers/speech_emotion/train.py", "return [[s for s in speakers if (int(s.removeprefix(\"actor\")) - 1) // 2",
         "return [[s for s in speakers if (int(s.removeprefix(\"actor\")) - 1) // 3", "actor pairs"),
        ("papers/speech_emotion/features.py", "SAMPLE_RATE, FRAME, HOP, N_FFT = 16_000, 400, 160, 512",
         "SAMPLE_RATE, FRAME, HOP, N_FFT = 16_000, 400, 200, 512", "frame hop"),
        ("papers/speech_emotion/features.py", "N_MFCC, N_MELS, DELTA_WIDTH = 12, 26, 9",
         "N_MFCC, N_MELS, DELTA_WIDTH = 13, 26, 9", "MFCC count"),
    ],
}


def _run_mutations(papers: list[str], only: str = "") -> int:
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.split()
    survived = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in files:
            # Records stay behind; the published networks come along (the GAN papers' default score networks).
            if (repo / name).is_file() and (not name.startswith("results/") or "/networks/" in name):
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(repo / name, Path(tmp) / name)

        def tests_pass(paper):
            cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "recipe",
                   f"tests/papers/test_{paper}.py"]
            return subprocess.run(cmd, cwd=tmp, capture_output=True).returncode == 0

        for paper in papers:
            if not tests_pass(paper):
                print(f"{paper}: the recipe tests fail on the unchanged code; fix that first")
                return 1
            for path, old, new, what in MUTATIONS[paper]:
                if only not in what:
                    continue
                target = Path(tmp) / path
                original = target.read_text()
                if original.count(old) < 1:
                    print(f"{paper}: {what}: {old!r} is not in {path}; update MUTATIONS")
                    return 1
                target.write_text(original.replace(old, new))
                try:
                    caught = not tests_pass(paper)
                finally:
                    target.write_text(original)
                survived += not caught
                print(f"{paper:22s} {what:28s} {'caught' if caught else 'SURVIVED: no test guards it'}", flush=True)
    print(f"{survived} change(s) survived" if survived else "every change was caught")
    return 1 if survived else 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("papers", nargs="*", default=list(MUTATIONS), help="papers to check (default: all)")
    parser.add_argument("--only", default="", help="only the changes whose label contains this text")
    args = parser.parse_args()
    raise SystemExit(_run_mutations(args.papers, args.only))

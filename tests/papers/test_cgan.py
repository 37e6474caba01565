"""CGAN (Mirza & Osindero 2014): every number §4.1 states, read from the built networks and optimizer;
the maxout layer; the Parzen estimator; conditioning; the simultaneous update; a smoke run."""

import math

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats

from common import report
from common.lifecycle import results
from common.lifecycle.config import ConfigError, config_hash, make_config, parse_args
from common.metrics import parzen
from papers.cgan import real_images, train
from papers.cgan.config import PRESETS, CGANConfig
from papers.cgan.model import (
    CGAN,
    Maxout,
    MomentumSGD,
    PaperLearningRate,
    bce_from_logits,
    build_discriminator,
    build_generator,
    build_model,
    marginal_logits,
)
from tests.conftest import smoke_config, smoke_record, toy_score_network
from tests.recipe import recipe_plan


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _layer(model, name):
    return model.get_layer(name)


def _rates_at(model, step: int) -> dict[str, float]:
    """Each player's learning rate at update `step`, read from its optimizer (left at update 0)."""
    rates = {}
    for name in ("discriminator", "generator"):
        opt = model.optimizer.players[name]
        opt.iterations.assign(step)
        try:
            rates[name] = float(_np(opt.learning_rate))
        finally:
            opt.iterations.assign(0)
    return rates


# --- the networks of §4.1, as built -------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_plan(mnist_root, tmp_path_factory):
    """What train.py would train with the paper preset (tests.recipe)."""
    return recipe_plan(tmp_path_factory, train, CGANConfig, PRESETS, mnist_root)


def test_recipe_generator_is_the_papers(paper_plan):
    """§4.1: z (100) -> 200 ReLU, y -> 1000 ReLU, joined into 1200 ReLU, then 784 sigmoid."""
    g = paper_plan.model.generator
    assert [tuple(i.shape) for i in g.inputs] == [(None, 100), (None, 10)]
    for name, units, activation in (("z_hidden", 200, "relu"), ("y_hidden", 1000, "relu"), ("joint", 1200, "relu"),
                                    ("image", 784, "sigmoid")):
        layer = _layer(g, name)
        assert (layer.units, layer.activation.__name__) == (units, activation), name
    assert _layer(g, "joint").input.shape[-1] == 1200  # 200 + 1000
    # §4.1: dropout 0.5 in G (on its hidden units); weights U(-0.05, 0.05) (the GAN code's irange).
    assert [la.rate for la in g.layers if isinstance(la, keras.layers.Dropout)] == [0.5, 0.5]
    for name in ("z_hidden", "y_hidden", "joint", "image"):
        init = _layer(g, name).kernel_initializer
        assert (init.minval, init.maxval) == (-0.05, 0.05), name
        assert np.abs(_np(_layer(g, name).kernel)).max() <= 0.05
    assert g.count_params() == (100 * 200 + 200) + (10 * 1000 + 1000) + (1200 * 1200 + 1200) + (1200 * 784 + 784)


def test_recipe_discriminator_is_the_papers(paper_plan):
    """§4.1: x -> maxout 240 x 5, y -> maxout 50 x 5, joined into maxout 240 x 4, then one sigmoid unit."""
    d = paper_plan.model.discriminator
    assert [tuple(i.shape) for i in d.inputs] == [(None, 784), (None, 10)]
    for name, units, pieces in (("x_maxout", 240, 5), ("y_maxout", 50, 5), ("joint_maxout", 240, 4)):
        layer = _layer(d, name)
        assert (layer.units, layer.pieces) == (units, pieces), name
        init = layer.kernel_initializer
        assert (init.minval, init.maxval) == (-0.005, 0.005), name  # the GAN code's irange .005
    assert _layer(d, "joint_maxout").kernel.shape == (290, 960) and _layer(d, "logit").units == 1
    rates = {la.name: la.rate for la in d.layers if isinstance(la, keras.layers.Dropout)}
    assert rates == {"x_dropout": 0.2, "y_dropout": 0.2, "joint_dropout": 0.5, "output_dropout": 0.5}
    assert d.count_params() == (784 * 1200 + 1200) + (10 * 250 + 250) + (290 * 960 + 960) + (240 + 1)


def test_recipe_minibatches_epochs_and_the_latent_hypercube(paper_plan):
    # §4.1: minibatches of 100 over the 50,000 training images (the GAN code's split: 10,000 validate
    # sigma and the stopping epoch); at most 576 epochs, when the decayed rate reaches its 1e-6 floor
    data, run = paper_plan.data, paper_plan.run
    assert data.batch_size == paper_plan.images_per_step == 100 and len(data) == 500
    assert (run.data["train"], run.data["validation"], run.data["test"]) == (50_000, 10_000, 10_000)
    assert paper_plan.epochs == 576 and 0.1 / 1.00004 ** (576 * 500) < 1e-6 < 0.1 / 1.00004 ** (575 * 500)
    x, y = data[0]
    assert x.shape == (100, 784) and y.shape == (100,)  # the label goes in as an integer, one-hot inside
    z = _np(paper_plan.model.sample_z(20_000))  # §4.1: z uniform in the unit hypercube, 100 dimensions
    assert z.shape == (20_000, 100) and z.min() >= 0 and z.max() <= 1
    assert np.quantile(z, [0.25, 0.75]) == pytest.approx([0.25, 0.75], abs=0.01)


def test_unconditional_networks_are_the_same_minus_y():
    config = make_config(CGANConfig, PRESETS, conditional=False)
    model = build_model(config, steps_per_epoch=500)
    assert config.variant == "gan-mnist" and len(model.generator.inputs) == len(model.discriminator.inputs) == 1
    assert _layer(model.generator, "joint").input.shape[-1] == 200
    assert _layer(model.discriminator, "joint_maxout").input.shape[-1] == 240


@pytest.fixture(scope="module")
def goodfellow_plan(mnist_root, tmp_path_factory):
    """What train.py would train with --conditional=false --networks=goodfellow2014 (no other override)."""
    return recipe_plan(tmp_path_factory, train, CGANConfig, PRESETS, mnist_root, conditional=False,
                       networks="goodfellow2014")


def test_recipe_goodfellow2014_networks_are_the_gan_papers_mnist_yaml(goodfellow_plan):
    """goodfeli/adversarial, mnist.yaml: G 100 -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid (irange .05, no
    dropout); D maxout 240 x 5 -> maxout 240 x 5 -> sigmoid (irange .005; inputs kept with probability .8,
    hidden units .5)."""
    g, d = goodfellow_plan.model.generator, goodfellow_plan.model.discriminator
    assert goodfellow_plan.config.variant == "gan-mnist-goodfellow2014"
    assert [tuple(i.shape) for i in g.inputs] == [(None, 100)] and [tuple(i.shape) for i in d.inputs] == [(None, 784)]
    for name, units in (("z_hidden", 1200), ("joint", 1200), ("image", 784)):
        layer = _layer(g, name)
        assert (layer.units, layer.kernel_initializer.maxval) == (units, 0.05), name
    assert not [la for la in g.layers if isinstance(la, keras.layers.Dropout)]
    assert g.count_params() == (100 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 784 + 784)
    for name in ("x_maxout", "joint_maxout"):
        layer = _layer(d, name)
        assert (layer.units, layer.pieces, layer.kernel_initializer.maxval) == (240, 5, 0.005), name
    rates = {la.name: la.rate for la in d.layers if isinstance(la, keras.layers.Dropout)}
    assert rates == {"x_dropout": 0.2, "joint_dropout": 0.5, "output_dropout": 0.5}
    assert d.count_params() == (784 * 1200 + 1200) + (240 * 1200 + 1200) + (240 + 1)


@pytest.mark.parametrize("step", [0, 100_000, 288_000])
def test_recipe_goodfellow2014_learning_rate_decays_by_1_000004_per_update(goodfellow_plan, step):
    """mnist.yaml: ExponentialDecay(decay_factor 1.000004, min_lr 1e-6), from 0.1; momentum as §4.1's."""
    for name, rate in _rates_at(goodfellow_plan.model, step).items():
        assert rate == pytest.approx(0.1 / 1.000004**step, rel=1e-4), (name, step)
        opt = goodfellow_plan.model.optimizer.players[name]
        assert float(_np(opt.momentum_at(500 * 249))) == pytest.approx(0.7)


def test_goodfellow2014_latent_is_standard_normal_in_training_and_in_the_samples(goodfellow_plan):
    """The GAN code's Generator draws its noise from N(0, I) (its default, which mnist.yaml keeps)."""
    model = goodfellow_plan.model
    for z in (_np(model.sample_z(20_000)), model.latent_array([0, 1], 20_000)):
        assert z.shape == (20_000, 100) and z.dtype == np.float32
        assert np.quantile(z, [0.1, 0.5, 0.9]) == pytest.approx([-1.2816, 0.0, 1.2816], abs=0.01)
    assert goodfellow_plan.epochs == 576 and goodfellow_plan.data.batch_size == 100


def test_output_bias_starts_at_the_pixel_marginals():
    x = np.random.default_rng(0).uniform(0, 1, (50, 784)).astype(np.float32)
    g = build_generator(output_bias=marginal_logits(x))
    bias = _np(_layer(g, "image").bias)
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), np.clip(x.mean(0), 1e-3, 1 - 1e-3), rtol=1e-5)


# --- maxout ---------------------------------------------------------------------------------------


def test_maxout_is_the_maximum_over_pieces_of_a_hand_set_kernel():
    layer = Maxout(2, 3)
    layer.build((None, 2))
    # unit 0: pieces x0, x1, -x0; unit 1: pieces 2 x0, x0 + x1, 0 (columns u * pieces + p).
    kernel = np.array([[1, 0, -1, 2, 1, 0], [0, 1, 0, 0, 1, 0]], np.float32)
    layer.kernel.assign(kernel)
    layer.bias.assign(np.array([0, 0, 0, 0, 0, 0.5], np.float32))
    x = np.array([[1.0, 3.0], [-2.0, -1.0]], np.float32)
    np.testing.assert_allclose(_np(layer(x)), [[3.0, 4.0], [2.0, 0.5]])
    assert layer.compute_output_shape((7, 2)) == (7, 2)


# --- the optimizer of §4.1 -------------------------------------------------------------------------


@pytest.mark.parametrize("step", [0, 1, 100_000, 287_823, 400_000])
def test_recipe_learning_rate_decays_by_1_00004_per_update_to_1e_6(paper_plan, step):
    for name, rate in _rates_at(paper_plan.model, step).items():
        assert rate == pytest.approx(max(0.1 / 1.00004**step, 1e-6), rel=1e-4), (name, step)


@pytest.mark.parametrize(("updates", "momentum"), [(0, 0.5), (499, 0.5), (500, 0.5 + 0.2 / 249),
                                                   (500 * 124, 0.5 + 0.2 * 124 / 249), (500 * 249, 0.7),
                                                   (500 * 400, 0.7)])
def test_recipe_momentum_rises_from_0_5_in_epoch_1_to_0_7_in_epoch_250(paper_plan, updates, momentum):
    for name in ("discriminator", "generator"):
        opt = paper_plan.model.optimizer.players[name]
        assert isinstance(opt, MomentumSGD)
        assert float(_np(opt.momentum_at(updates))) == pytest.approx(momentum, rel=1e-6)


def test_momentum_sgd_step_is_classical_momentum():
    v = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = MomentumSGD(PaperLearningRate(0.1, 1.0, 1e-6), 0.5, 0.7, 1, 250, steps_per_epoch=1)
    g = np.array([0.5, 1.0], np.float32)
    opt.apply([g], [v])  # velocity -0.1 g
    opt.apply([g], [v])  # epoch 2: momentum 0.5 + 0.2 / 249
    m = 0.5 + 0.2 / 249
    np.testing.assert_allclose(_np(v), np.array([1.0, -2.0]) - 0.1 * g - (m * 0.1 * g + 0.1 * g), rtol=1e-6)


# --- the model's step ------------------------------------------------------------------------------


def _small(conditional=True, d_lr=0.1, g_lr=0.1):
    keras.utils.set_random_seed(0)
    g = build_generator(conditional, latent_dim=8, z_units=6, y_units=5, joint_units=7, init_scale=0.5)
    d = build_discriminator(conditional, x_units=(6, 2), y_units=(3, 2), joint_units=(4, 2), init_scale=0.5)
    model = CGAN(g, d, conditional, latent_dim=8, seed=0)

    def sgd(lr):
        return MomentumSGD(PaperLearningRate(lr, 1.0, 0.0), 0.5, 0.7, 1, 250, steps_per_epoch=10)

    model.compile(sgd(d_lr), sgd(g_lr))
    return model


def _batch(n=20):
    rng = np.random.default_rng(1)
    return rng.uniform(0, 1, (n, 784)).astype(np.float32), (np.arange(n) % 10).astype(np.int32)


@pytest.mark.jax
def test_label_changes_the_generated_image_with_z_fixed():
    model = _small()
    z = np.random.default_rng(0).uniform(0, 1, (2, 8)).astype(np.float32)
    a = model.generate(z, np.array([3, 3]), dropout=False)
    b = model.generate(z, np.array([7, 7]), dropout=False)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, model.generate(z, np.array([3, 3]), dropout=False))
    # G's dropout is part of its sampling (IntrinsicDropoutGenerator): two draws of the same z differ.
    assert not np.allclose(model.generate(z, np.array([3, 3])), model.generate(z, np.array([3, 3])))


@pytest.mark.jax
def test_the_label_reaches_d_through_its_own_branch():
    model = _small()
    d = model.discriminator
    x, _ = _batch(4)
    y0, y1 = np.eye(10, dtype=np.float32)[[0] * 4], np.eye(10, dtype=np.float32)[[5] * 4]
    assert not np.allclose(_np(d([x, y0], training=False)), _np(d([x, y1], training=False)))
    branch = keras.Model(d.inputs, d.get_layer("y_maxout").output)
    np.testing.assert_allclose(_np(branch([x, y0])), _np(branch([x * 0, y0])))  # y's branch sees only y


@pytest.mark.jax
@pytest.mark.parametrize("still", ["discriminator", "generator"])
def test_each_player_changes_only_its_own_weights(still):
    model = _small(d_lr=0.0 if still == "discriminator" else 0.1, g_lr=0.0 if still == "generator" else 0.1)
    nets = {"discriminator": model.discriminator, "generator": model.generator}
    before = {k: [_np(v).copy() for v in n.trainable_weights] for k, n in nets.items()}
    model.train_on_batch(*_batch())
    for name, net in nets.items():
        moved = [not np.array_equal(a, _np(v)) for a, v in zip(before[name], net.trainable_weights, strict=True)]
        assert (not any(moved)) if name == still else any(moved), name


@pytest.mark.jax
def test_players_are_updated_together_from_one_forward_pass():
    """Both gradients are taken at the weights before the step (the authors' simultaneous SGD step on
    their summed cost), not G's after D's update: a step equals two single-player steps from the same start."""
    together = _small()
    x, y = _batch()
    together.train_on_batch(x, y)
    d_only = _small(g_lr=0.0)
    d_only.train_on_batch(x, y)
    g_only = _small(d_lr=0.0)
    g_only.train_on_batch(x, y)
    for a, b in zip(together.discriminator.weights, d_only.discriminator.weights, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-7)
    for a, b in zip(together.generator.weights, g_only.generator.weights, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-7)


def test_losses_are_the_gan_codes_from_logits():
    logits = np.array([-3.0, 0.0, 2.0], np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(_np(bce_from_logits(logits, 1.0)), -np.log(p), rtol=1e-5)
    np.testing.assert_allclose(_np(bce_from_logits(logits, 0.0)), -np.log(1 - p), rtol=1e-5)
    assert np.isfinite(_np(bce_from_logits(np.array([1e4, -1e4], np.float32), 1.0))).all()


# --- the Parzen estimator (common.metrics.parzen) ----------------------------------------------------------


def test_parzen_of_one_sample_is_scipys_gaussian_log_density():
    rng = np.random.default_rng(0)
    mu, x, sigma = rng.normal(size=(1, 5)), rng.normal(size=(3, 5)), 0.7
    expected = scipy.stats.multivariate_normal(mu[0], sigma**2 * np.eye(5)).logpdf(x)
    np.testing.assert_allclose(parzen.log_likelihood(x, mu, sigma), expected, rtol=1e-12)


def test_parzen_of_three_samples_is_a_hand_log_mean_exp_and_ignores_their_order():
    mu = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    x, sigma = np.array([[0.5, 0.5]]), 0.5
    sq = ((x - mu) ** 2).sum(1)  # 0.5, 0.5, 2.5
    hand = math.log(np.mean(np.exp(-sq / (2 * sigma**2)))) - 2 * math.log(sigma * math.sqrt(2 * math.pi))
    assert parzen.log_likelihood(x, mu, sigma)[0] == pytest.approx(hand, rel=1e-12)
    assert parzen.log_likelihood(x, mu[::-1], sigma)[0] == pytest.approx(hand, rel=1e-12)


def test_parzen_in_uneven_blocks_equals_scipys_logsumexp_over_all_samples():
    rng = np.random.default_rng(1)
    x, mu, sigma = rng.normal(size=(7, 6)), rng.normal(size=(50, 6)), 0.3  # exponents down to about -180
    sq = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    expected = scipy.special.logsumexp(-sq / (2 * sigma**2), axis=1) - math.log(50) \
        - 6 * math.log(sigma * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(parzen.log_likelihood(x, mu, sigma, block=3), expected, rtol=1e-12)


def test_parzen_of_a_far_point_is_finite():
    ll = parzen.log_likelihood(np.full((1, 784), 1e3), np.zeros((4, 784)), 0.1)
    assert np.isfinite(ll).all() and ll[0] < -1e9  # exp first would give log(0) = -inf


def test_sigma_is_chosen_by_validation_likelihood_and_the_error_is_std_over_sqrt_n():
    rng = np.random.default_rng(0)
    samples, validation = rng.normal(0, 1, (400, 3)), rng.normal(0, 1, (300, 3))
    sigma, scores = parzen.choose_sigma(samples, validation, (0.01, 0.5, 50.0))
    assert sigma == 0.5 and scores[0.5] == max(scores.values())
    ll = np.array([1.0, 2.0, 4.0])
    assert parzen.mean_and_standard_error(ll) == pytest.approx((7 / 3, ll.std() / math.sqrt(3)))
    assert parzen.SIGMA_GRID[0] == pytest.approx(0.1) and parzen.SIGMA_GRID[-1] == 1.0 and len(parzen.SIGMA_GRID) == 10


# --- config and a smoke run -----------------------------------------------------------------------


def test_config_labels_and_errors(capsys):
    assert parse_args(CGANConfig, PRESETS, ["--conditional=false", "--seed=2"])[0] == "paper"
    assert parse_args(CGANConfig, PRESETS, ["--conditional=false", "--networks=goodfellow2014"])[0] == "paper"
    assert parse_args(CGANConfig, PRESETS, ["--epochs=10"])[0] == "paper-custom"
    for bad in ({"lr_decay": 0.9}, {"dropout": 1.0}, {"sigma_grid": (0.0, 1.0)}, {"patience": 0},
                {"networks": "dcgan"}, {"networks": "goodfellow2014"}):
        with pytest.raises(ConfigError):
            make_config(CGANConfig, PRESETS, **bad)
    assert train.main(["--networks=goodfellow2014"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --networks=goodfellow2014 is the GAN paper's unconditional "
                                               "model: add --conditional=false")
    # a run begun before --networks existed keeps its hash, so it resumes (the GAN's seed 2, folder ...-ef99b101)
    assert config_hash(make_config(CGANConfig, PRESETS, conditional=False, seed=2,
                                   feature_network="/work/main/runs/score_networks/mnist-classifier-seed0.keras",
                                   feature_network_name="MNIST classifier")) == "ef99b101"


@pytest.mark.jax
def test_smoke_run_writes_results_figures_and_scores(mnist_root, tmp_path):
    config = smoke_config(CGANConfig, PRESETS, mnist_root, tmp_path, **toy_score_network(tmp_path, (32, 32, 1)))
    record = smoke_record(train, config)
    final = record["final"]
    assert record["status"] == "completed" and record["variant"] == "cgan-mnist"
    assert [h["updates"] for h in record["history"]] == [3, 6]
    assert final["parzen_samples"] == 200 and final["parzen_sigma"] in config.sigma_grid
    assert final["best_epoch"] in (1, 2) and math.isfinite(final["test_parzen_ll"])
    assert final["score_network"] == "toy classifier"
    assert (final["conditional_accuracy"] * 200) == pytest.approx(round(final["conditional_accuracy"] * 200))  # of 200
    assert set(record["figures"]) == {"figure2"} and record["data"]["validation"] == 200
    assert keras.saving.load_model(final["generator_file"]).count_params() > 0
    assert "| cgan-mnist | smoke (not the paper's recipe) |" in report.report_for(config.results_dir, "cgan")


# --- the protocol on real images (real_images.py) --------------------------------------------------


def test_real_images_are_balanced_training_images_drawn_by_the_seed():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 7))
    chosen = real_images.choose_images(labels, 5, seed=0)
    assert len(np.unique(chosen)) == 50 and np.bincount(labels[chosen], minlength=10).tolist() == [5] * 10
    assert np.array_equal(chosen, real_images.choose_images(labels, 5, seed=0))
    assert not np.array_equal(chosen, real_images.choose_images(labels, 5, seed=1))
    with pytest.raises(ConfigError, match="only 7 of class 0"):
        real_images.choose_images(labels, 8, seed=0)


def test_real_images_record_and_report_section(mnist_root, tmp_path, capsys):
    common = [f"--data_dir={mnist_root}", "--verify_data=false", "--download=false",
              f"--results_dir={tmp_path / 'results'}", "--preset=smoke"]
    assert real_images.main(common + ["--parzen_samples_per_class=1000"]) == 2  # the smoke split holds ~30 of each
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --parzen_samples_per_class=1000") and "\n" not in err
    assert real_images.main(common + ["--seed=3"]) == 0
    (record,) = results.load_all(tmp_path / "results", "cgan")
    final = record["final"]
    assert record["kind"] == "benchmark" and record["variant"] == "mnist-training-images" and record["seed"] == 3
    assert final["parzen_samples"] == 200 and final["parzen_sigma"] in CGANConfig().sigma_grid
    assert record["data"]["train"] == 300 and record["data"]["test"] == 200
    text = report.report_for(tmp_path / "results", "cgan", draw=False)
    assert "## The protocol on real images" in text
    assert f"| {final['test_parzen_ll']:.1f} ± {final['test_parzen_ll_sem']:.1f} |" in text


@pytest.mark.parametrize("sigma_points, block", [(40, 20), (40, 7), (123, 50), (10, 250)])
def test_one_pass_validation_score_is_the_two_calls_bit_for_bit(sigma_points, block):
    """Every epoch's score chooses sigma on the first validation images and scores all of them in one pass over
    the distances: the same numbers as choose_sigma then log_likelihood, to the last bit, whether or not a block
    straddles the last sigma point."""
    rng = np.random.default_rng(5)
    samples = rng.random((77, 784)).astype(np.float32)
    validation = (rng.integers(0, 256, (123, 784)) / 255).astype(np.float32)
    sigma, by_sigma = parzen.choose_sigma(samples, validation[:sigma_points], block=block)
    ll = parzen.log_likelihood(validation, samples, sigma, block)
    one_sigma, one_by_sigma, one_ll = parzen.choose_sigma_and_log_likelihood(samples, validation, sigma_points,
                                                                             block=block)
    assert (one_sigma, one_by_sigma) == (sigma, by_sigma)
    assert np.array_equal(one_ll, ll)

"""Semi-supervised GAN (Salimans et al. 2016): the K+1 formulation, feature matching, weight
normalisation and its data-dependent initialisation, the labelled subset, every number of the authors'
MNIST and CIFAR-10 scripts in the built networks and optimizers, the SVHN loader, a smoke run."""


import keras
import numpy as np
import pytest
import scipy.io

from common import report
from common.data import svhn
from common.data.files import DataError
from common.lifecycle import results
from common.lifecycle.config import ConfigError, make_config
from papers.semi_supervised_gan import train
from papers.semi_supervised_gan.config import PRESETS, SemiSupervisedGANConfig
from papers.semi_supervised_gan.data import Batches, labelled_subset, load_data
from papers.semi_supervised_gan.model import (
    AuthorsAdam,
    MinibatchDiscrimination,
    WeightNormConv2D,
    WeightNormDense,
    build_mnist_discriminator,
    build_model,
    feature_matching_loss,
    historical_penalty,
    initialize,
    minibatch_generator_loss,
    supervised_loss,
    unsupervised_loss,
)
from tests.conftest import smoke_config, smoke_record
from tests.recipe import planned_training


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- the K+1 discriminator (§5) -----------------------------------------------------------------------


def test_d_of_x_is_z_over_z_plus_1_and_the_loss_is_its_log_loss():
    real = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    fake = np.array([[-2.0, 1.0, 0.3]], np.float32)
    z_real, z_fake = np.exp(real.astype(np.float64)).sum(1), np.exp(fake.astype(np.float64)).sum(1)
    d_real, d_fake = z_real / (z_real + 1), z_fake / (z_fake + 1)
    naive = 0.5 * np.mean(-np.log(d_real)) + 0.5 * np.mean(-np.log(1 - d_fake))
    assert float(_np(unsupervised_loss(real, fake))) == pytest.approx(naive, rel=1e-5)


def test_one_sided_label_smoothing_moves_only_the_real_images_target_to_1_minus_s():
    real = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    fake = np.array([[-2.0, 1.0, 0.3]], np.float32)
    z_real, z_fake = np.exp(real.astype(np.float64)).sum(1), np.exp(fake.astype(np.float64)).sum(1)
    d_real, d_fake = z_real / (z_real + 1), z_fake / (z_fake + 1)
    s = 0.1  # the paper's example: targets .9 for real, 0 for generated (§3.4)
    naive = (0.5 * np.mean(-(1 - s) * np.log(d_real) - s * np.log(1 - d_real)) + 0.5 * np.mean(-np.log(1 - d_fake)))
    assert float(_np(unsupervised_loss(real, fake, label_smoothing=s))) == pytest.approx(naive, rel=1e-5)
    assert np.isfinite(float(_np(unsupervised_loss(real * 1e4, fake, label_smoothing=s))))


def test_historical_penalty_is_the_squared_distance_to_the_past_mean():
    theta, history = [np.array([1.0, 2.0], np.float32), np.array([[3.0]], np.float32)], [np.zeros(2, np.float32),
                                                                                         np.array([[1.0]], np.float32)]
    assert float(_np(historical_penalty(theta, history))) == pytest.approx(1 + 4 + 4)


@pytest.mark.jax
def test_historical_averaging_keeps_each_players_mean_of_past_parameters_and_pulls_towards_it():
    """Three steps of MNIST's networks with a weight so large that the penalty's gradient dominates: each
    player's history is the mean of its parameters at the start of each of its updates, and from the second
    update on (the first starts at the mean) the parameters move back towards that mean."""
    x = np.random.default_rng(0).uniform(size=(30, 784)).astype(np.float32)
    config = make_config(SemiSupervisedGANConfig, PRESETS, "smoke", historical_averaging=1e6)
    model = build_model(config, steps_per_epoch=1)
    assert set(model.histories) == {"discriminator", "generator"}
    networks = (model.discriminator, model.generator)
    starts = []
    for step in range(3):
        starts.append([[_np(v).copy() for v in net.trainable_weights] for net in networks])
        batches = Batches(x, np.arange(30) % 10, np.arange(10), batch_size=10, seed=step)
        model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)
    for k, player in enumerate(("discriminator", "generator")):
        histories, count = model.histories[player]
        assert float(_np(count)) == 3.0
        for i, h in enumerate(histories):
            np.testing.assert_allclose(_np(h), sum(start[k][i] for start in starts) / 3, rtol=1e-5, atol=1e-6)
        # update 2 starts at theta_1, whose distance to the mean (theta_0 + theta_1) / 2 is (theta_1 - theta_0) / 2
        first, second = starts[1][k][0] - starts[0][k][0], starts[2][k][0] - starts[1][k][0]
        moved = np.abs(first) > 1e-7
        assert np.mean(np.sign(second[moved]) == -np.sign(first[moved])) > 0.95


def test_losses_stay_finite_for_logits_of_1e4():
    big = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    assert np.isfinite(float(_np(unsupervised_loss(big, big))))
    assert np.isfinite(float(_np(supervised_loss(big, np.array([1, 0])))))


def test_supervised_loss_is_cross_entropy_over_the_k_classes():
    logits, y = np.array([[1.0, 2.0, 0.5]], np.float32), np.array([1])
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert float(_np(supervised_loss(logits, y))) == pytest.approx(-np.log(p[1]), rel=1e-5)


def test_feature_matching_is_zero_for_identical_batches_and_a_hand_value_otherwise():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    assert float(_np(feature_matching_loss(a, a))) == 0.0
    b = np.array([[0.0, 0.0], [2.0, 2.0]], np.float32)  # means (2, 3) vs (1, 1): differences 1 and 2
    assert float(_np(feature_matching_loss(a, b, "squared"))) == pytest.approx((1 + 4) / 2)
    assert float(_np(feature_matching_loss(a, b, "absolute"))) == pytest.approx((1 + 2) / 2)


# --- weight normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [WeightNormDense(5, theta_std=0.3), WeightNormConv2D(5, theta_std=0.3)])
def test_the_effective_kernel_has_the_norm_of_its_scale_per_output_unit(layer):
    shape = (4, 7) if isinstance(layer, WeightNormDense) else (2, 6, 6, 3)
    layer.build(shape)
    layer.scale.assign(np.array([1.0, 2.0, 0.5, 3.0, 1.5], np.float32))
    kernel = _np(layer.kernel).reshape(-1, 5)
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), [1.0, 2.0, 0.5, 3.0, 1.5], rtol=1e-5)


@pytest.mark.jax
def test_data_dependent_init_gives_zero_mean_unit_variance_pre_activations():
    d = build_mnist_discriminator(noise=False)
    x = np.random.default_rng(0).uniform(0, 1, (200, 784)).astype(np.float32)
    initialize(d, x)
    h = x
    for layer in d.layers:
        pre = _np(layer.linear(h)) + _np(layer.bias)
        np.testing.assert_allclose(pre.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(pre.std(0), 1, rtol=1e-3)
        h = _np(layer(h))


def test_authors_adam_puts_epsilon_inside_the_root():
    v = keras.Variable(np.array([1.0, 1.0], np.float32))
    opt = AuthorsAdam(0.1, beta_1=0.5)
    g = np.array([1e-4, 2.0], np.float32)
    opt.apply([g], [v])
    # t = 1: m_hat = g, v_hat = g^2, step = g / sqrt(g^2 + 1e-8).
    np.testing.assert_allclose(_np(v), 1.0 - 0.1 * g / np.sqrt(g.astype(np.float64) ** 2 + 1e-8), rtol=1e-6)


# --- minibatch discrimination (§3.2) ---------------------------------------------------------------------


def _minibatch_layer(n_in=4, kernels=2, dims=3):
    layer = MinibatchDiscrimination(kernels, dims)
    layer.build((None, n_in))
    rng = np.random.default_rng(0)
    layer.theta.assign(rng.normal(size=(n_in, kernels, dims)).astype(np.float32))
    layer.log_scale.assign(rng.normal(scale=0.3, size=(kernels, dims)).astype(np.float32))
    layer.bias.assign(np.array([0.5, -2.0], np.float32)[:kernels])
    return layer


@pytest.mark.jax
def test_minibatch_features_sum_each_kernels_closeness_to_the_other_images_of_the_batch():
    layer = _minibatch_layer()
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    theta, scale = _np(layer.theta).astype(np.float64), np.exp(_np(layer.log_scale).astype(np.float64))
    w = theta * scale / np.sqrt((theta ** 2).sum(axis=0))  # normalised over the input axis per (kernel, dim)
    m = np.einsum("ni,ikd->nkd", x.astype(np.float64), w)
    expected = np.zeros((3, 2))
    for i in range(3):
        for b in range(2):
            expected[i, b] = sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(3) if j != i) + [0.5, -2.0][b]
    out = _np(layer(x))
    np.testing.assert_array_equal(out[:, :4], x)  # the input passes through, the features after it
    np.testing.assert_allclose(out[:, 4:], expected, rtol=1e-5)
    moved = x.copy()
    moved[2] += 1.0  # another image of the batch changes image 0's features
    assert not np.allclose(_np(layer(moved))[0, 4:], out[0, 4:])
    np.testing.assert_array_equal(_np(layer(x[:1]))[0, 4:], [0.5, -2.0])  # alone in its batch: the bias only


def test_minibatch_init_makes_half_the_mean_nearest_distance_1_and_centres_the_features():
    layer = _minibatch_layer()
    x = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    out = layer.initialize(x)
    distances = _np(layer.distances(x)).astype(np.float64)
    np.testing.assert_allclose(0.5 * distances.min(axis=1).mean(axis=0), [1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(out[:, 4:].mean(axis=0), [0.0, 0.0], atol=1e-5)


def test_a_discriminator_with_minibatch_discrimination_saves_and_loads(tmp_path):
    d = build_mnist_discriminator(noise=False, minibatch=True)
    x = np.random.default_rng(3).uniform(size=(20, 784)).astype(np.float32)
    initialize(d, x)
    d.save(tmp_path / "d.keras")
    np.testing.assert_array_equal(_np(keras.models.load_model(tmp_path / "d.keras")(x)), _np(d(x)))


def test_minibatch_discrimination_refuses_a_tensorflow_replicas_share_of_the_batch(monkeypatch):
    from common.lifecycle import distribute

    monkeypatch.setattr(distribute, "replicated", lambda: True)
    with pytest.raises(distribute.DistributeError, match="--distribute=none, or the JAX backend"):
        _minibatch_layer()(np.zeros((2, 4), np.float32))


def test_the_minibatch_scripts_generator_loss_is_the_minimax_term_log_1_minus_d():
    fake = np.array([[-2.0, 1.0, 0.3], [0.5, 0.5, -4.0]], np.float32)
    z = np.exp(fake.astype(np.float64)).sum(1)
    assert float(_np(minibatch_generator_loss(fake))) == pytest.approx(np.mean(np.log(1 - z / (z + 1))), rel=1e-6)


# --- the authors' networks and optimisers, as built ------------------------------------------------------


def _plan(tmp_path_factory, data_dir, **overrides):
    """What train.py would train with the paper preset (tests.recipe), and the sizes of the batches its
    data-dependent initialisation saw."""
    initialised = []

    def initialize(network, x):
        initialised.append((network.name, len(x)))
        return original(network, x)

    original = train.initialize
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "initialize", initialize)
        plan = planned_training(mp, train, SemiSupervisedGANConfig, PRESETS, tmp_path_factory.mktemp("ssgan_recipe"),
                                data_dir=str(data_dir), **overrides)
    plan.initialised = initialised
    return plan


@pytest.fixture(scope="module")
def mnist_plan(mnist_root, tmp_path_factory):
    return _plan(tmp_path_factory, mnist_root)


@pytest.fixture(scope="module")
def cifar_plan(cifar_root, tmp_path_factory):
    return _plan(tmp_path_factory, cifar_root, dataset="cifar10")


@pytest.fixture(scope="module")
def cifar_minibatch_plan(cifar_root, tmp_path_factory):
    return _plan(tmp_path_factory, cifar_root, dataset="cifar10", minibatch_discrimination=True)


def test_recipe_mnist_networks_are_the_authors(mnist_plan):
    d, g = mnist_plan.model.discriminator, mnist_plan.model.generator
    dense = [la for la in d.layers if isinstance(la, WeightNormDense)]
    assert [la.units for la in dense] == [1000, 500, 250, 250, 250, 10]
    assert [la.activation.__name__ for la in dense] == ["relu"] * 5 + ["linear"]
    noise = [la.stddev for la in d.layers if isinstance(la, keras.layers.GaussianNoise)]
    assert noise == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert [la.theta_initializer.stddev for la in dense] == [0.1] * 6
    assert [la.train_scale for la in dense] == [False] * 5 + [True]  # hidden scales set once, at initialisation
    g_dense = [la for la in g.layers if isinstance(la, (keras.layers.Dense, WeightNormDense))]
    assert [la.units for la in g_dense] == [500, 500, 784]
    assert [la.activation.__name__ for la in g.layers if isinstance(la, keras.layers.Activation)] == ["softplus"] * 2
    bns = [la for la in g.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert len(bns) == 2 and not any(bn.scale for bn in bns) and g.layers[-1].activation.__name__ == "sigmoid"


def test_recipe_cifar_networks_are_the_authors(cifar_plan):
    d, g = cifar_plan.model.discriminator, cifar_plan.model.generator
    convs = [la for la in d.layers if isinstance(la, WeightNormConv2D)]
    assert [(la.units, la.size, la.strides, la.padding) for la in convs] == [
        (96, 3, 1, "same"), (96, 3, 1, "same"), (96, 3, 2, "same"), (192, 3, 1, "same"), (192, 3, 1, "same"),
        (192, 3, 2, "same"), (192, 3, 1, "valid"), (192, 1, 1, "same"), (192, 1, 1, "same")]
    assert [la.rate for la in d.layers if isinstance(la, keras.layers.Dropout)] == [0.2, 0.5, 0.5]
    assert d.output_shape == (None, 10) and d.layers[-1].init_std == 0.1 and d.layers[-1].train_scale
    assert _np(convs[0].activation(np.array([-1.0], np.float32)))[0] == pytest.approx(-0.2)
    assert g.output_shape == (None, 32, 32, 3) and g.layers[-1].activation.__name__ == "tanh"
    assert [la.filters for la in g.layers if isinstance(la, keras.layers.Conv2DTranspose)] == [256, 128]
    assert g.get_layer("project").units == 4 * 4 * 512


@pytest.mark.parametrize(("dataset", "lr", "epochs", "distance", "layer"),
                         [("mnist", 0.003, 300, "squared", "hidden5"), ("cifar10", 3e-4, 1200, "absolute", "pool")])
def test_recipe_the_built_model_follows_the_authors_script(request, dataset, lr, epochs, distance, layer):
    plan = request.getfixturevalue("mnist_plan" if dataset == "mnist" else "cifar_plan")
    model, steps = plan.model, len(plan.data)
    # the authors' scripts: minibatches of 100 labelled, 100 unlabelled and 100 generated images; epochs of
    # (training images / 100) steps; 300 epochs on MNIST, 1,200 on CIFAR-10; 100 or 4,000 labels, 10 or
    # 400 per class (§5.1, §5.2)
    x_lab, x_unl, x_unl2 = plan.data[0][0]
    assert len(x_lab) == len(x_unl) == len(x_unl2) == 100 and plan.images_per_step == 100
    assert steps == (600 if dataset == "mnist" else 500) and plan.epochs == epochs
    assert plan.run.data["labelled"] == (100 if dataset == "mnist" else 4000)
    assert np.bincount(plan.data.y[plan.data.labelled], minlength=10).tolist() == [len(plan.data.labelled) // 10] * 10
    # the authors' data-dependent initialisation on 500 training images (and, on CIFAR-10, 500 latent vectors)
    assert plan.initialised == ([("discriminator", 500)] if dataset == "mnist"
                                else [("discriminator", 500), ("generator", 500)])
    assert model.features.layers[-1].name == layer  # the authors' feature layer: the last hidden one (MNIST)
    assert model.feature_distance == distance and model.features.output.shape[-1] == (250 if dataset == "mnist"
                                                                                          else 192)
    assert model.average_rate == 1e-4 and model.unlabelled_weight == 1.0
    for name in ("discriminator", "generator"):
        opt = model.optimizer.players[name]
        assert isinstance(opt, AuthorsAdam) and opt.beta_1 == 0.5 and opt.beta_2 == 0.999
        assert float(_np(opt.learning_rate)) == pytest.approx(lr)
        if dataset == "cifar10":  # lr * min(3 - epoch / 400, 1): constant to epoch 800, then linearly to 0
            for epoch, factor in ((799, 1.0), (800, 1.0), (900, 0.75), (1199, 1 / 400)):
                opt.iterations.assign(epoch * steps)
                assert float(_np(opt.learning_rate)) == pytest.approx(lr * factor, rel=1e-5), epoch
            opt.iterations.assign(0)


def test_recipe_cifar_minibatch_discrimination_is_the_authors_script(cifar_minibatch_plan, mnist_root):
    """train_cifar_minibatch_discrimination.py against train_cifar_feature_matching.py: Gaussian noise of
    std 0.2 on D's input instead of dropout 0.2, nn.MinibatchLayer(num_kernels=100) (5 dimensions, theta
    ~ N(0, 0.05), bias -1 before initialisation) between the global pooling and the output layer, and 3
    generator updates per D update on -mean(softplus(l_gen)); tested in batches of 100."""
    plan = cifar_minibatch_plan
    model, d = plan.model, plan.model.discriminator
    names = [la.name for la in d.layers]
    assert names[0] == "input_noise" and d.layers[0].stddev == 0.2
    assert [la.rate for la in d.layers if isinstance(la, keras.layers.Dropout)] == [0.5, 0.5]
    mb = d.get_layer("minibatch")
    assert names.index("minibatch") == names.index("pool") + 1 == names.index("logits") - 1
    assert (mb.kernels, mb.dims, mb.theta_std) == (100, 5, 0.05) and mb.output.shape[-1] == 192 + 100
    fresh = MinibatchDiscrimination(100, 5)
    fresh.build((None, 192))
    assert set(_np(fresh.bias).tolist()) == {-1.0} and not _np(fresh.log_scale).any()
    assert model.minibatch and model.generator_updates == 3 and train.eval_batch(plan.config) == 100
    assert plan.initialised == [("discriminator", 500), ("generator", 500)]  # the minibatch layer included


@pytest.mark.jax
def test_a_minibatch_step_makes_three_generator_updates_at_the_minibatch_scripts_rate():
    """One step on MNIST's networks (quicker than CIFAR-10's): three generator updates to each discriminator
    update, on both backends."""
    config = make_config(SemiSupervisedGANConfig, PRESETS, "smoke", minibatch_discrimination=True)
    small = build_model(config, steps_per_epoch=1)
    x = np.random.default_rng(0).uniform(size=(30, 784)).astype(np.float32)
    batches = Batches(x, np.arange(30) % 10, np.arange(10), batch_size=10, seed=0)
    small.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)
    players = small.optimizer.players
    assert (int(_np(players["discriminator"].iterations)), int(_np(players["generator"].iterations))) == (1, 3)
    # the rate of both minibatch scripts, for MNIST too (the authors published no MNIST one)
    assert [float(_np(players[p].learning_rate)) for p in ("discriminator", "generator")] == pytest.approx([3e-4] * 2)


# --- the labelled subset -------------------------------------------------------------------------------


def test_labelled_subset_is_balanced_a_function_of_the_data_seed_and_inside_the_training_set():
    y = np.repeat(np.arange(10), 50)
    a = labelled_subset(y, 100, data_seed=1)
    assert len(a) == 100 and np.bincount(y[a], minlength=10).tolist() == [10] * 10 and len(set(a)) == 100
    np.testing.assert_array_equal(a, labelled_subset(y, 100, data_seed=1))
    assert set(a) != set(labelled_subset(y, 100, data_seed=2))
    assert a.max() < len(y)  # indices of training images: the test set is never a candidate


def test_quick_preset_length_and_decay_follow_the_dataset():
    mnist_quick = make_config(SemiSupervisedGANConfig, PRESETS, "quick")
    cifar_quick = make_config(SemiSupervisedGANConfig, PRESETS, "quick", dataset="cifar10")
    cifar = make_config(SemiSupervisedGANConfig, PRESETS, dataset="cifar10")
    assert (mnist_quick.epochs, mnist_quick.lr_decay_epochs) == (20, 0)
    assert (cifar_quick.epochs, cifar_quick.lr_decay_epochs) == (2, 1)
    assert (cifar.epochs, cifar.lr_decay_epochs) == (1200, 400)


def test_config_errors():
    for bad in ({"labels": 105}, {"dataset": "stl10"}, {"lr_decay_epochs": 5000},
                {"labelled_only": True, "minibatch_discrimination": True},
                {"labelled_only": True, "label_smoothing": 0.1}, {"label_smoothing": 1.0},
                {"historical_averaging": -1.0}):
        with pytest.raises(ConfigError):
            make_config(SemiSupervisedGANConfig, PRESETS, **bad)


def test_minibatch_discrimination_is_its_own_variant_and_leaves_earlier_runs_hashes_alone():
    from common.lifecycle.config import config_hash

    plain = make_config(SemiSupervisedGANConfig, PRESETS)
    minibatch = make_config(SemiSupervisedGANConfig, PRESETS, minibatch_discrimination=True)
    assert (plain.variant, minibatch.variant) == ("mnist-100labels", "mnist-100labels-minibatch")
    # the paper preset's MNIST run of data seed 1, seed 0, as recorded before the option existed
    assert config_hash(make_config(SemiSupervisedGANConfig, PRESETS, data_seed=1, seed=0)) == "41abc4b9"
    assert config_hash(minibatch) != config_hash(plain)
    smoothed = make_config(SemiSupervisedGANConfig, PRESETS, label_smoothing=0.1, historical_averaging=0.5)
    assert smoothed.variant == "mnist-100labels-smooth0.1-histavg0.5"
    assert config_hash(smoothed) != config_hash(plain)


@pytest.mark.parametrize("minibatch", [False, True])
def test_recipe_svhn_is_the_authors_script(tmp_path, minibatch):
    """train_svhn_feature_matching.py: 1,000 labels, 900 epochs, Adam 3e-4 falling linearly to 0 over the
    last 300 (lr * min(3 - epoch / 300, 1)), CIFAR-10's D at 64 and 128 channels (its minibatch script: at
    96 and 192, as CIFAR-10's), images scaled as (x - 127.5) / 127.5."""
    config = make_config(SemiSupervisedGANConfig, PRESETS, dataset="svhn", minibatch_discrimination=minibatch)
    assert (config.labels, config.epochs, config.lr_decay_epochs) == (1000, 900, 300)
    model = build_model(config, steps_per_epoch=1)
    widths = [la.units for la in model.discriminator.layers if isinstance(la, WeightNormConv2D)]
    assert widths == ([96] * 3 + [192] * 6 if minibatch else [64] * 3 + [128] * 6)
    opt = model.optimizer.players["discriminator"]
    for epoch, factor in ((0, 1.0), (600, 1.0), (700, 2 / 3), (899, 1 / 300)):
        opt.iterations.assign(epoch)
        assert float(_np(opt.learning_rate)) == pytest.approx(3e-4 * factor, rel=1e-5), epoch
    folder = tmp_path / svhn.FOLDER
    folder.mkdir()
    for split in ("train", "test"):
        x = np.zeros((32, 32, 3, 2), np.uint8)
        x[..., 1] = 255
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": np.array([[1], [10]])})
    loaded = make_config(SemiSupervisedGANConfig, PRESETS, dataset="svhn", data_dir=str(tmp_path), verify_data=False)
    (x_train, _), _, _ = load_data(loaded)
    assert (x_train[0].min(), x_train[1].max()) == (-1.0, 1.0)


def test_svhn_loader_reads_the_mat_layout_and_checks_it(tmp_path):
    folder = tmp_path / svhn.FOLDER
    folder.mkdir()
    for split in ("train", "test"):
        x = np.random.default_rng(0).integers(0, 255, (32, 32, 3, 12), dtype=np.uint8)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": np.arange(1, 13).reshape(-1, 1) % 10 + 1})
    data = svhn.load(str(tmp_path), download=False, verify=False)
    assert data.x_train.shape == (12, 32, 32, 3) and data.y_train.tolist() == [(k % 10 + 1) % 10 for k in range(1, 13)]
    with pytest.raises(DataError, match="expected md5 e26dedcc"):
        svhn.load(str(tmp_path), download=False)
    with pytest.raises(DataError, match="not found"):
        svhn.load(str(tmp_path / "elsewhere"), download=False)


@pytest.mark.jax
@pytest.mark.parametrize(("labelled_only", "minibatch"), [(False, False), (True, False), (False, True)])
def test_smoke_run_writes_results_and_samples(mnist_root, tmp_path, labelled_only, minibatch):
    config = smoke_config(SemiSupervisedGANConfig, PRESETS, mnist_root, tmp_path, labelled_only=labelled_only,
                          minibatch_discrimination=minibatch)
    record = smoke_record(train, config)
    final = record["final"]
    assert record["status"] == "completed" and final["test_images"] == 200 and record["data"]["labelled"] == 100
    # the final count is the last epoch's (the same averaged weights), a whole number of test images
    assert final["test_errors"] == record["history"][-1]["test_errors"] == int(final["test_errors"])
    assert set(record["figures"]) == (set() if labelled_only else {"samples"})
    assert record["variant"] == ("mnist-100labels" + ("-labelled-only" if labelled_only else "")
                                 + ("-minibatch" if minibatch else ""))
    assert record["variant"] in report.report_for(config.results_dir, "semi_supervised_gan")
    # the classifier it counted them with is kept: D with the averaged weights, loadable on its own
    classifier = keras.saving.load_model(final["classifier_file"])
    _, (x_test, y_test), _ = load_data(config)
    logits = classifier.predict(x_test, batch_size=train.eval_batch(config), verbose=0)
    assert logits.shape == (200, 10) and int((logits.argmax(-1) != y_test).sum()) == final["test_errors"]


def test_step_benchmark_times_each_dataset_and_projects_the_recipe(tmp_path, capsys):
    """A command, not a test of speed: at a tiny batch it times both datasets' steps and records the
    authors' epochs and steps per epoch with the projected hours; the report shows a row per dataset.
    (CIFAR-10's step costs most of this test's 20 s; MNIST alone would leave its projection untested.)"""
    from papers.semi_supervised_gan import benchmark

    assert benchmark.run.main(["--batch_size=4", "--steps=1", "--warmup_steps=1", "--repeats=1",
                           f"--results_dir={tmp_path}"]) == 0
    (record,) = results.load_all(tmp_path, "semi_supervised_gan")
    final = record["final"]
    assert record["kind"] == "benchmark" and record["variant"] == "mnist+cifar10"
    assert final["paper_epochs"] == {"mnist": 300, "cifar10": 1200}
    assert final["steps_per_epoch"] == {"mnist": 15_000, "cifar10": 12_500}
    step = final["step_s"]["cifar10"]
    assert final["paper_recipe_hours_projected"]["cifar10"] == pytest.approx(1200 * 12_500 * step / 3600)
    assert f"| cifar10 | {1000 * step:.0f} | " in report.report_for(str(tmp_path), "semi_supervised_gan")
    assert benchmark.run.main(["--datasets=mnist,svhn"]) == 2
    assert capsys.readouterr().err == "error: --datasets=mnist,svhn: each must be one of mnist, cifar10\n"
    assert benchmark.run.main(["--datasets=mnist,mnist"]) == 2
    assert capsys.readouterr().err == "error: --datasets=mnist,mnist: give at least 1 value, none repeated\n"

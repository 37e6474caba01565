import keras
import numpy as np
import pytest
from keras import ops

from common import report
from common.adversarial import input_gradient
from common.lifecycle import results
from common.lifecycle.config import ConfigError, make_config, parse_args
from papers.wgan import train
from papers.wgan.config import PRESETS, WGANConfig
from papers.wgan.model import (
    WGAN,
    build_model,
    critic_updates_before,
    dcgan_critic,
    dcgan_generator,
    gradient_penalty,
    per_example_norm,
    train_steps_for,
)
from tests.conftest import smoke_config, smoke_record, toy_score_network
from tests.recipe import recipe_plan


def _np(x):
    return ops.convert_to_numpy(x)


def _linear_critic(w):
    x = keras.Input(w.shape)
    out = keras.layers.Dense(1, use_bias=False, name="w")(keras.layers.Flatten()(x))
    model = keras.Model(x, out)
    model.get_layer("w").set_weights([w.reshape(-1, 1)])
    return model


@pytest.mark.jax
def test_gradient_penalty_of_a_linear_critic_by_hand():
    """f(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 whatever eps and the data."""
    w = np.array([[[0.6], [0.0]], [[0.0], [1.6]]], np.float32)  # ||w|| = sqrt(0.36 + 2.56) = sqrt(2.92)
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(5, 2, 2, 1)).astype(np.float32), rng.normal(size=(5, 2, 2, 1)).astype(np.float32)
    gp = _np(gradient_penalty(_linear_critic(w), real, fake, rng.uniform(size=5).astype(np.float32)))
    assert gp == pytest.approx((np.sqrt(2.92) - 1) ** 2, rel=1e-5)


@pytest.mark.jax
def test_gradient_penalty_is_per_example_with_per_example_eps():
    """f(x) = ||x||^2 / 2 has gradient x: the penalty is mean_i (||xhat_i|| - 1)^2 with
    xhat_i = eps_i real_i + (1 - eps_i) fake_i. A norm over the whole batch, or one eps for the
    batch, gives a different number."""
    def critic(x, training=False):
        return 0.5 * ops.sum(ops.square(x), axis=(1, 2, 3))

    real = np.stack([np.full((2, 2, 1), 1.0), np.full((2, 2, 1), 3.0)]).astype(np.float32)
    fake = np.zeros_like(real)
    eps = np.array([0.25, 1.0], np.float32)
    norms = np.array([0.25 * 2.0, 3.0 * 2.0])  # ||eps_i real_i||: 4 pixels of 0.25, 4 of 3
    expected = np.mean((norms - 1) ** 2)
    assert _np(gradient_penalty(critic, real, fake, eps)) == pytest.approx(expected, rel=1e-5)
    batch_norm = np.sqrt(np.sum(norms**2))
    assert abs(expected - (batch_norm - 1) ** 2) > 1  # the whole-batch-norm bug would be caught


@pytest.mark.jax
def test_norm_has_a_finite_gradient_at_zero():
    g = _np(input_gradient(lambda x: per_example_norm(x), np.zeros((2, 3, 3, 1), np.float32)))
    assert np.isfinite(g).all()
    assert _np(per_example_norm(np.full((1, 2, 2, 1), 0.5, np.float32)))[0] == pytest.approx(1.0, abs=1e-6)


def _small(loss="gp", critic_lr=1e-3, g_lr=1e-3, batch=8, n_critic=2, norm=None):
    keras.utils.set_random_seed(0)
    g = dcgan_generator((32, 32, 1), 8, 4)
    c = dcgan_critic((32, 32, 1), 4, norm=norm or ("none" if loss == "gp" else "batch"))
    model = WGAN(g, c, 8, loss=loss, n_critic=n_critic, batch_size=batch, seed=0)
    opt = keras.optimizers.RMSprop if loss == "clip" else keras.optimizers.Adam
    model.compile(opt(critic_lr), opt(g_lr))
    return model


def _real(n):
    return np.random.default_rng(1).uniform(-1, 1, (n, 32, 32, 1)).astype(np.float32)


@pytest.mark.jax
@pytest.mark.parametrize("loss", ["clip", "gp"])
def test_one_step_makes_n_critic_critic_updates_and_one_generator_update(loss):
    model = _small(loss)
    logs = model.train_on_batch(_real(16), return_dict=True)
    assert int(_np(model.optimizer.iterations)) == 1
    assert int(_np(model.optimizer.players["critic"].iterations)) == 2
    assert np.isfinite(list(logs.values())).all() and ("gradient_penalty" in logs) == (loss == "gp")


def test_clipped_critic_weights_stay_within_c():
    model = _small("clip", critic_lr=0.5)  # big steps push weights far beyond c before clipping
    for _ in range(2):
        model.train_on_batch(_real(16))
    weights = [_np(v) for v in model.critic.trainable_weights]
    assert max(np.abs(w).max() for w in weights) <= 0.01 + 1e-7
    assert any(np.isclose(np.abs(w).max(), 0.01) for w in weights)  # the bound is reached, i.e. clipping acted


@pytest.mark.parametrize("still", ["critic", "generator"])
def test_each_player_changes_only_its_own_weights(still):
    """With one player's learning rate at 0 its weights must not move while the other's do (the
    critic's loss must not update G, nor G's loss the critic)."""
    model = _small("gp", critic_lr=0.0 if still == "critic" else 1e-3, g_lr=0.0 if still == "generator" else 1e-3)
    nets = {"critic": model.critic, "generator": model.generator}
    before = {k: [_np(v).copy() for v in n.trainable_weights] for k, n in nets.items()}
    model.train_on_batch(_real(16))
    for name, net in nets.items():
        changed = {v.path: not np.array_equal(a, _np(v)) for a, v in zip(before[name], net.trainable_weights,
                                                                          strict=True)}
        if name == still:
            assert not any(changed.values()), name
        else:
            # The critic's output bias cancels in E f(real) - E f(fake): its gradient is exactly 0.
            assert all(c for path, c in changed.items() if path != "value/bias"), (name, changed)
            assert name == "generator" or not changed["value/bias"]


def test_batch_norm_runs_in_training_mode_in_both_players_steps():
    """Keras-GAN#252: freezing a model with trainable=False also switches its BN to inference. Here
    both networks normalise by batch statistics in every step, so their moving statistics move."""
    model = _small("clip")
    moving = [v for net in (model.critic, model.generator) for v in net.non_trainable_weights
              if "moving_mean" in v.path]
    before = [_np(v).copy() for v in moving]
    model.train_on_batch(_real(16))
    assert moving and all(not np.array_equal(a, _np(v)) for a, v in zip(before, moving, strict=True))


def test_authors_schedule_counts():
    """The WGAN code's Diters: 100 critic updates before generator updates 0-24 and every 500th."""
    assert [critic_updates_before(g, 5, "authors") for g in (0, 24, 25, 499, 500, 501, 1000)] == [
        100, 100, 5, 5, 100, 5, 100]
    assert critic_updates_before(0, 5, "algorithm1") == 5
    assert train_steps_for(1000, 5, "algorithm1") == 1000
    assert train_steps_for(1000, 5, "authors") == 26 * 20 + 974  # generator steps 0-24 and 500 are heavy


@pytest.mark.jax
def test_authors_schedule_skips_generator_updates_until_the_critic_has_caught_up(monkeypatch):
    """With a scaled-down schedule (4 critic updates before generator steps 0, 1 and every 3rd; n_critic
    = 2) the generator's update count after each train step follows critic_updates_before."""
    from papers.wgan import model as wgan_model

    monkeypatch.setitem(wgan_model.AUTHORS_SCHEDULE, "heavy_critic_updates", 4)
    monkeypatch.setitem(wgan_model.AUTHORS_SCHEDULE, "first", 2)
    monkeypatch.setitem(wgan_model.AUTHORS_SCHEDULE, "every", 3)
    keras.utils.set_random_seed(0)
    model = WGAN(dcgan_generator((32, 32, 1), 8, 4), dcgan_critic((32, 32, 1), 4, norm="batch"),
                 8, loss="clip", n_critic=2, batch_size=8, seed=0, critic_schedule="authors")
    model.compile(keras.optimizers.RMSprop(1e-3), keras.optimizers.RMSprop(1e-3))
    counts, g_before = [], _np(model.generator.trainable_weights[0]).copy()
    for _ in range(8):
        model.train_on_batch(_real(16))
        counts.append(int(_np(model.optimizer.iterations)))
        if len(counts) == 1:  # the first step only trains the critic: G has not moved
            np.testing.assert_array_equal(g_before, _np(model.generator.trainable_weights[0]))
    assert counts == [0, 1, 1, 2, 3, 3, 4, 5]
    assert train_steps_for(5, 2, "authors") == 8
    assert int(_np(model.optimizer.players["critic"].iterations)) == 16
    with pytest.raises(ValueError, match="divide"):
        WGAN(model.generator, model.critic, 8, loss="clip", n_critic=3, critic_schedule="authors")


def test_critic_loss_follows_the_batch_it_is_given():
    model = _small("gp", batch=8)
    loss, (w, penalty) = model.critic_loss(_real(3))  # no hard-coded batch size
    assert np.isfinite(_np(loss)) and _np(loss) == pytest.approx(-_np(w) + 10 * _np(penalty), rel=1e-5)


def _resnet_parameters(dim: int, channels: int, latent: int) -> tuple[int, int]:
    """Hand count of the ResNet G and critic (Gulrajani et al. Appendix C) with `dim` filters."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    bn = 4 * dim  # gamma, beta, moving mean, moving variance
    up_block = conv(dim, dim, 1) + bn + conv(dim, dim, 3) + bn + conv(dim, dim, 3)
    g = latent * 16 * dim + 16 * dim + 3 * up_block + bn + conv(dim, channels, 3)
    first = conv(channels, dim, 3) + conv(dim, dim, 3) + conv(channels, dim, 1)
    down_block = conv(dim, dim, 1) + 2 * conv(dim, dim, 3)
    d = first + down_block + 2 * (2 * conv(dim, dim, 3)) + dim + 1
    return g, d


@pytest.mark.jax
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_generator_and_critic_shapes_and_parameter_counts(channels):
    from papers.wgan import resnet_networks

    g = resnet_networks.resnet_generator((32, 32, channels), 16, 8)
    d = resnet_networks.resnet_critic((32, 32, channels), 8)
    assert g.output_shape == (None, 32, 32, channels) and d.output_shape == (None, 1)
    assert (g.count_params(), d.count_params()) == _resnet_parameters(8, channels, 16)
    assert _resnet_parameters(128, 3, 128) == (1_206_275, 1_053_825)  # DIM = 128, as in Table 3's model
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers)
    images = keras.ops.convert_to_numpy(g(np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)))
    assert np.abs(images).max() <= 1.0
    with pytest.raises(ValueError, match="critic norm"):
        resnet_networks.resnet_critic(norm="group")


@pytest.mark.jax
def test_resnet_wgan_gp_step_decays_lr_and_uses_a_double_generator_batch(cifar_root):
    config = make_config(WGANConfig, PRESETS, "smoke", architecture="resnet")
    assert (config.generator_batch, config.lr_decay) == (2 * config.batch_size, "true")
    model = build_model(config, (32, 32, 3))
    assert model.g_batch_size == 2 * config.batch_size
    logs = model.train_on_batch(_real(config.n_critic * config.batch_size).repeat(3, axis=-1), return_dict=True)
    assert np.isfinite(list(logs.values())).all()
    g_opt = model.optimizer.players["generator"]
    steps = config.generator_steps
    lr_now = float(_np(g_opt.learning_rate))
    assert lr_now == pytest.approx(config.learning_rate * (1 - 1 / steps), rel=1e-5)


# CIFAR-10's published score network (common.metrics.generative.PUBLISHED_SCORE_NETWORKS)
CIFAR_SCORE_NETWORK = {"feature_network": "resnet/resnet20-fast-seed4",
                       "feature_network_name": "CIFAR-10 ResNet-20 classifier"}


def test_config_architecture_defaults():
    dcgan, res = make_config(WGANConfig, PRESETS), make_config(WGANConfig, PRESETS, architecture="resnet")
    assert dcgan.variant == "wgan-gp-cifar10" and res.variant == "wgan-gp-resnet-cifar10"
    assert {k: getattr(dcgan, k) for k in dcgan.chosen_automatically} == {
        "learning_rate": 1e-4, "critic_norm": "none", "generator_steps": 200_000, "generator_batch": 64,
        "lr_decay": "false", **CIFAR_SCORE_NETWORK}
    assert {k: getattr(res, k) for k in res.chosen_automatically} == {  # Gulrajani et al.'s gan_cifar_resnet.py
        "learning_rate": 2e-4, "critic_norm": "none", "generator_steps": 100_000, "generator_batch": 128,
        "lr_decay": "true", **CIFAR_SCORE_NETWORK}
    clip = make_config(WGANConfig, PRESETS, loss="clip", architecture="resnet")
    assert clip.learning_rate == 5e-5 and clip.variant == "wgan-clip-resnet-cifar10"
    assert parse_args(WGANConfig, PRESETS, ["--architecture=resnet"])[0] == "paper"
    explicit = make_config(WGANConfig, PRESETS, generator_steps=7)
    assert explicit.generator_steps == 7 and "generator_steps" not in explicit.chosen_automatically
    for bad, match in (({"architecture": "vgg"}, "dcgan, resnet"),
                       ({"lr_decay": "yes"}, "--lr_decay must be one of auto, true, false"),
                       ({"generator_steps": -1}, "--generator_steps=-1 is out of range: it must be >= 0")):
        with pytest.raises(ConfigError, match=match):
            make_config(WGANConfig, PRESETS, **bad)


def test_config_variant_defaults_and_errors():
    clip = make_config(WGANConfig, PRESETS, loss="clip")
    gp = make_config(WGANConfig, PRESETS)
    assert (clip.learning_rate, clip.critic_norm) == (5e-5, "batch")
    assert (gp.learning_rate, gp.critic_norm) == (1e-4, "none")
    assert parse_args(WGANConfig, PRESETS, ["--loss=clip", "--dataset=mnist"])[0] == "paper"
    assert parse_args(WGANConfig, PRESETS, ["--n_critic=1"])[0] == "paper-custom"
    with pytest.raises(ConfigError, match="layer or none"):
        make_config(WGANConfig, PRESETS, critic_norm="batch")
    with pytest.raises(ConfigError, match="feature_network_name"):
        make_config(WGANConfig, PRESETS, feature_network="x.keras")
    with pytest.raises(ConfigError, match="clip, gp"):
        make_config(WGANConfig, PRESETS, loss="hinge")
    with pytest.raises(ConfigError, match="algorithm1, authors"):
        make_config(WGANConfig, PRESETS, critic_schedule="warmup")
    with pytest.raises(ConfigError, match="divide 100"):
        make_config(WGANConfig, PRESETS, critic_schedule="authors", n_critic=3)


@pytest.mark.jax
def test_smoke_run_writes_results_figures_and_report(cifar_root, tmp_path):
    config = smoke_config(WGANConfig, PRESETS, cifar_root, tmp_path, **toy_score_network(tmp_path, (32, 32, 3)))
    record = smoke_record(train, config)
    final = record["final"]
    assert final["score_network"] == "toy classifier" and len(final["score_network_sha256"]) == 64
    assert 1.0 <= final["sample_score"] <= 10.0
    assert record["status"] == "completed" and record["variant"] == "wgan-gp-cifar10"
    assert (final["generator_steps"], final["critic_steps"]) == (4, 8)
    assert {"w_estimate", "heldout_w_estimate", "sample_nn_distance", "generator_steps"} <= set(record["history"][0])
    folder = tmp_path / "results" / "wgan"
    assert set(record["figures"]) == {"samples", "interpolation", "w_vs_quality"}
    assert all((folder / rel).exists() for rel in record["figures"].values())
    assert "| wgan-gp-cifar10 | smoke (not the paper's recipe) |" in report.report_for(config.results_dir, "wgan")


@pytest.mark.parametrize("loss", ["clip", "gp"])
def test_step_cost_benchmark_writes_a_record_and_judges_only_clipping(tmp_path, loss):
    from papers.wgan import benchmark

    config = make_config(benchmark.WGANBenchmarkConfig, PRESETS, "smoke", loss=loss, steps=1, warmup_steps=1,
                         repeats=1, results_dir=str(tmp_path / "results"))
    assert benchmark.run(config) == 0
    (record,) = results.load_all(config.results_dir, "wgan")
    final = record["final"]
    assert record["kind"] == "benchmark" and final["wgan_step_ms"] > 0 and final["n_critic"] == config.n_critic
    assert final["overhead"] == pytest.approx(final["wgan_step_ms"] / (
        config.n_critic * final["plain_critic_ms"] + final["plain_g_through_critic_ms"]) - 1)
    assert final["bound_applies"] == (loss == "clip") and (final["within_20_percent"] is None) == (loss == "gp")
    per_update = final["plain_critic_ms"] + final["plain_g_forward_ms"]
    assert final["overhead_with_g_forward"] == pytest.approx(final["wgan_step_ms"] / (
        config.n_critic * per_update + final["plain_g_through_critic_ms"]) - 1)
    textbook = loss == "gp" and keras.backend.backend() == "tensorflow"  # the textbook GP reference is TF code
    assert ("textbook_gp_critic_ms" in final) == textbook
    if textbook:
        assert final["overhead_vs_textbook_gp"] == pytest.approx(final["wgan_step_ms"] / (
            config.n_critic * final["textbook_gp_critic_ms"] + final["plain_g_through_critic_ms"]) - 1)
        assert isinstance(final["within_20_percent_of_textbook_gp"], bool)
    text = report.report_for(config.results_dir, "wgan")
    assert "## Step cost" in text and f"| wgan-{loss}-cifar10 | CPU" in text


# Both papers' recipes, read from what train.py builds with the paper preset (Arjovsky et al. 2017,
# Algorithm 1; Gulrajani et al. 2017, Algorithm 1 and their released CIFAR-10 scripts).

def _paper_plan(cifar_root, tmp_path_factory, **overrides):
    return recipe_plan(tmp_path_factory, train, WGANConfig, PRESETS, cifar_root, **overrides)


@pytest.fixture(scope="module")
def gp_plan(cifar_root, tmp_path_factory):
    return _paper_plan(cifar_root, tmp_path_factory)


@pytest.fixture(scope="module")
def clip_plan(cifar_root, tmp_path_factory):
    return _paper_plan(cifar_root, tmp_path_factory, loss="clip")


def _rate(optimizer, step):
    lr = optimizer._learning_rate
    return float(_np(lr(step) if callable(lr) else lr))


def test_recipe_gradient_penalty_adam_lambda_and_n_critic(gp_plan):
    model = gp_plan.model
    # Gulrajani et al. Algorithm 1: lambda = 10, n_critic = 5, m = 64, Adam(alpha = 1e-4, beta_1 = 0, beta_2 = 0.9)
    for name in ("critic", "generator"):
        opt = model.optimizer.players[name]
        assert type(opt).__name__ == "Adam" and (opt.beta_1, opt.beta_2) == (0.0, 0.9)
        assert _rate(opt, 0) == pytest.approx(1e-4) and _rate(opt, 199_999) == pytest.approx(1e-4)  # no decay
    real = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    loss, (w, penalty) = model.critic_loss(real)
    assert float(_np(loss)) == pytest.approx(-float(_np(w)) + 10.0 * float(_np(penalty)), rel=1e-5)
    assert model.n_critic == 5 and model.batch_size == 64 and model.g_batch_size == 64
    # each train step takes n_critic fresh minibatches of 64; 200,000 generator iterations (gan_cifar.py)
    assert gp_plan.data.batch_size == gp_plan.images_per_step == 5 * 64
    assert gp_plan.max_steps == 200_000
    # §4: no batch normalisation in the critic (the penalty is per example); G keeps it
    assert not [la for la in model.critic.layers if "Normalization" in type(la).__name__]
    assert sum(isinstance(la, keras.layers.BatchNormalization) for la in model.generator.layers) == 3


def test_recipe_weight_clipping_rmsprop_and_a_batch_normalised_critic(clip_plan):
    model = clip_plan.model
    # Arjovsky et al. Algorithm 1: alpha = 5e-5, c = 0.01, m = 64, n_critic = 5, RMSProp
    for name in ("critic", "generator"):
        opt = model.optimizer.players[name]
        assert type(opt).__name__ == "RMSprop" and _rate(opt, 0) == pytest.approx(5e-5)
        assert opt.rho == 0.99 and opt.momentum == 0.0  # PyTorch's RMSprop, the authors' code (README)
    weights = model.critic.trainable_weights[0]
    weights.assign(np.full(weights.shape, 0.5, np.float32))
    model.clip_critic()
    assert float(_np(ops.max(weights))) == pytest.approx(0.01)
    assert float(_np(model.critic_loss(np.zeros((4, 32, 32, 3), np.float32))[1][1])) == 0.0  # no penalty
    assert model.n_critic == 5 and clip_plan.data.batch_size == 5 * 64
    # the authors' code: the DCGAN critic keeps its batch normalisation
    assert sum(isinstance(la, keras.layers.BatchNormalization) for la in model.critic.layers) == 2


@pytest.mark.parametrize("plan_name", ["gp_plan", "clip_plan"])
def test_recipe_dcgan_architecture_and_normal_latent(request, plan_name):
    model = request.getfixturevalue(plan_name).model
    # the DCGAN generator and critic (Radford et al.): 5x5 stride-2 (de)convolutions, LeakyReLU 0.2,
    # N(0, 0.02) weights; z of 128 from N(0, I) (Gulrajani et al.'s code)
    g, critic = model.generator, model.critic
    assert g.input_shape == (None, 128) and g.output_shape == (None, 32, 32, 3)
    convs = [la for la in (*g.layers, *critic.layers)
             if isinstance(la, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (256, (5, 5), (2, 2)), (128, (5, 5), (2, 2)), (3, (5, 5), (2, 2)),
        (128, (5, 5), (2, 2)), (256, (5, 5), (2, 2)), (512, (5, 5), (2, 2))]
    assert [la.negative_slope for la in critic.layers if isinstance(la, keras.layers.LeakyReLU)] == [0.2] * 3
    assert critic.layers[-1].units == 1 and critic.layers[-1].activation.__name__ == "linear"
    for layer in (*g.layers, *critic.layers):
        if hasattr(layer, "kernel_initializer"):
            assert (layer.kernel_initializer.mean, layer.kernel_initializer.stddev) == (0.0, 0.02)
    z = _np(model.sample_z(20_000))
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, abs=0.01)
    assert np.quantile(z, 0.8413) == pytest.approx(1.0, abs=0.03)  # a normal's, not a uniform's, quantile


def test_recipe_resnet_script_decays_2e_4_to_zero_over_100k_steps(cifar_root, tmp_path_factory):
    plan = _paper_plan(cifar_root, tmp_path_factory, architecture="resnet")
    model = plan.model
    # gan_cifar_resnet.py: Adam(2e-4, 0, 0.9), both rates decayed linearly to 0 over 100,000 generator
    # iterations; generator minibatches of 128, critic minibatches of 64
    g_opt, c_opt = model.optimizer.players["generator"], model.optimizer.players["critic"]
    assert [_rate(g_opt, s) for s in (0, 50_000, 100_000)] == pytest.approx([2e-4, 1e-4, 0.0])
    assert [_rate(c_opt, s) for s in (0, 250_000, 500_000)] == pytest.approx([2e-4, 1e-4, 0.0])
    assert (c_opt.beta_1, c_opt.beta_2) == (0.0, 0.9)
    assert model.g_batch_size == 128 and model.batch_size == 64 and plan.max_steps == 100_000
    assert model.generator.count_params() == 1_206_275 and model.critic.count_params() == 1_053_825

import json
import math

import keras
import numpy as np
import pytest
from keras import ops

from common import report
from common.lifecycle.config import ConfigError, make_config, parse_args
from papers.vae import data, train
from papers.vae.config import PAPER_HIDDEN, PAPER_LATENT, PRESETS, VAEConfig
from papers.vae.model import (
    VAE,
    bernoulli_log_likelihood,
    bound_of_networks,
    gaussian_kl,
    gaussian_log_density,
    inference_networks,
    marginal_log_likelihood,
)
from tests.conftest import smoke_config, smoke_record, straight_and_resumed
from tests.recipe import planned_training

DATA_DIM = {"mnist": 784, "frey_face": 560}
LIKELIHOOD = {"mnist": "bernoulli", "frey_face": "gaussian"}
VARIANTS = [(d, z) for d in PAPER_LATENT for z in PAPER_LATENT[d]]


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _model(dataset, latent_dim, hidden=None, **kw):
    keras.utils.set_random_seed(0)
    model = VAE(DATA_DIM[dataset], latent_dim, hidden or PAPER_HIDDEN[dataset], LIKELIHOOD[dataset], seed=0, **kw)
    model.build((None, DATA_DIM[dataset]))
    return model


@pytest.mark.parametrize("dataset,latent_dim", VARIANTS)
def test_build_parameter_count_and_shapes(dataset, latent_dim):
    model = _model(dataset, latent_dim)
    d, h, z = DATA_DIM[dataset], PAPER_HIDDEN[dataset], latent_dim
    encoder = d * h + h + 2 * (h * z + z)
    decoder = z * h + h + (h * d + d) * (2 if dataset == "frey_face" else 1)
    assert model.count_params() == encoder + decoder
    x = np.random.default_rng(0).random((3, d)).astype(np.float32)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"elbo": (3,), "reconstruction": (3,), "kl": (3,)}
    assert np.allclose(_np(out["elbo"]), _np(out["reconstruction"] - out["kl"]), atol=1e-3)
    assert (_np(out["kl"]) >= 0).all()


@pytest.mark.parametrize("dataset", list(PAPER_LATENT))
def test_save_and_reload_give_identical_outputs(dataset, tmp_path):
    model = _model(dataset, 5)
    x = np.random.default_rng(0).random((4, DATA_DIM[dataset])).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    model.save_weights(tmp_path / "vae.weights.h5")
    again = _model(dataset, 5)
    again.load_weights(tmp_path / "vae.weights.h5")
    for a, b in zip(model.encode(x), again.encode(x), strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))
    np.testing.assert_array_equal(_np(model.mean_image(z)), _np(again.mean_image(z)))


@pytest.mark.jax
@pytest.mark.parametrize("dataset", list(PAPER_LATENT))
def test_inference_networks_compute_what_the_vae_does_and_load_with_plain_keras(dataset, tmp_path):
    """The encoder and decoder a run saves (and the repository publishes) are plain Keras models that give the
    trained VAE's q(z|x) and p(x|z), and their one-sample bound is the VAE's for the same noise."""
    model = _model(dataset, 3, hidden=16)
    for layer in model.layers:  # weights far from the initial 0.01 scale, so that a swapped layer shows
        layer.set_weights([w + np.random.default_rng(1).normal(0, 0.3, w.shape) for w in layer.get_weights()])
    encoder, decoder = inference_networks(model)
    encoder.save(tmp_path / "encoder.keras")
    decoder.save(tmp_path / "decoder.keras")
    encoder, decoder = (keras.saving.load_model(tmp_path / f"{n}.keras") for n in ("encoder", "decoder"))
    assert {type(layer).__module__.split(".")[0] for m in (encoder, decoder) for layer in m.layers} == {"keras"}
    x = (np.random.default_rng(0).random((5, DATA_DIM[dataset])) < 0.4).astype(np.float32)
    mean, logvar = encoder.predict(x, verbose=0)
    for got, want in zip((mean, logvar), model.encode(x), strict=True):
        np.testing.assert_allclose(got, _np(want), rtol=1e-5, atol=1e-6)
    z = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    got, want = decoder.predict(z, verbose=0), model.decode(z)
    for a, b in zip(*((got, want) if dataset == "frey_face" else ([got], [want])), strict=True):
        np.testing.assert_allclose(a, _np(b), rtol=1e-5, atol=1e-5)
    eps = np.random.default_rng(7).standard_normal(mean.shape, dtype=np.float32)
    m, lv = model.encode(x)
    bound = model.log_likelihood(x, model.decode(m + ops.exp(0.5 * lv) * eps)) - gaussian_kl(m, lv)
    np.testing.assert_allclose(bound_of_networks(encoder, decoder, x, seed=7), _np(bound), rtol=1e-4)


def _train_step_lowers_loss(dataset):
    keras.utils.set_random_seed(0)
    config = VAEConfig(dataset=dataset, hidden_units=32, latent_dim=2)
    model = train.compile_model(train.build_model(config, 1000, DATA_DIM[dataset], LIKELIHOOD[dataset]), config, 0.02)
    x = (np.random.default_rng(0).random((100, DATA_DIM[dataset])) < 0.3).astype(np.float32)
    first = model.evaluate(x, verbose=0, return_dict=True)["loss"]
    for _ in range(3):
        model.train_on_batch(x)
    second = model.evaluate(x, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(first) and second < first


@pytest.mark.jax
def test_train_step_lowers_loss_mnist():
    _train_step_lowers_loss("mnist")


def test_train_step_lowers_loss_frey_face():
    _train_step_lowers_loss("frey_face")


def test_analytic_kl_matches_a_monte_carlo_estimate():
    """Eq. 10's closed form against E_q[log q(z|x) - log p(z)] from 200,000 samples, within 4 standard errors."""
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(1, 4)), rng.normal(scale=0.7, size=(1, 4))
    z = mean + np.exp(0.5 * logvar) * rng.standard_normal((200_000, 4))
    log_q = (-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar))).sum(1)
    log_p = (-0.5 * (np.log(2 * np.pi) + z**2)).sum(1)
    samples = log_q - log_p
    analytic = float(_np(gaussian_kl(*(ops.convert_to_tensor(a, "float32") for a in (mean, logvar))))[0])
    assert abs(analytic - samples.mean()) < 4 * samples.std() / math.sqrt(len(samples))
    assert analytic > 0


def test_bernoulli_log_likelihood_by_hand():
    # p = sigmoid(logits) = 0.5, 0.75, 0.25; x = 1, 0, 1: log(0.5) + log(0.25) + log(0.25) = log(1/32)
    x = np.array([[1.0, 0.0, 1.0]], np.float32)
    logits = np.array([[0.0, math.log(3.0), -math.log(3.0)]], np.float32)
    assert float(_np(bernoulli_log_likelihood(x, logits))[0]) == pytest.approx(math.log(1 / 32), rel=1e-5)


def test_gaussian_log_density_matches_scipy():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    x, mean, logvar = rng.random((2, 5)), rng.random((2, 5)), rng.normal(size=(2, 5))
    expected = norm.logpdf(x, mean, np.exp(0.5 * logvar)).sum(axis=1)
    got = _np(gaussian_log_density(*(ops.convert_to_tensor(a, "float32") for a in (x, mean, logvar))))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


class _ReconstructionOnly(VAE):
    """The loss without the KL term: the encoder can then only learn through the sampled z."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return -ops.mean(y_pred["reconstruction"])


def test_gradient_flows_through_the_reparameterised_sample():
    keras.utils.set_random_seed(0)
    model = _ReconstructionOnly(20, 2, 8, seed=0, name="reconstruction_only")
    model.build((None, 20))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = {la: [_np(w).copy() for w in getattr(model, la).weights] for la in ("encoder_mean", "encoder_logvar")}
    model.train_on_batch((np.random.default_rng(0).random((16, 20)) < 0.5).astype(np.float32))
    for layer, weights in before.items():
        after = [_np(w) for w in getattr(model, layer).weights]
        assert all(not np.array_equal(a, b) for a, b in zip(weights, after, strict=True)), f"{layer} got no gradient"


@pytest.fixture(scope="module")
def poor_posterior_model():
    """An untrained VAE with large initial weights: its decoder is sharply structured while its encoder
    is arbitrary, so q(z|x) is a poor proposal and the gap between the bound and log p(x) is large."""
    keras.utils.set_random_seed(0)
    model = VAE(30, 2, 16, init_std=0.5, seed=0)
    model.build((None, 30))
    model.compile()
    return model, (np.random.default_rng(0).random((100, 30)) < 0.5).astype(np.float32)


def test_importance_sampled_log_likelihood_is_above_the_bound_and_rises_with_k(poor_posterior_model):
    model, x = poor_posterior_model
    elbo = float(np.mean([model.evaluate(x, verbose=0, return_dict=True)["elbo"] for _ in range(10)]))
    estimates = {k: marginal_log_likelihood(model, x, k, chunk=250, seed=0, progress=False).mean()
                 for k in (1, 10, 100, 1000)}
    assert estimates[1] == pytest.approx(elbo, abs=1.0)  # k = 1 is the bound, with a one-sample KL term
    assert estimates[1] < estimates[10] < estimates[100] < estimates[1000]
    assert estimates[1000] > elbo + 5


def test_importance_sampling_does_not_depend_on_the_chunking(poor_posterior_model):
    model, x = poor_posterior_model
    a = marginal_log_likelihood(model, x[:10], 300, chunk=300, seed=3, progress=False)
    b = marginal_log_likelihood(model, x[:10], 300, chunk=300, points_per_call=3, seed=3, progress=False)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_binarisation_samples_grey_values_and_the_test_set_is_fixed(mnist_root):
    x = np.full((2000, 10), 64, np.uint8)
    sample = data.binarize(x, np.random.default_rng(0))
    assert set(np.unique(sample)) == {0.0, 1.0} and sample.mean() == pytest.approx(64 / 255, abs=0.01)
    config = make_config(VAEConfig, PRESETS, "smoke", data_dir=str(mnist_root), verify_data=False, download=False)
    a, b = data.prepare_data(config), data.prepare_data(config)
    np.testing.assert_array_equal(a["test"], b["test"])
    assert a["train"].dtype == np.uint8 and a["binarization"] == "dynamic"
    batch = a["transform"](a["train"][:20], np.random.default_rng(0))
    assert set(np.unique(batch)) <= {0.0, 1.0}
    grey = data.prepare_data(make_config(VAEConfig, PRESETS, "smoke", data_dir=str(mnist_root), verify_data=False,
                                          download=False, binarization="none"))
    assert grey["test"].max() <= 1.0 and len(np.unique(grey["test"])) > 2


def test_config_variants_labels_and_errors():
    assert parse_args(VAEConfig, PRESETS, ["--dataset=frey_face", "--latent_dim=5", "--seed=2"])[0] == "paper"
    label, config = parse_args(VAEConfig, PRESETS, ["--preset=quick", "--hidden_units=100"])
    assert label == "quick-custom" and config.variant == "mnist-z20"
    assert config.max_samples == 2_000_000 and config.hidden_units == 100
    paper = VAEConfig(dataset="frey_face")
    assert (paper.hidden_units, paper.max_samples, paper.passes_per_epoch) == (200, 10**7, 10)
    assert paper.chosen_automatically == ("hidden_units", "max_samples", "passes_per_epoch")
    with pytest.raises(ConfigError, match="mnist, frey_face"):
        make_config(VAEConfig, PRESETS, dataset="cifar")
    with pytest.raises(ConfigError, match="dynamic, fixed"):
        make_config(VAEConfig, PRESETS, binarization="sometimes")


def _smoke(root, tmp_path, name, **kw):
    return smoke_config(VAEConfig, PRESETS, root, tmp_path / name, **kw)


@pytest.mark.jax
def test_smoke_run_writes_results_figures_and_report(mnist_root, tmp_path):
    config = _smoke(mnist_root, tmp_path, "mnist")
    record = smoke_record(train, config)
    final = record["final"]
    assert record["status"] == "completed" and record["variant"] == "mnist-z20"
    assert final["samples_seen"] == 400 and len(record["history"]) == 2
    assert [h["samples_seen"] for h in record["history"]] == [200, 400]
    assert record["history"][-1]["samples_seen"] == 400 and "train_elbo" in record["history"][-1]
    assert final["ll_k"] == 20 and final["ll_test_points"] == 100 and final["test_ll"] < 0
    assert final["learning_rate"] in (0.01, 0.02, 0.1) and set(record["lr_search"]["bounds"]) == {"0.01", "0.02", "0.1"}
    for name in ("encoder", "decoder"):  # the trained networks, as plain Keras files
        assert keras.saving.load_model(final[f"{name}_file"]).name == name
    folder = tmp_path / "mnist" / "results" / "vae"
    assert set(record["figures"]) == {"samples", "reconstructions"}
    assert all((folder / rel).exists() for rel in record["figures"].values())
    text = report.report_for(config.results_dir, "vae")
    assert "| mnist-z20 | smoke (not the paper's recipe) |" in text and "-86.76" in text
    assert "figures/mnist_smoke.png" in text and "_samples.png" in text


def test_a_finished_runs_encoder_and_decoder_are_published_with_cards_whose_check_the_files_repeat(
        mnist_root, tmp_path, monkeypatch, capsys):
    from common import networks
    from papers.vae import publish

    config = _smoke(mnist_root, tmp_path, "publish")
    record = smoke_record(train, config)
    (path,) = (tmp_path / "publish" / "results" / "vae").glob("*.json")
    results = tmp_path / "published"
    monkeypatch.setattr(networks.publish, "__defaults__", (results,))  # never the repository's
    assert publish.main([str(path)]) == 0
    encoder, decoder = (json.loads((results / "vae" / "networks" / f"mnist-z20-smoke-seed0-{n}.json").read_text())
                        for n in ("encoder", "decoder"))
    assert encoder["check"] == decoder["check"] and encoder["check"]["kind"] == "vae_bound"
    assert encoder["metric"]["value"] == record["final"]["test_ll"] and decoder["input"]["shape"] == [20]
    assert decoder["produce"].startswith("python papers/vae/train.py --dataset=mnist --latent_dim=20 --seed=0 "
                                         "--preset=smoke")
    pair = [networks.load(encoder["check"][n], results) for n in ("encoder", "decoder")]
    bound = encoder["check"]["bound"]
    assert publish.check_bound(*pair, str(mnist_root), verify=False) == pytest.approx(bound, abs=1e-3)
    # The check is the networks' own: the first 1,000 test images (here all 100) under another decoder differ.
    other = keras.models.clone_model(pair[1])
    assert publish.check_bound(pair[0], other, str(mnist_root), verify=False) != pytest.approx(bound, abs=1)
    capsys.readouterr()
    assert publish.main([str(path)]) == 2  # published once; a second publication is refused in one line
    (line,) = capsys.readouterr().err.splitlines()
    assert "already published" in line
    assert publish.main([str(tmp_path / "typo.json")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "not a readable results JSON" in line


def test_frey_face_smoke_run_with_two_latents_draws_the_manifold(frey_root, tmp_path):
    config = _smoke(frey_root, tmp_path, "frey", dataset="frey_face", latent_dim=2, learning_rate=0.02,
                    max_samples=300)
    record = smoke_record(train, config)
    assert record["variant"] == "frey_face-z2" and record["lr_search"] is None
    assert record["data"]["train"] == 200 and record["data"]["binarization"] == "none"
    assert "manifold" in record["figures"] and math.isfinite(record["final"]["test_ll"])
    assert [h["samples_seen"] for h in record["history"]] == [200, 300]  # the cut-short last epoch counts 5 steps


def test_step_size_choice_is_kept_for_a_resumed_run(mnist_root, tmp_path):
    config = _smoke(mnist_root, tmp_path, "lr")
    run_path = tmp_path / "lr" / "runs" / "vae" / "kept"
    run_path.mkdir(parents=True)
    (run_path / "lr_search.json").write_text(json.dumps({"chosen": 0.1, "bounds": {}, "samples": 0}))
    assert train.choose_learning_rate(config, data.prepare_data(config), run_path / "lr_search.json")[0] == 0.1



def test_interrupted_run_resumes_to_the_same_result(mnist_root, tmp_path):
    a, b = straight_and_resumed(train, lambda name: _smoke(mnist_root, tmp_path, name), "vae")
    assert len(b["sessions"]) == 2 and [h["epoch"] for h in b["history"]] == [1, 2]
    assert b["final"]["learning_rate"] == a["final"]["learning_rate"]
    for key in ("elbo", "val_elbo", "train_elbo"):
        assert a["history"][-1][key] == pytest.approx(b["history"][-1][key], rel=1e-5), key


class _KilledAfterTraining(keras.callbacks.Callback):
    """A kill after the last epoch's checkpoint, during the evaluation (log p(x))."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt


def test_a_run_resumed_after_its_last_epoch_evaluates_as_an_uninterrupted_one(mnist_root, tmp_path):
    a, b = straight_and_resumed(train, lambda name: _smoke(mnist_root, tmp_path, name), "vae", _KilledAfterTraining())
    for key in ("test_elbo", "train_elbo", "test_ll"):
        assert a["final"][key] == pytest.approx(b["final"][key], rel=1e-6), key
    assert b["final"]["train_samples_per_s"] is not None  # the throughput of the epochs run in the first session


# The paper's recipe, read from what train.py builds with the paper preset (Kingma & Welling 2013, §5,
# Appendix C). The step-size search is kept but its training is replaced by a stub whose "bound" is
# the candidate's step size, so the largest candidate wins.

def _plan(monkeypatch, tmp_path, **overrides):
    searched = []

    def fit(self, data, epochs=1, steps_per_epoch=None, **kwargs):
        searched.append((float(self.optimizer.learning_rate), steps_per_epoch, data.batch_size))

    def evaluate(self, x, **kwargs):
        return {"elbo": float(self.optimizer.learning_rate)}

    monkeypatch.setattr(VAE, "fit", fit)
    monkeypatch.setattr(VAE, "evaluate", evaluate)
    plan = planned_training(monkeypatch, train, VAEConfig, PRESETS, tmp_path, **overrides)
    plan.searched = searched
    return plan


@pytest.fixture(scope="module")
def mnist_plan(mnist_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return _plan(mp, tmp_path_factory.mktemp("vae_recipe"), data_dir=str(mnist_root))


@pytest.fixture(scope="module")
def frey_plan(frey_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return _plan(mp, tmp_path_factory.mktemp("vae_recipe_frey"), data_dir=str(frey_root), dataset="frey_face",
                     latent_dim=2)


def _dense_layers(model):
    return [model.encoder_hidden, model.encoder_mean, model.encoder_logvar, model.decoder_hidden, model.decoder_out,
            *([model.decoder_logvar] if model.decoder_logvar is not None else [])]


@pytest.mark.parametrize(("plan_name", "hidden", "latent", "data_dim"),
                         [("mnist_plan", 500, 20, 784), ("frey_plan", 200, 2, 560)])
def test_recipe_encoder_and_decoder_are_one_tanh_layer_mlps(request, plan_name, hidden, latent, data_dim):
    model = request.getfixturevalue(plan_name).model
    # §5: one hidden layer of 500 units (MNIST) or 200 (Frey Face) in encoder and decoder; App. C: tanh
    units = [(la.units, la.activation.__name__) for la in _dense_layers(model)]
    expected = [(hidden, "tanh"), (latent, "linear"), (latent, "linear"), (hidden, "tanh"), (data_dim, "linear")]
    assert units == expected + ([(data_dim, "linear")] if data_dim == 560 else [])
    encoder = data_dim * hidden + hidden + 2 * (hidden * latent + latent)
    decoder = latent * hidden + hidden + (2 if data_dim == 560 else 1) * (hidden * data_dim + data_dim)
    assert model.count_params() == encoder + decoder


@pytest.mark.parametrize(("plan_name", "n_train"), [("mnist_plan", 60_000), ("frey_plan", 1600)])
def test_recipe_initialisation_and_the_weight_prior(request, plan_name, n_train):
    model = request.getfixturevalue(plan_name).model
    for layer in _dense_layers(model):  # §5: parameters initialised from N(0, 0.01), as a standard deviation
        for init in (layer.kernel_initializer, layer.bias_initializer):
            assert (type(init).__name__, init.mean, init.stddev) == ("RandomNormal", 0.0, 0.01)
    # §5: weight decay from the prior p(theta) = N(0, I); on the per-datapoint loss it is sum(theta^2) / 2N
    squares = sum(float(np.sum(_np(w) ** 2)) for w in model.trainable_weights)
    assert float(_np(ops.sum(ops.stack(model.losses)))) == pytest.approx(squares / (2 * n_train), rel=1e-5)


def test_recipe_adagrad_step_size_chosen_from_the_papers_three_on_the_training_bound(mnist_plan):
    # §5: Adagrad, its global step size chosen from {0.01, 0.02, 0.1} by the training-set bound after the
    # first iterations (here 50,000 samples: 500 minibatches of 100)
    assert [lr for lr, _, _ in mnist_plan.searched] == pytest.approx([0.01, 0.02, 0.1])
    assert {(steps, batch) for _, steps, batch in mnist_plan.searched} == {(500, 100)}
    opt = mnist_plan.model.optimizer
    assert type(opt).__name__ == "Adagrad" and float(opt.learning_rate) == pytest.approx(0.1)
    assert opt.initial_accumulator_value == 0.0  # Duchi et al. 2011 (README, Deviations)


@pytest.mark.parametrize(("plan_name", "samples", "steps_per_epoch"),
                         [("mnist_plan", 10**8, 600), ("frey_plan", 10**7, 160)])
def test_recipe_minibatches_of_100_up_to_figure_2s_sample_counts(request, plan_name, samples, steps_per_epoch):
    plan = request.getfixturevalue(plan_name)
    # §5: M = 100; Fig. 2's horizontal axis ends at 10^8 (MNIST) and 10^7 (Frey Face) training samples
    assert plan.data.batch_size == plan.images_per_step == 100
    assert plan.max_steps * 100 == samples and len(plan.data) == steps_per_epoch
    assert plan.epochs == math.ceil(plan.max_steps / steps_per_epoch)


def test_recipe_likelihoods_bernoulli_for_mnist_gaussian_with_sigmoid_mean_for_frey(mnist_plan, frey_plan):
    x = np.zeros((1, 784), np.float32)
    mnist = mnist_plan.model
    mnist.decoder_out.bias.assign(np.full(784, np.log(3.0), np.float32))  # p = 0.75 wherever the kernel gives 0
    mnist.decoder_out.kernel.assign(np.zeros_like(_np(mnist.decoder_out.kernel)))
    assert float(_np(mnist.log_likelihood(x, mnist.decode(np.zeros((1, 20), np.float32))))[0]) == pytest.approx(
        784 * np.log(0.25), rel=1e-5)  # App. C.1
    frey = frey_plan.model
    for layer, value in ((frey.decoder_out, 2.0), (frey.decoder_logvar, 0.0)):
        layer.kernel.assign(np.zeros_like(_np(layer.kernel)))
        layer.bias.assign(np.full(560, value, np.float32))
    mean, logvar = frey.decode(np.zeros((1, 2), np.float32))  # App. C.2, mean squashed by a sigmoid into (0, 1)
    np.testing.assert_allclose(_np(mean), np.full((1, 560), 1 / (1 + np.exp(-2.0))), rtol=1e-6)
    assert _np(logvar).max() == 0.0


def test_recipe_frey_face_split_is_the_authors_1600_and_365(frey_plan):
    assert frey_plan.run.data["train"] == 1600 and frey_plan.run.data["test"] == 365

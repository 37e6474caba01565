from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from common import gan, report
from common.lifecycle import results
from common.lifecycle.config import ConfigError, make_config, parse_args
from common.lifecycle.repro import seed_everything
from papers.dcgan import features, train
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.data import prepare_data
from papers.dcgan.evaluate import initial_discriminator
from papers.dcgan.model import (
    DCGAN,
    build_discriminator,
    build_generator,
    build_model,
    feature_layers,
    sigmoid_cross_entropy,
)
from tests.conftest import smoke_config, smoke_record, toy_classifier
from tests.recipe import recipe_plan

SHAPES = {"cifar10": (32, 32, 3), "mnist": (32, 32, 1)}


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("dataset", list(SHAPES))
def test_architecture_follows_the_guidelines(dataset):
    shape = SHAPES[dataset]
    g, d = build_generator(shape, 100, 128), build_discriminator(shape, 128)
    z = np.random.default_rng(0).uniform(-1, 1, (2, 100)).astype(np.float32)
    x = _np(g(z))
    assert x.shape == (2, *shape) and np.abs(x).max() <= 1.0  # tanh output
    assert _np(d(x)).shape == (2, 1)
    # No pooling, no fully connected hidden layer; strided convolutions; BN except G's output and D's input.
    kinds = {type(la).__name__ for la in (*g.layers, *d.layers)}
    assert not any("Pool" in k for k in kinds)
    assert [type(la).__name__ for la in d.layers].count("Dense") == 1
    assert all(la.strides == (2, 2) for la in (*g.layers, *d.layers) if isinstance(la, keras.layers.Conv2D))
    assert [la.name for la in d.layers][1] == "conv1" and type(d.layers[2]).__name__ == "LeakyReLU"
    assert type(g.layers[-2]).__name__ == "ReLU" and g.layers[-1].activation.__name__ == "tanh"
    assert feature_layers(d) == ["conv1", "conv2", "conv3"]
    # Project-and-reshape: 100 x 4*4*512; deconvolutions 5x5: 512->256, 256->128, 128->C (+C biases); 2 x 4 BN params.
    c = shape[2]
    expected_g = 100 * 8192 + 25 * 512 * 256 + 25 * 256 * 128 + 25 * 128 * c + c + 4 * (512 + 256 + 128)
    assert g.count_params() == expected_g


def test_sigmoid_cross_entropy_by_hand():
    logits = np.array([0.0, np.log(3.0)], np.float32)  # sigmoid: 0.5, 0.75
    np.testing.assert_allclose(_np(sigmoid_cross_entropy(logits, 1.0)), [np.log(2), -np.log(0.75)], rtol=1e-6)
    np.testing.assert_allclose(_np(sigmoid_cross_entropy(logits, 0.0)), [np.log(2), -np.log(0.25)], rtol=1e-6)


def _small_gan(weight_decay=0.0):
    keras.utils.set_random_seed(0)
    model = DCGAN(build_generator((32, 32, 1), 8, 4), build_discriminator((32, 32, 1), 4), 8, weight_decay, seed=0)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


@pytest.mark.jax
def test_one_step_updates_both_players_and_lowers_the_discriminator_loss():
    model = _small_gan()
    real = np.ones((16, 32, 32, 1), np.float32) * 0.8
    g_before = [_np(w).copy() for w in model.generator.trainable_weights]
    d_before = [_np(w).copy() for w in model.discriminator.trainable_weights]
    logs = [model.train_on_batch(real, return_dict=True) for _ in range(5)]
    assert logs[-1]["d_loss"] < logs[0]["d_loss"]  # the running mean falls: D learns to tell 0.8s from noise
    assert all(not np.array_equal(a, _np(b)) for a, b in zip(g_before, model.generator.trainable_weights, strict=True))
    assert all(not np.array_equal(a, _np(b)) for a, b in zip(d_before, model.discriminator.trainable_weights,
                                                            strict=True))
    assert int(_np(model.optimizer.iterations)) == 5
    assert int(_np(model.optimizer.players["discriminator"].iterations)) == 5


def test_latent_vectors_are_uniform_in_the_cube():
    z = _np(_small_gan().sample_z(4000))
    assert z.shape == (4000, 8) and z.min() >= -1 and z.max() <= 1
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1 / np.sqrt(3)) < 0.02


def test_interpolation_and_nearest_neighbours():
    z0, z1 = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    path = gan.interpolate(z0, z1, 5)
    assert path.shape == (10, 3) and np.allclose(path[:5, 0], [0, 0.25, 0.5, 0.75, 1])
    reference = np.eye(4, dtype=np.float32)
    samples = np.array([[0.9, 0, 0, 0], [0, 0, 0, 2]], np.float32)
    np.testing.assert_allclose(gan.nearest_neighbour_distance(samples, reference, chunk=1), [0.1, 1.0], atol=1e-6)
    assert gan.nearest_neighbour_index(samples, reference).tolist() == [0, 3]


def test_config_labels_and_errors():
    assert parse_args(DCGANConfig, PRESETS, ["--dataset=mnist", "--seed=3"])[0] == "paper"
    assert parse_args(DCGANConfig, PRESETS, ["--epochs=5"])[0] == "paper-custom"
    with pytest.raises(ConfigError, match="cifar10, mnist"):
        make_config(DCGANConfig, PRESETS, dataset="svhn")


@pytest.mark.jax
def test_smoke_run_writes_results_figures_and_report(cifar_root, tmp_path):
    config = smoke_config(DCGANConfig, PRESETS, cifar_root, tmp_path)
    record = smoke_record(train, config)
    final = record["final"]
    assert record["status"] == "completed" and record["variant"] == "dcgan-cifar10"
    assert final["iterations"] == 8 and [h["epoch"] for h in record["history"]] == [1, 2]
    assert final["nn_samples"] == 64 and final["nn_distance"] > 0
    assert final["nn_distinct_fraction"] * 64 == pytest.approx(round(final["nn_distinct_fraction"] * 64))  # of 64
    folder = tmp_path / "results" / "dcgan"
    assert all((folder / rel).exists() for rel in record["figures"].values())
    run_dirs = list((tmp_path / "runs" / "dcgan").iterdir())
    assert sorted(p.name for p in (run_dirs[0] / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert "| dcgan-cifar10 | smoke (not the paper's recipe) |" in report.report_for(config.results_dir, "dcgan")
    for key in ("svm_test_accuracy", "svm_test_accuracy_untrained_d"):  # a share of the 10,000 test images
        assert final[key] * 10_000 == pytest.approx(round(final[key] * 10_000), abs=1e-6)
    assert keras.saving.load_model(final["discriminator_file"]).count_params() > 0
    svm = record["svm"]["trained"]
    assert svm["features"] == 16 * (8 + 16 + 32) and svm["train"] == 300 and svm["validation"] == 100
    assert svm["alpha"] in (1e-3, 1e-2) and set(svm["val_accuracy_by_alpha"]) == {"0.001", "0.01"}

    # The saved D lets the SVM be re-run with other settings; the old record leaves the averages.
    from papers.dcgan import reevaluate

    original = Path(record["_path"])
    with pytest.raises(ConfigError, match="already evaluated"):
        reevaluate.reevaluate(original, [])
    with pytest.raises(ConfigError, match="only these fields"):
        reevaluate.reevaluate(original, ["--epochs=3"])
    revised_path = reevaluate.reevaluate(original, ["--svm_alphas=1e-4,1e-3"])
    (revised,) = results.load_all(config.results_dir, "dcgan")
    assert revised["_path"] == str(revised_path)
    assert revised_path.name == original.name.replace("_smoke_", "_smoke-custom_")  # named by training end
    assert revised["preset"] == "smoke-custom" and revised["recipe_changes"] == {"svm_alphas": [1e-4, 1e-3]}
    assert set(revised["svm"]["trained"]["val_accuracy_by_alpha"]) == {"0.0001", "0.001"}
    assert revised["history"] == record["history"] and revised["git"] == record["git"]
    assert revised["revision"]["of"] == original.name
    assert revised["revision"]["config_changes"] == {"svm_alphas": [[1e-3, 1e-2], [1e-4, 1e-3]]}
    assert revised["final"]["svm_test_accuracy"] == revised["svm"]["trained"]["accuracy"]
    assert original.name in results.load_superseded(config.results_dir, "dcgan")
    text = report.report_for(config.results_dir, "dcgan")
    assert "## Superseded runs" in text and f"`{original.name}`" in text and "re-evaluated at" in text

    # A score network added later scores the saved G's samples; the SVM, already current, is not re-run
    # (the SVM settings come from the preset, then the command line: this run's were custom).
    toy_classifier(tmp_path / "clf.keras", (32, 32, 3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reevaluate.reevaluate(revised_path, [f"--feature_network={tmp_path / 'no.keras'}", "--feature_network_name=x"])
    argv = [f"--feature_network={tmp_path / 'clf.keras'}", "--feature_network_name=toy classifier",
            "--score_samples=40", "--svm_alphas=1e-4,1e-3"]
    scored_path = reevaluate.reevaluate(revised_path, argv)
    (scored,) = results.load_all(config.results_dir, "dcgan")
    assert scored["_path"] == str(scored_path) and scored["revision"]["of"] == revised_path.name
    assert scored["svm"] == revised["svm"]
    assert scored["final"]["svm_test_accuracy"] == revised["final"]["svm_test_accuracy"]
    assert scored["final"]["score_network"] == "toy classifier" and 1.0 <= scored["final"]["sample_score"] <= 10
    assert scored["scores"]["samples"] == 40 and scored["preset"] == "smoke-custom"
    assert "sample scores added" in scored["revision"]["reason"]


def test_mnist_is_padded_to_32(mnist_root):
    config = make_config(DCGANConfig, PRESETS, "smoke", dataset="mnist", data_dir=str(mnist_root), verify_data=False,
                         download=False)
    data = prepare_data(config)
    assert data["train"].shape == (128, 32, 32, 1) and data["test"].shape == (10000, 32, 32, 1)
    assert data["train"].min() >= -1 and data["train"].max() <= 1 and (data["train"][:, :2] == -1).all()


@pytest.mark.parametrize(("ndf", "size"), [(4, 448), (64, 7168)])
def test_feature_extractor_has_the_documented_size(ndf, size):
    """All three D blocks max-pooled to 4x4 and concatenated: 16 * (ndf + 2 ndf + 4 ndf) features."""
    extractor = features.feature_extractor(build_discriminator((32, 32, 3), ndf))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    f = features.features(extractor, x, batch_size=2)
    assert f.shape == (3, size) and f.dtype == np.float32
    # The deepest block is already 4x4: its features are D's last LeakyReLU output, unpooled.
    leaky = [la for la in extractor.layers if isinstance(la, keras.layers.LeakyReLU)][-1]
    last = _np(keras.Model(extractor.input, leaky.output)(x, training=False)).reshape(3, -1)
    np.testing.assert_allclose(f[:, -16 * 4 * ndf:], last, rtol=1e-5, atol=1e-6)


def test_svm_separates_separable_classes_and_reports_its_choice():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 20))
    y = np.repeat(np.arange(10), 60)
    x = (centres[y] + rng.normal(0, 1, (len(y), 20))).astype(np.float32)
    out = features.svm_accuracy(x[::2], y[::2], x[1::2], y[1::2], alphas=(1e-3, 1e-1), epochs=10, val_size=50,
                                log=lambda *_: None)
    assert out["accuracy"] > 0.95 and out["alpha"] in (1e-3, 1e-1)
    assert (out["train"], out["validation"], out["test"], out["features"]) == (300, 50, 300, 20)


def test_untrained_baseline_is_the_runs_initial_discriminator():
    config = make_config(DCGANConfig, PRESETS, "smoke")
    seed_everything(config.seed)
    model = build_model(config, (32, 32, 3))
    initial = initial_discriminator(config, (32, 32, 3))
    for a, b in zip(model.discriminator.weights, initial.weights, strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_step_cost_benchmark_writes_a_record_and_a_report_section(tmp_path, capsys):
    from papers.dcgan import benchmark

    config = make_config(benchmark.GANBenchmarkConfig, PRESETS, "smoke", steps=1, warmup_steps=1, repeats=1,
                         results_dir=str(tmp_path / "results"))
    assert benchmark.run(config) == 0
    # Its line is its record's summary, column by column.
    assert "dcgan-cifar10: batch 32, ngf/ndf 8/8, GAN step (ms) " in capsys.readouterr().out
    # Zero timed steps is one line, not a division by zero (the timing fields' bounds: timing_fields).
    assert benchmark.run.main(["--steps=0"]) == 2
    assert capsys.readouterr().err.startswith("error: --steps=0 is out of range")
    (record,) = results.load_all(config.results_dir, "dcgan")
    final = record["final"]
    assert record["kind"] == "benchmark" and final["gan_step_ms"] > 0 and final["plain_d_ms"] > 0
    assert final["overhead"] == pytest.approx(final["gan_step_ms"] / (final["plain_d_ms"]
                                              + final["plain_g_through_d_ms"]) - 1)
    text = report.report_for(config.results_dir, "dcgan")
    assert "## Step cost" in text and "| dcgan-cifar10 | CPU" in text


# The paper's recipe, read from what train.py builds with the paper preset (Radford et al. 2015, §3-§4;
# the authors' code, Newmu/dcgan_code, where the paper is silent).

@pytest.fixture(scope="module")
def paper_plan(cifar_root, tmp_path_factory):
    return recipe_plan(tmp_path_factory, train, DCGANConfig, PRESETS, cifar_root)


def _layers(model, kind):
    return [la for la in model.layers if type(la).__name__ == kind]


def test_recipe_generator_layer_by_layer(paper_plan):
    g = paper_plan.model.generator
    # Fig. 1: z (100) -> project and reshape to 4x4x512 -> 5x5 stride-2 "deconvolutions" to 8x8x256,
    # 16x16x128, 32x32x3; BN and ReLU after every layer but the output, which is tanh (§3).
    assert [type(la).__name__ for la in g.layers] == [
        "InputLayer", "Dense", "Reshape", "BatchNormalization", "ReLU",
        "Conv2DTranspose", "BatchNormalization", "ReLU", "Conv2DTranspose", "BatchNormalization", "ReLU",
        "Conv2DTranspose"]
    assert g.input_shape == (None, 100) and g.output_shape == (None, 32, 32, 3)
    assert g.layers[1].units == 4 * 4 * 512 and not g.layers[1].use_bias
    deconvs = _layers(g, "Conv2DTranspose")
    assert [(c.filters, c.kernel_size, c.strides, c.padding, c.use_bias) for c in deconvs] == [
        (256, (5, 5), (2, 2), "same", False), (128, (5, 5), (2, 2), "same", False), (3, (5, 5), (2, 2), "same", True)]
    assert deconvs[-1].activation.__name__ == "tanh"
    assert all(la.activation.__name__ == "linear" for la in deconvs[:-1])
    # parameters: 100 x 8192; 5x5 kernels 512->256, 256->128, 128->3 (+3 biases); BN gain and shift
    assert g.count_params() == 100 * 8192 + 25 * (512 * 256 + 256 * 128 + 128 * 3) + 3 + 2 * 2 * (512 + 256 + 128)


def test_recipe_discriminator_layer_by_layer(paper_plan):
    d = paper_plan.model.discriminator
    # §3: strided convolutions, no BN on D's input layer, LeakyReLU with slope 0.2 (§4) in every layer,
    # the last convolution flattened into one output.
    assert [type(la).__name__ for la in d.layers] == [
        "InputLayer", "Conv2D", "LeakyReLU", "Conv2D", "BatchNormalization", "LeakyReLU",
        "Conv2D", "BatchNormalization", "LeakyReLU", "Flatten", "Dense"]
    convs = _layers(d, "Conv2D")
    assert [(c.filters, c.kernel_size, c.strides, c.padding, c.use_bias) for c in convs] == [
        (128, (5, 5), (2, 2), "same", True), (256, (5, 5), (2, 2), "same", False), (512, (5, 5), (2, 2), "same", False)]
    assert [la.negative_slope for la in _layers(d, "LeakyReLU")] == [0.2, 0.2, 0.2]
    assert d.layers[-1].units == 1 and d.layers[-1].activation.__name__ == "linear"  # the sigmoid is in the loss
    assert d.count_params() == (25 * 3 * 128 + 128 + 25 * (128 * 256 + 256 * 512) + 4 * (256 + 512)
                                + 4 * 4 * 512 + 1)


def test_recipe_initialisation_is_normal_with_std_0_02(paper_plan):
    model = paper_plan.model
    for layer in (*model.generator.layers, *model.discriminator.layers):
        if hasattr(layer, "kernel_initializer"):  # §4: zero-centred normal, standard deviation 0.02
            init = layer.kernel_initializer
            assert (type(init).__name__, init.mean, init.stddev) == ("RandomNormal", 0.0, 0.02), layer.name
        if isinstance(layer, keras.layers.BatchNormalization):  # the authors' code: BN gain from N(1, 0.02)
            init = layer.gamma_initializer
            assert (type(init).__name__, init.mean, init.stddev) == ("RandomNormal", 1.0, 0.02), layer.name
            assert type(layer.beta_initializer).__name__ == "Zeros"


def test_recipe_optimisers_weight_decay_and_noise(paper_plan):
    model = paper_plan.model
    for name in ("discriminator", "generator"):  # §4: Adam, learning rate 0.0002, beta_1 0.5
        opt = model.optimizer.players[name]
        assert type(opt).__name__ == "Adam"
        assert float(opt.learning_rate) == pytest.approx(2e-4, rel=1e-6) and opt.beta_1 == 0.5
    # The authors' code decays every weight by 1e-5: the gradient of the loss term is 1e-5 * w.
    # The loss term is 1e-5 / 2 * sum(w^2): here 0.5e-5 * (1 + 4 + 9).
    w = np.array([1.0, -2.0, 3.0], np.float32)
    assert float(_np(model._decay([w]))) == pytest.approx(0.5e-5 * 14, rel=1e-6)
    # §4: z is 100-dimensional, uniform in [-1, 1]
    z = _np(model.sample_z(20000))
    assert z.shape == (20000, 100) and z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.01
    assert np.quantile(z, 0.25) == pytest.approx(-0.5, abs=0.01)


def test_recipe_batches_epochs_and_scaling(paper_plan, cifar_root):
    # §4: minibatches of 128; images scaled to tanh's [-1, 1] and nothing else; 25 epochs (the authors' code)
    data = paper_plan.data
    assert data.batch_size == 128 and paper_plan.images_per_step == 128 and paper_plan.epochs == 25
    assert len(data) == 50_000 // 128  # the last partial batch is dropped (README, Deviations 10)
    from common.data import cifar10

    raw = cifar10.load(str(cifar_root), download=False, verify=False).train.x
    np.testing.assert_allclose(data.x, raw.astype(np.float32) / 127.5 - 1)

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from common import gan, report, results
from common.config import ConfigError, make_config, parse_args
from common.repro import seed_everything
from papers.dcgan import features, train
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.model import (
    DCGAN,
    build_discriminator,
    build_generator,
    build_model,
    feature_layers,
    sigmoid_cross_entropy,
)

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
    config = make_config(DCGANConfig, PRESETS, "smoke", data_dir=str(cifar_root), verify_data=False, download=False,
                         results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"))
    assert train.run(config, "smoke") == 0
    (record,) = results.load_all(config.results_dir, "dcgan")
    final = record["final"]
    assert record["status"] == "completed" and record["variant"] == "dcgan-cifar10"
    assert final["iterations"] == 8 and [h["epoch"] for h in record["history"]] == [1, 2]
    assert final["nn_samples"] == 64 and final["nn_distance"] > 0 and 0 < final["nn_distinct_fraction"] <= 1
    folder = tmp_path / "results" / "dcgan"
    assert all((folder / rel).exists() for rel in record["figures"].values())
    run_dirs = list((tmp_path / "runs" / "dcgan").iterdir())
    assert sorted(p.name for p in (run_dirs[0] / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert "| dcgan-cifar10 | smoke (not the paper's recipe) |" in report.report_for(config.results_dir, "dcgan")
    assert 0 <= final["svm_test_accuracy"] <= 1 and 0 <= final["svm_test_accuracy_untrained_d"] <= 1
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
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden)).save(tmp_path / "clf.keras")
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
    data = train.prepare_data(config)
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
    initial = train.initial_discriminator(config, (32, 32, 3))
    for a, b in zip(model.discriminator.weights, initial.weights, strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_step_cost_benchmark_writes_a_record_and_a_report_section(tmp_path):
    from papers.dcgan import benchmark

    config = make_config(benchmark.GANBenchmarkConfig, PRESETS, "smoke", steps=1, warmup_steps=1, repeats=1,
                         results_dir=str(tmp_path / "results"))
    assert benchmark.run(config) == 0
    (record,) = results.load_all(config.results_dir, "dcgan")
    final = record["final"]
    assert record["kind"] == "benchmark" and final["gan_step_ms"] > 0 and final["plain_d_ms"] > 0
    assert final["overhead"] == pytest.approx(final["gan_step_ms"] / (final["plain_d_ms"]
                                              + final["plain_g_through_d_ms"]) - 1)
    text = report.report_for(config.results_dir, "dcgan")
    assert "## Step cost" in text and "| dcgan-cifar10 | CPU" in text

import keras
import numpy as np
import pytest
from keras import ops

from common import gan, results
from common.config import ConfigError, make_config, parse_args
from papers.dcgan import train
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.model import (
    DCGAN,
    build_discriminator,
    build_generator,
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
    config = make_config(DCGANConfig, PRESETS, "smoke", data_dir=str(cifar_root), download=False,
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
    assert "| dcgan-cifar10 | smoke (not the paper's recipe) |" in (folder / "REPORT.md").read_text()


def test_mnist_is_padded_to_32(mnist_root):
    config = make_config(DCGANConfig, PRESETS, "smoke", dataset="mnist", data_dir=str(mnist_root), download=False)
    data = train.prepare_data(config)
    assert data["train"].shape == (128, 32, 32, 1) and data["test"].shape == (10000, 32, 32, 1)
    assert data["train"].min() >= -1 and data["train"].max() <= 1 and (data["train"][:, :2] == -1).all()

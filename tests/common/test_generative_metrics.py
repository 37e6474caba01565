import json

import keras
import numpy as np
import pytest

from common.metrics.generative import FeatureNetwork, frechet_distance, inception_score


def test_inception_score_of_uniform_predictions_is_one():
    score, std = inception_score(np.full((100, 10), 0.1), splits=10)
    assert score == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_inception_score_of_n_confident_distinct_classes_is_n(n):
    probs = np.eye(10)[np.arange(20 * n) % n]
    assert inception_score(probs, splits=1)[0] == pytest.approx(n, rel=1e-6)


def test_inception_score_by_hand():
    # Two samples: (0.5, 0.5) and (1, 0); marginal (0.75, 0.25).
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    kl = [0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25), np.log(1 / 0.75)]
    assert inception_score(probs, splits=1)[0] == pytest.approx(np.exp(np.mean(kl)))
    with pytest.raises(ValueError, match="splits"):
        inception_score(probs, splits=10)


def test_frechet_distance_is_zero_for_a_set_with_itself_and_grows_with_a_mean_shift():
    f = np.random.default_rng(0).normal(size=(2000, 8))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    shifts = [frechet_distance(f, f + s) for s in (0.5, 1.0, 2.0)]
    # A shift s of every coordinate moves the means by s * sqrt(d) and leaves the covariances alone.
    np.testing.assert_allclose(shifts, [8 * 0.25, 8 * 1.0, 8 * 4.0], rtol=1e-6)
    # Different covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) for S2 = 4 S1 is Tr(S1).
    assert frechet_distance(f, 2 * f) == pytest.approx(np.trace(np.cov(f, rowvar=False)) + np.sum(f.mean(0) ** 2),
                                                       rel=1e-6)


def test_feature_network_from_a_saved_classifier(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Dense(4, activation="relu", name="penultimate")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    model.save(tmp_path / "clf.keras")
    net = FeatureNetwork.from_model_file(tmp_path / "clf.keras", name="toy classifier")
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(-1, 1, (40, 8, 8, 3)), rng.uniform(-1, 1, (40, 8, 8, 3))
    probs, feats = net.run(real, batch_size=16)
    assert probs.shape == (40, 3) and feats.shape == (40, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    scores = net.scores(fake, real, splits=4)
    assert scores["network"] == "toy classifier" and 1.0 <= scores["score"] <= 3.0
    assert scores["frechet_distance"] > 0 and net.scores(real, real, splits=4)["frechet_distance"] < 1e-4
    import hashlib

    assert net.describe() == {"score_network": "toy classifier", "score_network_file": str(tmp_path / "clf.keras"),
                              "score_network_sha256": hashlib.sha256((tmp_path / "clf.keras").read_bytes()).hexdigest()}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureNetwork.from_model_file(tmp_path / "missing.keras", name="x")
    with pytest.raises(FileNotFoundError, match="inception_v3_weights"):
        FeatureNetwork.inception_v3(tmp_path / "missing.h5")


@pytest.mark.slow
def test_inception_v3_from_a_weights_file(tmp_path):
    """The real Inception Score path, given a weights file (here random weights saved by Keras itself:
    ImageNet weights cannot be downloaded offline). Images are resized to 299 and grey ones tiled to RGB."""
    keras.utils.set_random_seed(0)
    path = tmp_path / "inception.weights.h5"
    keras.applications.InceptionV3(weights=None).save_weights(path)
    net = FeatureNetwork.inception_v3(path)
    assert net.name == "Inception" and net.input_size == (299, 299)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    probs, feats = net.run(images, batch_size=2)
    assert probs.shape == (4, 1000) and feats.shape == (4, 2048) and np.allclose(probs.sum(1), 1, atol=1e-4)


def test_score_network_trains_saves_a_card_and_never_overwrites(mnist_root, tmp_path):
    from common.metrics.score_network import card_path, main

    out = tmp_path / "nets" / "mnist-classifier.keras"
    argv = ["--dataset=mnist", f"--data_dir={mnist_root}", "--download=false", "--verify_data=false", "--epochs=2",
            "--train_subset=1024", f"--out={out}"]
    assert main(argv) == 0
    card = json.loads(card_path(out).read_text())
    assert card["dataset"] == "mnist" and card["train_images"] == 1024 and card["input"].endswith("32x32x1")
    assert card["test_accuracy"] > 0.2  # twice chance after 16 steps (fixture digits differ in intensity)
    net = FeatureNetwork.from_model_file(out, name="MNIST classifier")
    described = net.describe()
    assert described["score_network_test_accuracy"] == card["test_accuracy"]
    probs, feats = net.run(np.zeros((4, 32, 32, 1), np.float32) - 1.0)
    assert probs.shape == (4, 10) and feats.shape == (4, 128)
    digest = described["score_network_sha256"]
    assert main(argv) == 2  # never overwritten
    assert FeatureNetwork.from_model_file(out, name="x").sha256 == digest
    assert main([f"--out={tmp_path / 'model.h5'}", f"--data_dir={mnist_root}", "--download=false"]) == 2


def test_annotate_adds_a_card_written_after_the_run_as_a_revision(tmp_path):
    from dataclasses import dataclass

    from common.data.files import file_digest
    from common.lifecycle import results
    from common.lifecycle.config import RunConfig
    from common.metrics import score_network

    @dataclass(frozen=True)
    class Cfg(RunConfig):
        pass

    net = tmp_path / "classifier.keras"
    net.write_bytes(b"a saved network")
    final = {"sample_score": 2.5, "score_network": "toy classifier", "score_network_file": str(net),
             "score_network_sha256": file_digest(net)}
    record = results.make_record(paper="toy", variant="v", preset="quick", config=Cfg(seed=1),
                                 started=results.utc_now(), wall_time_s=1.0, history=[], final=final,
                                 status="completed")
    results_dir = tmp_path / "results"
    original = results.write(record, results_dir)
    with pytest.raises(ValueError, match="has no card"):
        score_network.annotate(original)
    score_network.write_card(net, {"dataset": "mnist", "test_accuracy": 0.99, "seed": 0})

    revised = score_network.annotate(original)
    kept = results.load_all(results_dir, "toy")
    assert [r["_path"] for r in kept] == [str(revised)]
    r = kept[0]
    assert r["final"]["score_network_test_accuracy"] == 0.99 and r["final"]["sample_score"] == 2.5
    assert r["config_hash"] == record["config_hash"] and r["revision"]["of"] == original.name
    assert r["revision"]["config_changes"] == {} and original.exists()
    with pytest.raises(ValueError, match="already records"):
        score_network.annotate(revised)

    net.write_bytes(b"another network")  # the file the scores came from was replaced: refuse
    final["score_network_sha256"] = file_digest(tmp_path / "results" / "toy" / original.name)  # any other digest
    other = results.write(results.make_record(paper="toy", variant="v", preset="quick", config=Cfg(seed=2),
                                              started=results.utc_now(), wall_time_s=1.0, history=[],
                                              final=final, status="completed"), results_dir)
    with pytest.raises(ValueError, match="not the"):
        score_network.annotate(other)
    assert score_network.main(["annotate", str(other)]) == 2


def test_new_runs_score_with_the_datasets_published_network_unless_told_otherwise():
    """Every machine scores MNIST samples with the one committed classifier (common.networks), by name, so that
    the config (and its hash) is the same wherever the run is; CIFAR-10 samples with the committed ResNet-20."""
    from common import networks
    from common.lifecycle.config import make_config
    from common.metrics.generative import PUBLISHED_SCORE_NETWORKS, published_or_file
    from papers.cgan.config import PRESETS as CGAN_PRESETS
    from papers.cgan.config import CGANConfig
    from papers.wgan.config import PRESETS as WGAN_PRESETS
    from papers.wgan.config import WGANConfig

    cgan = make_config(CGANConfig, CGAN_PRESETS)
    assert (cgan.feature_network, cgan.feature_network_name) == ("cgan/mnist-score-classifier", "MNIST classifier")
    assert "feature_network" in cgan.chosen_automatically
    assert make_config(WGANConfig, WGAN_PRESETS, dataset="mnist").feature_network == "cgan/mnist-score-classifier"
    cifar = make_config(WGANConfig, WGAN_PRESETS, dataset="cifar10")
    assert (cifar.feature_network, cifar.feature_network_name) == ("resnet/resnet20-fast-seed4",
                                                                   "CIFAR-10 ResNet-20 classifier")
    assert make_config(CGANConfig, CGAN_PRESETS, feature_network="").feature_network == ""  # no scores
    for name, _ in PUBLISHED_SCORE_NETWORKS.values():
        assert published_or_file(name) == networks.path_of(name) and networks.card_of(name)["sha256"]

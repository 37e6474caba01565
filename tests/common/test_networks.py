"""Published networks (common.networks): every committed file loads, is what its card says, and still scores
its card's number; publishing makes a file plain Keras can read and keeps to the size budget."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from common import layers, networks
from common.lifecycle.config import config_hash

REPO = networks.RESULTS.parent

CARD = {"model": "toy", "preset": "smoke", "seed": 0, "record": None, "commit": "0123456", "produce": "none",
        "metric": {"name": "accuracy", "value": 0.5, "on": "nothing"}, "check": None,
        "input": {"shape": [4], "dtype": "float32", "range": "any", "preprocessing": "none"}, "output": "2 logits"}


def _saved(tmp_path):
    """A compiled network with this repository's layer subclasses, saved as a run saves it."""
    keras.utils.set_random_seed(0)
    x = keras.Input((4,))
    h = layers.Dropout(0.5)(layers.BatchNormalization()(keras.layers.Dense(8)(x)))
    model = keras.Model(x, keras.layers.Dense(2)(h))
    model.compile("adam", "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
    path = tmp_path / "trained.keras"
    model.save(path)
    return model, path


def test_a_published_network_loads_with_plain_keras_and_computes_what_the_trained_one_did(tmp_path):
    model, path = _saved(tmp_path)
    card = networks.publish(path, "toy", "net", CARD, tmp_path / "results")
    published = card.with_suffix(".keras")
    script = (f"import keras, numpy as np; m = keras.saving.load_model({str(published)!r}); "
              f"print(m.predict(np.ones((3, 4)), verbose=0).tolist())")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]  # no import of this repository
    got = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, model.predict(np.ones((3, 4)), verbose=0), rtol=1e-6)
    written = json.loads(card.read_text())
    assert written["sha256"] == networks.file_digest(published) and written["name"] == "toy/net"
    assert [c["name"] for c in networks.available(tmp_path / "results")] == ["toy/net"]
    loaded = networks.load("toy/net", tmp_path / "results")
    assert getattr(loaded, "optimizer", None) is None
    assert {type(la).__module__.split(".")[0] for la in loaded.layers} == {"keras"}


def test_a_damaged_file_an_unknown_name_a_second_publication_and_an_oversized_file_are_refused(tmp_path,
                                                                                               monkeypatch):
    _, path = _saved(tmp_path)
    results = tmp_path / "results"
    card = networks.publish(path, "toy", "net", CARD, results)
    with pytest.raises(networks.NetworkError, match="already published"):
        networks.publish(path, "toy", "net", CARD, results)
    data = bytearray(card.with_suffix(".keras").read_bytes())
    data[-100] ^= 0xFF
    card.with_suffix(".keras").write_bytes(bytes(data))
    with pytest.raises(networks.NetworkError, match="not its card's"):
        networks.load("toy/net", results)
    with pytest.raises(networks.NetworkError, match="published: toy/net"):
        networks.load("toy/other", results)
    with pytest.raises(networks.NetworkError, match="<paper>/<network>"):
        networks.load("net", results)
    # An installed package (pip install . without the clone's results/): one line that says where they are.
    with pytest.raises(networks.NetworkError, match="come with a clone of the repository"):
        networks.load("cgan/mnist-score-classifier", tmp_path / "site-packages" / "results")
    # ... and run from the root of a clone, it finds the clone's.
    monkeypatch.setattr(networks, "__file__", str(tmp_path / "site-packages" / "common" / "networks.py"))
    monkeypatch.chdir(tmp_path)
    assert networks._results_folder() == tmp_path / "results"
    monkeypatch.setattr(networks, "FILE_LIMIT_MIB", 1e-4)
    with pytest.raises(networks.NetworkError, match="over the budget"):
        networks.publish(path, "toy", "small", CARD, results)
    assert not list((results / "toy" / "networks").glob("*small*"))


def test_publishing_from_a_missing_model_or_card_file_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """`networks publish` with a mistyped model or card path ended in a Keras or JSON traceback."""
    _, path = _saved(tmp_path)
    monkeypatch.setattr(networks.publish, "__defaults__", (tmp_path / "results",))  # never the repository's
    (tmp_path / "card.json").write_text(json.dumps(CARD))
    (tmp_path / "notes.txt").write_text("not JSON")
    for model, card, says in [(tmp_path / "typo.keras", tmp_path / "card.json", "not a Keras model file"),
                              (path, tmp_path / "typo.json", "not a readable JSON file"),
                              (path, tmp_path / "notes.txt", "not a readable JSON file")]:
        assert networks.main(["publish", str(model), "--paper=toy", "--name=net", f"--card={card}"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: ") and says in line


@pytest.mark.parametrize("card", [c for c in networks.available() if c.get("file")], ids=lambda c: c["name"])
def test_every_committed_network_is_its_cards_and_scores_its_cards_check(card, real_data_dir):
    """The committed file's SHA-256 is its card's, and on the card's slice of the real test set it scores the
    number the card gives (the network as published, not retrained)."""
    from common.data import image_sets

    check = card["check"]
    if check.get("kind") == "vae_bound":  # an encoder and its decoder: their one-sample bound, noise seeded
        from papers.vae import publish

        pair = [networks.load(check[part]) for part in ("encoder", "decoder")]
        assert publish.check_bound(*pair, str(real_data_dir)) == pytest.approx(check["bound"], abs=1e-3)
    else:
        assert "kind" not in check, f"a check of an unknown kind: {check}"
        model = networks.load(card["name"])
        data = image_sets.load(check["dataset"], str(real_data_dir), download=False)
        x = image_sets.to_tanh_range(data.test)[:check["first"]]
        accuracy = np.mean(model.predict(x, batch_size=250, verbose=0).argmax(1) == data.y_test[:check["first"]])
        assert float(accuracy) == pytest.approx(check["accuracy"], abs=1e-9)
    assert networks.path_of(card["name"]).stat().st_size <= networks.FILE_LIMIT_MIB * 2**20


@pytest.mark.parametrize("card", [c for c in networks.available() if c.get("file") is None], ids=lambda c: c["name"])
def test_a_network_over_the_budget_has_a_card_whose_command_produces_it_and_no_file(card):
    """Its card's command is the paper's own (its parser takes it, at the preset the card names), its
    weights are over the budget, no file is committed, and `load` says how to produce it."""
    import importlib
    import shlex

    from common.lifecycle.config import RunConfig, parse_args

    paper = card["paper"]
    argv = shlex.split(card["produce"])
    assert argv[:2] == ["python", f"papers/{paper}/train.py"]
    module = importlib.import_module(f"papers.{paper}.config")
    cls = next(v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, RunConfig) and v.__module__ == module.__name__)
    preset, config = parse_args(cls, module.PRESETS, argv[2:])
    assert card["preset"].startswith(preset)
    if card["why_not_committed"].startswith("not kept"):  # trained before networks were published
        record = json.loads((REPO / card["record"]).read_text())
        assert (record["paper"], record["seed"], record["preset"]) == (paper, config.seed, preset)
        assert record["config_hash"] == config_hash(config)  # the command is that run's
        assert card["metric"]["value"] == 1 - record["final"]["test_error_without_flip"]
    else:
        assert card["parameters"] * 4 > networks.FILE_LIMIT_MIB * 2**20
    assert not networks.path_of(card["name"]).exists()
    with pytest.raises(networks.NetworkError, match="not committed"):
        networks.load(card["name"])


def test_a_classifier_wrapping_a_compiled_network_is_published_without_its_compilation(tmp_path):
    """ResNet's classifier.keras wraps the trained (compiled) network with its preprocessing; the compiled
    network's optimizer, whose schedule is this repository's class, must not travel into the published file."""
    import keras

    from papers.resnet.model import OneCycle

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="inner")
    inner.compile(keras.optimizers.SGD(OneCycle(0.1, 2, 10)), loss="mse")
    x = keras.Input((4,))
    wrapped = keras.Model(x, inner(keras.layers.Rescaling(0.5)(x)))
    path = tmp_path / "classifier.keras"
    wrapped.save(path)
    copy = networks.inference_copy(keras.saving.load_model(path, compile=False))
    assert not any(getattr(layer, "compiled", False) for layer in copy.layers)
    np.testing.assert_allclose(copy.predict(np.ones((2, 4)), verbose=0), wrapped.predict(np.ones((2, 4)), verbose=0))


def test_list_shows_each_metric_to_four_places(capsys):
    """`networks list` printed a committed network's float32 metric as stored (0.914900004863739)."""
    networks.main(["list"])
    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "test accuracy (one prediction per image) 0.9149 on CIFAR-10's 10,000 test images" \
        in lines["resnet/resnet20-paper-seed0"]
    assert "test accuracy 0.9930 on MNIST's 10,000 test images" in lines["cgan/mnist-score-classifier"]

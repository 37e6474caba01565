"""Data-parallel training (common.lifecycle.distribute) on this CPU: several devices give what one device gives.

Each placement runs in a subprocess of its own (`tests/distributed_steps.py`), since the device count is fixed
when the backend starts: JAX sees 4 host devices through XLA_FLAGS, TensorFlow 2 logical CPUs. The steps
are those of ResNet-8 (batch normalisation, `Model.fit`), of DCGAN (the adversarial custom step, batch
normalisation in both networks, drawn noise) and of the VAE (its own loss, drawn noise), 3 steps (ResNet-8:
2, see `tests/distributed_steps.py`) of a global batch of 16 each, with plain SGD (whose step scales with
the gradient); the losses of every step and every weight after them must match one device's within float
tolerance. That the comparison can fail is shown by TensorFlow's per-replica batch normalisation
(`--sync_batchnorm=false`), which it catches.

The two-host runs in miniature (two processes on localhost) and the check that plain Keras on TensorFlow
replicas departs from one device took 350 s of this file's 744 s (2 cores beside a training run, 2026-12-02),
so they are `slow`:
`python -m pytest -m slow tests/common/test_distribute.py` runs them.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from common import layers
from common.lifecycle import distribute
from common.lifecycle.config import ConfigError, make_config
from papers.resnet.config import PRESETS, ResNetConfig

REPO = Path(__file__).resolve().parents[2]
STEPS = REPO / "tests" / "distributed_steps.py"
pytestmark = pytest.mark.distributed


MODELS = ("resnet", "dcgan", "vae")
# On TensorFlow each replica runs the step on its share, so the papers whose steps draw noise inside the
# networks (Dropout, Gaussian noise), compare batch means or cut a batch into minibatches are checked too. On
# JAX the step is one program over the global batch, whatever it computes.
TF_MODELS = (*MODELS, "cgan", "ssgan", "wgan", "wgan_clip")


def _steps(folder, backend, mode, devices=1, models=MODELS, **flags):
    """{model: its npz} of one harness run: every model of `models` on one placement."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("XLA_FLAGS", None)
    args = [f"--devices={devices}", *(f"--{k}={v}" for k, v in flags.items())]
    done = subprocess.run([sys.executable, str(STEPS), ",".join(models), mode, str(folder), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return {m: np.load(folder / f"{m}.npz") for m in models}


def _assert_same(one, many, replicas):
    assert int(many["replicas"]) == replicas and int(one["replicas"]) == 1
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=1e-5)
    names = [k for k in one.files if k.startswith("w")]
    assert len(names) >= 10
    for k in names:
        # At least 1e-3: a bias that starts at 0 moves little in 3 steps, and where its gradient is a difference
        # of near-equal terms (CGAN's output bias: real and fake cross-entropies), summation order shows.
        scale = max(np.abs(one[k]).max(), 1e-3)
        np.testing.assert_allclose(many[k] / scale, one[k] / scale, atol=2e-5, err_msg=k)


@pytest.fixture(scope="module")
def jax_one(tmp_path_factory):
    return _steps(tmp_path_factory.mktemp("jax-one"), "jax", "none")


@pytest.fixture(scope="module")
def tf_one(tmp_path_factory):
    # Batch normalisation synchronised over replicas is Keras' composed ops (the fused kernel sees one device's
    # rows only), so one device runs them too. The fused kernel agrees with them up to float rounding
    # (tests/common/test_layers.py), which three steps amplify beyond this comparison's tolerance (ResNet-8's BN
    # shifts: 3e-4 relative).
    return _steps(tmp_path_factory.mktemp("tf-one"), "tensorflow", "none", models=TF_MODELS, fused_batchnorm="false")


def test_jax_data_parallel_over_4_devices_matches_one_device(tmp_path, jax_one):
    """ResNet-8's `fit` step, DCGAN's adversarial step and the VAE's own loss, each on 4 devices."""
    many = _steps(tmp_path, "jax", "data_parallel", 4)
    for model in MODELS:
        _assert_same(jax_one[model], many[model], 4)


def test_tensorflow_mirrored_over_2_devices_matches_one_device(tmp_path, tf_one):
    """Besides those three: CGAN (Dropout in both networks), the semi-supervised GAN (Gaussian noise in D,
    feature matching of batch means, D's moving average), WGAN-GP (critic minibatches, the penalty's draws)
    and weight clipping."""
    many = _steps(tmp_path, "tensorflow", "data_parallel", 2, models=TF_MODELS)
    for model in TF_MODELS:
        _assert_same(tf_one[model], many[model], 2)


@pytest.mark.slow
def test_tensorflow_replicas_left_to_plain_keras_depart_from_one_device(tmp_path, tf_one):
    """What common does on TensorFlow replicas is needed: with Keras' per-replica Dropout and noise (each
    replica's mask repeats the others'), per-replica batch means, and critic minibatches cut from each
    replica's share, each of these papers departs from one device."""
    naive = _steps(tmp_path, "tensorflow", "data_parallel", 2, models=("cgan", "ssgan", "wgan"), naive="true")
    for model in ("cgan", "ssgan", "wgan"):
        with pytest.raises(AssertionError):
            _assert_same(tf_one[model], naive[model], 2)


def test_tensorflow_per_replica_batchnorm_departs_from_one_device(tmp_path, tf_one):
    """The comparison above can fail: statistics over each replica's 8 images are not those of the 16."""
    apart = _steps(tmp_path, "tensorflow", "data_parallel", 2, models=("resnet",), sync_batchnorm="false")
    with pytest.raises(AssertionError):
        _assert_same(tf_one["resnet"], apart["resnet"], 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _both(procs, timeout=400) -> list[str]:
    """Wait for both processes of a two-host run (each must stop by itself), killing them at the timeout."""
    try:
        return [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()


@pytest.mark.slow
def test_two_jax_processes_on_localhost_match_one_process(tmp_path, jax_one):
    """Two hosts in miniature: two processes with 2 devices each, a coordinator on 127.0.0.1 (gloo collectives
    on CPU), each feeding its rows of every batch."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    flags = ["--devices=2", "--processes=2", f"--coordinator=127.0.0.1:{_free_port()}"]
    logs = _both([subprocess.Popen([sys.executable, str(STEPS), "resnet,dcgan", "data_parallel", str(tmp_path), *flags,
                                    f"--process_id={i}"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for i in range(2)])
    assert all("done: Placement(kind='data_parallel', replicas=4, hosts=2" in log for log in logs), \
        "\n".join(log[-2000:] for log in logs)
    for model in ("resnet", "dcgan"):
        _assert_same(jax_one[model], np.load(tmp_path / f"{model}.npz"), 4)


# --- the switch and its refusals (one line, exit status 2), on this process's single CPU device


def test_distribute_field_is_checked_and_left_out_of_the_hash():
    with pytest.raises(ConfigError, match="--distribute must be one of none, data_parallel, auto"):
        make_config(ResNetConfig, PRESETS, distribute="all")
    from common.lifecycle.config import config_hash

    base = make_config(ResNetConfig, PRESETS)
    assert config_hash(make_config(ResNetConfig, PRESETS, distribute="none")) == config_hash(base)
    assert config_hash(make_config(ResNetConfig, PRESETS, sync_batchnorm=False)) != config_hash(base)


def test_auto_is_one_device_on_this_cpu():
    placement = distribute.setup(make_config(ResNetConfig, PRESETS))
    assert placement.kind == "none" and placement.replicas == 1 and placement.chief
    distribute.check_batch(7)


@pytest.mark.parametrize("flags,message", [
    ({"num_processes": 2}, "needs the coordinator's address"),
    ({"num_processes": 2, "coordinator": "127.0.0.1:1", "process_id": 2}, "must be in 0..1"),
    ({"num_processes": 2, "coordinator": "127.0.0.1:1", "process_id": 0}, "keras-team/keras#20585"),
])
def test_bad_cluster_flags_and_several_hosts_on_tensorflow_are_refused(flags, message):
    """Refused before anything starts (a user error: one line, exit status 2, as train.py's test below shows)."""
    with pytest.raises(distribute.DistributeError, match=message):
        distribute.setup(make_config(ResNetConfig, PRESETS, **flags))


def test_a_coordinator_that_cannot_be_reached_is_one_line(monkeypatch):
    def unreachable(*args):
        raise RuntimeError("DEADLINE_EXCEEDED: Barrier timed out.\nmore detail")

    monkeypatch.setattr(distribute.keras.distribution, "initialize", unreachable)
    with pytest.raises(distribute.DistributeError, match=r"process 1 of 2 could not join the coordinator at "
                                                         r"10\.0\.0\.1:1234 \(RuntimeError: DEADLINE_EXCEEDED"):
        distribute.join("10.0.0.1:1234", 2, 1)


@pytest.mark.parametrize("make", [lambda: (keras.layers.Dropout(0.3, seed=5), layers.Dropout(0.3, seed=5)),
                                  lambda: (keras.layers.GaussianNoise(0.5, seed=5), layers.GaussianNoise(0.5, seed=5))])
def test_replica_dropout_and_noise_draw_what_keras_draws(monkeypatch, make):
    """common.layers' draw on replicas (forced here; on one device `batch_draw` then draws for the whole
    batch) is Keras' own, bit for bit: the replicas together draw what one device draws. Its inference pass
    and its draws on one device are Keras' layer itself."""
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(8, 5, 3)).astype("float32"))
    theirs, ours = make()
    np.testing.assert_array_equal(ours(x, training=False), x)
    expected = keras.ops.convert_to_numpy(theirs(x, training=True))
    monkeypatch.setattr(distribute, "replicated", lambda: True)
    drawn = keras.ops.convert_to_numpy(ours(x, training=True))
    np.testing.assert_array_equal(drawn, expected)
    assert not np.array_equal(drawn, keras.ops.convert_to_numpy(ours(x, training=True)))  # the seed moves on


def test_papers_draw_their_dropout_and_noise_through_common_layers():
    """Every network a paper trains data parallel uses common.layers' Dropout / GaussianNoise, not Keras'
    (whose masks would repeat across TensorFlow replicas)."""
    from papers.cgan.model import build_discriminator, build_generator
    from papers.semi_supervised_gan import model as ssgan
    from papers.unet.model import build_unet

    networks = [build_generator(True, 100, dropout=0.5), build_discriminator(True, input_dropout=0.2, dropout=0.5),
                ssgan.build_mnist_discriminator(), ssgan.build_cifar_discriminator(), build_unet(380, filters=4)]
    for net in networks:
        noisy = [layer for layer in net._flatten_layers() if isinstance(layer, (keras.layers.Dropout,
                                                                              keras.layers.GaussianNoise))]
        assert noisy, net.name
        assert all(type(layer) in (layers.Dropout, layers.GaussianNoise) for layer in noisy), net.name


def test_auto_stays_on_one_device_where_data_parallel_cannot_run(monkeypatch, capsys):
    """With 4 accelerators in sight, `auto` keeps a batch that does not split (U-Net's 1) and a paper that trains
    on one device (speech emotion's small per-fold networks) on one device, saying why; asked for explicitly,
    data parallel is refused in one line."""
    from papers.speech_emotion.config import PRESETS as SPEECH_PRESETS
    from papers.speech_emotion.config import SpeechEmotionConfig

    monkeypatch.setattr(distribute, "accelerators", lambda: ["gpu"] * 4)
    assert distribute.setup(make_config(ResNetConfig, PRESETS, batch_size=30)).kind == "none"
    assert "the batch of 30 does not split over 4 devices" in capsys.readouterr().out
    with pytest.raises(distribute.DistributeError, match="--batch_size=30 does not split over 4 devices"):
        distribute.setup(make_config(ResNetConfig, PRESETS, batch_size=30, distribute="data_parallel"))
    assert distribute.setup(make_config(SpeechEmotionConfig, SPEECH_PRESETS)).kind == "none"
    assert "one device (a small network per fold" in capsys.readouterr().out
    with pytest.raises(distribute.DistributeError, match="this paper trains on one device"):
        distribute.setup(make_config(SpeechEmotionConfig, SPEECH_PRESETS, distribute="data_parallel"))


def test_clearing_the_session_keeps_the_placement():
    """Keras' clear_session drops TensorFlow's strategy (and forgets a JAX distribution); the VAE's step-size
    search clears it between candidates, so it uses ours, and Run.fit refuses to train on a lost placement.
    A one-device MirroredStrategy here, on this process's single CPU."""
    from papers.vae.config import PRESETS as VAE_PRESETS
    from papers.vae.config import VAEConfig

    try:
        assert distribute.setup(make_config(VAEConfig, VAE_PRESETS, distribute="data_parallel")).kind == "data_parallel"
        assert distribute.in_force()
        keras.backend.clear_session()
        assert not distribute.in_force()
        distribute.clear_session()
        assert distribute.in_force()
    finally:
        distribute.setup(make_config(VAEConfig, VAE_PRESETS, distribute="none"))
    assert distribute.placement().kind == "none" and not tf_has_strategy()


def tf_has_strategy() -> bool:
    import tensorflow as tf

    return tf.distribute.has_strategy()


def test_each_host_and_replica_gets_its_rows_of_nested_batches(monkeypatch):
    """The semi-supervised GAN's batches are ((labelled, unlabelled, unlabelled), labels): every array of
    them is cut, not the tuple. Host 1 of 2 gets the second half of each; on 2 TensorFlow replicas WGAN's
    batch of 2 minibatches [a0 a1 | b0 b1] (rows by replica) becomes [a0 b0 | a1 b1], so each replica's
    contiguous share holds its rows of both minibatches."""
    from papers.semi_supervised_gan.data import Batches

    x, y = np.arange(8 * 3, dtype=np.float32).reshape(8, 3), np.arange(8) % 10
    batches = Batches(x, y, np.arange(8), 4, seed=0)
    monkeypatch.setattr(distribute, "_placement", distribute.Placement("data_parallel", 4, 2, process_id=1))
    fed = distribute.shard_for_process(batches)
    (mine, labels), (whole, all_labels) = fed[0], batches[0]
    assert len(fed) == len(batches) and fed.batch_size == 4 and fed.set_epoch == batches.set_epoch
    for part, full in zip((*mine, labels), (*whole, all_labels), strict=True):
        np.testing.assert_array_equal(part, full[2:])
    reorder = distribute.replica_minibatches(groups=2, replicas=2)
    np.testing.assert_array_equal(reorder(np.array([0, 1, 2, 3, 10, 11, 12, 13])), [0, 1, 10, 11, 2, 3, 12, 13])


def test_a_batch_that_does_not_split_is_refused(monkeypatch):
    monkeypatch.setattr(distribute, "_placement", distribute.Placement("data_parallel", replicas=4))
    with pytest.raises(distribute.DistributeError, match="--batch_size=30 does not split over 4 devices"):
        distribute.check_batch(30)
    distribute.check_batch(32)


@pytest.mark.slow
def test_train_script_on_2_hosts_records_its_placement(cifar_root, tmp_path):
    """`python papers/resnet/train.py` as two processes with 2 JAX devices each (the several-hosts command of
    docs/several-devices.md, on localhost): process 0's record says 4 devices on 2 hosts, in each session too;
    process 1 writes none; every epoch's loss is one device's. A batch that does not split is one line and exit
    status 2."""
    one = _train("resnet", cifar_root, tmp_path / "one", "--distribute=none", backend="jax")
    assert one.returncode == 0, one.stderr[-3000:]
    port = _free_port()
    procs = [_train("resnet", cifar_root, tmp_path / "hosts", f"--coordinator=127.0.0.1:{port}", "--num_processes=2",
                    f"--process_id={i}", backend="jax", devices=2, wait=False) for i in range(2)]
    logs = _both(procs)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert "the record is written by process 0" in logs[1]
    (b,), (c,) = ([json.loads(p.read_text()) for p in (tmp_path / d / "results" / "resnet").glob("*.json")]
                  for d in ("one", "hosts"))
    assert c["distribution"]["replicas"] == 4 and c["distribution"]["hosts"] == 2
    assert c["distribution"]["engine"].startswith("keras.distribution.DataParallel")
    assert b["distribution"]["kind"] == "none" and b["config_hash"] == c["config_hash"]
    assert [s["devices"] for s in c["sessions"]] == [4] and [s["hosts"] for s in c["sessions"]] == [2]
    assert [h["loss"] for h in c["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-4)
    odd = _train("resnet", cifar_root, tmp_path / "odd", "--distribute=data_parallel", "--batch_size=30",
                 backend="jax", devices=4)
    assert odd.returncode == 2 and "does not split over 4 devices" in odd.stderr and "Traceback" not in odd.stderr


def _train(paper, cifar_root, tmp_path, *flags, backend="tensorflow", devices=1, wait=True):
    env = {**os.environ, "KPB_DATA_DIR": str(cifar_root), "PYTHONPATH": str(REPO), "KERAS_BACKEND": backend}
    env.pop("XLA_FLAGS", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    command = [sys.executable, f"papers/{paper}/train.py", "--preset=smoke", "--download=false", "--verify_data=false",
               f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}", *flags]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

"""Data-parallel training (common.distribute) on this CPU: several devices give what one device gives.

Each placement runs in a subprocess of its own (`tests/distributed_steps.py`), since the device count is fixed
when the backend starts: JAX sees 4 host devices through XLA_FLAGS, TensorFlow 2 logical CPUs. The steps
are those of ResNet-8 (batch normalisation, `Model.fit`), of DCGAN (the adversarial custom step, batch
normalisation in both networks, drawn noise) and of the VAE (its own loss, drawn noise), 3 steps of a
global batch of 16 each, with plain SGD (whose step scales with the gradient); the losses of every step and
every weight after them must match one device's within float tolerance. That the comparison can fail is
shown by TensorFlow's per-replica batch normalisation (`--sync_batchnorm=false`), which it catches.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import distribute
from common.config import ConfigError, make_config
from papers.resnet.config import PRESETS, ResNetConfig

REPO = Path(__file__).resolve().parents[2]
STEPS = REPO / "tests" / "distributed_steps.py"
pytestmark = pytest.mark.distributed


def _steps(tmp_path, backend, model, mode, devices=1, name=None, **flags):
    out = tmp_path / f"{name or f'{backend}-{model}-{mode}-{devices}'}.npz"
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("XLA_FLAGS", None)
    args = [f"--devices={devices}", *(f"--{k}={v}" for k, v in flags.items())]
    done = subprocess.run([sys.executable, str(STEPS), model, mode, str(out), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def _assert_same(one, many, replicas):
    assert int(many["replicas"]) == replicas and int(one["replicas"]) == 1
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=1e-5)
    names = [k for k in one.files if k.startswith("w")]
    assert len(names) >= 10
    for k in names:
        scale = np.abs(one[k]).max() + 1e-6
        np.testing.assert_allclose(many[k] / scale, one[k] / scale, atol=2e-5, err_msg=k)


@pytest.fixture(scope="module")
def jax_resnet_one(tmp_path_factory):
    return _steps(tmp_path_factory.mktemp("one"), "jax", "resnet", "none")


def test_jax_data_parallel_over_4_devices_matches_one_device_resnet(tmp_path, jax_resnet_one):
    _assert_same(jax_resnet_one, _steps(tmp_path, "jax", "resnet", "data_parallel", 4), 4)


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_jax_data_parallel_over_4_devices_matches_one_device_custom_steps(tmp_path, model):
    one = _steps(tmp_path, "jax", model, "none")
    _assert_same(one, _steps(tmp_path, "jax", model, "data_parallel", 4), 4)


@pytest.fixture(scope="module")
def tf_resnet_one(tmp_path_factory):
    return _steps(tmp_path_factory.mktemp("one"), "tensorflow", "resnet", "none")


def test_tensorflow_mirrored_over_2_devices_matches_one_device_resnet(tmp_path, tf_resnet_one):
    _assert_same(tf_resnet_one, _steps(tmp_path, "tensorflow", "resnet", "data_parallel", 2), 2)


def test_tensorflow_per_replica_batchnorm_departs_from_one_device(tmp_path, tf_resnet_one):
    """The comparison above can fail: statistics over each replica's 8 images are not those of the 16."""
    apart = _steps(tmp_path, "tensorflow", "resnet", "data_parallel", 2, sync_batchnorm="false")
    with pytest.raises(AssertionError):
        _assert_same(tf_resnet_one, apart, 2)


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_tensorflow_mirrored_over_2_devices_matches_one_device_custom_steps(tmp_path, model):
    one = _steps(tmp_path, "tensorflow", model, "none")
    _assert_same(one, _steps(tmp_path, "tensorflow", model, "data_parallel", 2), 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_jax_processes_on_localhost_match_one_process(tmp_path, jax_resnet_one):
    """Two hosts in miniature: two processes with 2 devices each, a coordinator on 127.0.0.1 (gloo collectives
    on CPU), each feeding its rows of every batch. Both must finish by themselves within the timeout."""
    out = tmp_path / "two.npz"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    flags = ["--devices=2", "--processes=2", f"--coordinator=127.0.0.1:{_free_port()}"]
    procs = [subprocess.Popen([sys.executable, str(STEPS), "resnet", "data_parallel", str(out), *flags,
                               f"--process_id={i}"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    two = np.load(out)
    assert int(two["hosts"]) == 2
    _assert_same(jax_resnet_one, two, 4)


# --- the switch and its refusals (one line, exit status 2), on this process's single CPU device


def test_distribute_field_is_checked_and_left_out_of_the_hash():
    with pytest.raises(ConfigError, match="--distribute must be one of none, data_parallel, auto"):
        make_config(ResNetConfig, PRESETS, distribute="all")
    from common.config import config_hash

    base = make_config(ResNetConfig, PRESETS)
    assert config_hash(make_config(ResNetConfig, PRESETS, distribute="none")) == config_hash(base)
    assert config_hash(make_config(ResNetConfig, PRESETS, sync_batchnorm=False)) != config_hash(base)


def test_auto_is_one_device_on_this_cpu():
    placement = distribute.setup(make_config(ResNetConfig, PRESETS))
    assert placement.kind == "none" and placement.replicas == 1 and placement.chief
    distribute.check_batch(7)


@pytest.mark.parametrize("flags,message", [
    (["--num_processes=2"], "needs the coordinator's address"),
    (["--num_processes=2", "--coordinator=127.0.0.1:1", "--process_id=2"], "must be in 0..1"),
])
def test_bad_cluster_flags_are_one_line(cifar_root, tmp_path, flags, message):
    out = _train("resnet", cifar_root, tmp_path, *flags)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_tensorflow_refuses_several_hosts_and_papers_whose_replicas_would_differ(cifar_root, tmp_path):
    hosts = _train("resnet", cifar_root, tmp_path, "--num_processes=2", "--coordinator=127.0.0.1:1",
                   "--process_id=0", backend="tensorflow")
    assert hosts.returncode == 2 and "keras-team/keras#20585" in hosts.stderr and "Traceback" not in hosts.stderr
    cgan = _train("cgan", cifar_root, tmp_path, "--distribute=data_parallel", backend="tensorflow")
    assert cgan.returncode == 2 and "Dropout" in cgan.stderr and "Traceback" not in cgan.stderr


def test_a_batch_that_does_not_split_is_one_line(cifar_root, tmp_path):
    out = _train("resnet", cifar_root, tmp_path, "--distribute=data_parallel", "--batch_size=30", backend="jax",
                 devices=4)
    assert out.returncode == 2 and "does not split over 4 devices" in out.stderr and "Traceback" not in out.stderr


def test_train_script_on_4_devices_and_on_2_hosts_records_its_placement(cifar_root, tmp_path):
    """`python papers/resnet/train.py` end to end on 4 JAX host devices, and as two processes with 2 devices each
    (the README's several-hosts command on localhost): each record says its devices and hosts, the second
    process writes none, and every epoch's loss is one device's."""
    many = _train("resnet", cifar_root, tmp_path / "many", "--distribute=data_parallel", backend="jax", devices=4)
    one = _train("resnet", cifar_root, tmp_path / "one", "--distribute=none", backend="jax", devices=4)
    assert many.returncode == 0 and one.returncode == 0, many.stderr[-3000:] + one.stderr[-3000:]
    port = _free_port()
    procs = [_train("resnet", cifar_root, tmp_path / "hosts", f"--coordinator=127.0.0.1:{port}", "--num_processes=2",
                    f"--process_id={i}", backend="jax", devices=2, wait=False) for i in range(2)]
    try:
        logs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert "the record is written by process 0" in logs[1]
    (a,), (b,), (c,) = ([json.loads(p.read_text()) for p in (tmp_path / d / "results" / "resnet").glob("*.json")]
                        for d in ("many", "one", "hosts"))
    assert a["distribution"]["replicas"] == 4 and a["distribution"]["hosts"] == 1
    assert a["distribution"]["engine"].startswith("keras.distribution.DataParallel")
    assert c["distribution"]["replicas"] == 4 and c["distribution"]["hosts"] == 2
    assert b["distribution"]["kind"] == "none" and a["config_hash"] == b["config_hash"] == c["config_hash"]
    assert [s["devices"] for s in a["sessions"]] == [4] and [s["hosts"] for s in c["sessions"]] == [2]
    for record in (a, c):
        assert [h["loss"] for h in record["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-4)


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

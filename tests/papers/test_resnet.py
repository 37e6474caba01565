import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from common import report
from common.lifecycle import results
from common.lifecycle.config import ConfigError, make_config
from papers.resnet import train
from papers.resnet.config import PRESETS, ResNetConfig
from papers.resnet.data import prepare_data
from papers.resnet.model import DEPTHS, build_model, compile_model, lr_schedule, zero_pad_shortcut
from tests.conftest import smoke_config, straight_and_resumed
from tests.recipe import crop_offsets, planned_training, recipe_plan

# Table 6 of He et al. 2016: parameters of the CIFAR-10 ResNets (option A shortcuts).
TABLE6_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}


def _millions(model, digits):
    n = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return f"{n / 1e6:.{digits}f}M"


@pytest.mark.parametrize("depth", DEPTHS)
def test_build_parameter_count_and_shape(depth):
    model = build_model(depth)
    assert _millions(model, 1 if depth == 110 else 2) == TABLE6_PARAMS[depth]
    weighted = [la for la in model.layers if isinstance(la, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(weighted) == depth  # 6n+2 weighted layers
    out = model(np.zeros((2, 32, 32, 3), np.float32))
    assert tuple(out.shape) == (2, 10)
    assert np.allclose(keras.ops.convert_to_numpy(keras.ops.sum(out, axis=1)), 1.0, atol=1e-5)


@pytest.mark.parametrize("depth", DEPTHS)
def test_save_and_reload_give_identical_outputs(depth, tmp_path):
    model = build_model(depth)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(again(x)))


def _train_step_lowers_loss(depth):
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(depth), ResNetConfig(depth=depth, learning_rate=0.01))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, 16)
    first = float(model.train_on_batch(x, y)[0])
    second = float(model.train_on_batch(x, y)[0])  # the loss after one step, on the same batch
    assert np.isfinite(first) and second < first


@pytest.mark.jax
def test_train_step_lowers_loss_resnet20():
    _train_step_lowers_loss(20)


@pytest.mark.slow
def test_train_step_lowers_loss_resnet110():
    """The deepest network trains too. The depths between differ from these two only in n, which the
    structure tests above check for every depth (so they are not trained here: 30 s of the suite). Slow:
    85 s of the suite's 2,527 s on 2 cores beside a training run (2026-12-02); ResNet-20's step stays."""
    _train_step_lowers_loss(110)


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype(np.float32)
    inputs = keras.Input((8, 8, 16))
    y = keras.ops.convert_to_numpy(keras.Model(inputs, zero_pad_shortcut(inputs, 32, 2, "s"))(x))
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()


def test_schedule_steps_and_resnet110_warmup():
    lr = lr_schedule(ResNetConfig(depth=110))
    at = {i: float(keras.ops.convert_to_numpy(lr(i))) for i in (0, 399, 400, 31999, 32000, 47999, 48000, 63999)}
    assert at == pytest.approx({0: 0.01, 399: 0.01, 400: 0.1, 31999: 0.1, 32000: 0.01, 47999: 0.01,
                                48000: 0.001, 63999: 0.001})
    lr20 = lr_schedule(ResNetConfig(depth=20))
    assert float(keras.ops.convert_to_numpy(lr20(0))) == pytest.approx(0.1)


def test_config_rejects_bad_depth_and_presets_are_valid():
    with pytest.raises(ConfigError, match="6n\\+2"):
        make_config(ResNetConfig, PRESETS, depth=21)
    for preset in ("paper", *PRESETS):
        make_config(ResNetConfig, PRESETS, preset)
    assert make_config(ResNetConfig, PRESETS).max_iterations == 64000


def _smoke(cifar_root, tmp_path, name, **overrides):
    return smoke_config(ResNetConfig, PRESETS, cifar_root, tmp_path / name, **overrides)


def _final_result(config):
    (record,) = results.load_all(config.results_dir, "resnet")
    return record


@pytest.mark.jax
def test_smoke_run_writes_results_and_a_classifier_any_process_loads(cifar_root, tmp_path):
    config = _smoke(cifar_root, tmp_path, "a")
    assert train.train(config, "smoke") == 0
    record = _final_result(config)
    assert record["status"] == "completed" and record["preset"] == "smoke" and record["variant"] == "resnet8"
    assert record["final"]["iterations"] == 6 and len(record["history"]) == 2
    assert record["data"]["train"] == 96 and record["data"]["test"] == 100
    assert set(record["data"]["checksums"]) == {"train split (content)", "test split (content)"}
    assert not (tmp_path / "a" / "results" / "resnet" / "REPORT.md").exists()  # reports are common.report's job
    # The saved classifier takes images in [-1, 1] and gives the network's probabilities on preprocessed ones.
    from common.metrics.generative import FeatureNetwork

    net = FeatureNetwork.from_model_file(record["final"]["classifier_file"], name="CIFAR-10 classifier")
    arrays, _ = prepare_data(config)
    x = arrays["test"][0][:8]
    images = (x + arrays["pixel_mean"]) * 2 - 1
    probs, feats = net.run(images)
    direct = keras.ops.convert_to_numpy(net.probabilities.layers[-1](x, training=False))
    np.testing.assert_allclose(probs, direct, atol=1e-5)
    assert feats.shape == (8, 64)
    # Its card gives the run's test accuracy, so GAN scores made with it carry it; it is written once.
    assert net.describe()["score_network_test_accuracy"] == pytest.approx(1.0 - record["final"]["test_error"])
    from papers.resnet import write_card

    results_file = next((tmp_path / "a" / "results" / "resnet").glob("*.json"))
    assert write_card.main([str(results_file)]) == 2
    # A fresh process in which no paper module can be imported (a GAN run) loads it with stock Keras layers.
    code = ("import sys; sys.modules['papers'] = None; from common.metrics.generative import FeatureNetwork; "
            f"print(FeatureNetwork.from_model_file({record['final']['classifier_file']!r}, name='c').name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0 and done.stdout.strip().endswith("c"), done.stderr[-2000:]


def test_interrupted_run_resumes_to_the_same_result(cifar_root, tmp_path):
    a, b = straight_and_resumed(train, lambda name: _smoke(cifar_root, tmp_path, name), "resnet")
    assert [h["epoch"] for h in b["history"]] == [1, 2]
    assert [(s["first_epoch"], s["last_epoch"]) for s in b["sessions"]] == [(1, 1), (2, 2)]
    assert b["started"] == b["sessions"][0]["started"] <= b["sessions"][1]["started"]
    assert a["final"]["test_loss"] == pytest.approx(b["final"]["test_loss"], rel=1e-6)
    assert a["history"][-1]["loss"] == pytest.approx(b["history"][-1]["loss"], rel=1e-6)


def test_nan_loss_stops_the_run_and_marks_it_failed(cifar_root, tmp_path, capsys):
    config = _smoke(cifar_root, tmp_path, "nan", learning_rate=1e30, lr_boundaries=())
    assert train.train(config, "smoke") == 3  # FAILED_RUN: the loss became NaN
    record = _final_result(config)
    assert record["status"] == "failed" and "test_error" not in record["final"]
    assert record["final"]["failure"]["epoch"] == 0
    out = capsys.readouterr().out
    assert "(smoke, seed 0): FAILED: loss became nan in epoch 1" in out and "Results: " in out


def test_depth_and_seed_keep_the_paper_label_but_a_shorter_run_does_not():
    from common.lifecycle.config import parse_args

    assert parse_args(ResNetConfig, PRESETS, ["--depth=110", "--seed=4", "--data_workers=1"])[0] == "paper"
    assert parse_args(ResNetConfig, PRESETS, ["--max_iterations=1000"])[0] == "paper-custom"


def test_cli_unknown_key_and_help(capsys):
    assert train.main(["--dpeth=20"]) == 2
    assert "valid keys are" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--help"])
    assert "§4.2" in capsys.readouterr().out


def test_train_script_runs_from_the_repo_root(cifar_root, tmp_path):
    """`python papers/resnet/train.py` as a user types it, then the report generator's check."""
    env = {**os.environ, "KPB_DATA_DIR": str(cifar_root), "PYTHONPATH": str(report.REPO)}
    out = subprocess.run([sys.executable, "papers/resnet/train.py", "--preset=smoke", "--download=false",
                          "--verify_data=false",
                          f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}"],
                         cwd=report.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test error" in out.stdout and "Results:" in out.stdout
    (path,) = (tmp_path / "results" / "resnet").glob("*.json")
    assert json.loads(path.read_text())["status"] == "completed"


def test_benchmark_writes_a_throughput_record(cifar_root, tmp_path):
    from papers.resnet import benchmark

    config = make_config(benchmark.BenchmarkConfig, {}, depth=8, batch_size=16, steps=2, warmup_steps=1, repeats=1,
                         data_dir=str(cifar_root), verify_data=False, download=False,
                         results_dir=str(tmp_path / "results"))
    assert benchmark.run(config) == 0
    (record,) = results.load_all(tmp_path / "results", "resnet")
    final = record["final"]
    assert record["kind"] == "benchmark" and record["preset"] == "benchmark"
    assert final["pipeline_images_per_s"] > 0 and final["in_memory_images_per_s"] > 0 and "pipeline_overhead" in final
    assert final["validation_images"] == config.val_size and final["validation_pass_s"] > 0
    assert record["data"]["checksums"]
    # without a validation split (the fast preset's) there is no validation pass to time
    assert benchmark.run(dataclasses.replace(config, val_size=0, seed=1)) == 0
    unvalidated = [r for r in results.load_all(tmp_path / "results", "resnet") if r["seed"] == 1]
    assert len(unvalidated) == 1 and "validation_pass_s" not in unvalidated[0]["final"]


@pytest.mark.slow  # 105 s of the suite's 2,527 s on 2 cores beside a training run (2026-12-02)
def test_peer_benchmark_times_each_kind_in_turn_and_records_the_ratio(tmp_path, capsys):
    from papers.resnet import peer_benchmark

    bf16 = "tensorflow/precision=mixed_bfloat16/TF_NUM_INTEROP_THREADS=1"  # a setting and a thread variable
    kinds = (f"tensorflow,{bf16}"
             + (",torch,torch-channels-last-bf16/OMP_NUM_THREADS=1" if importlib.util.find_spec("torch") else ""))
    assert peer_benchmark.main([f"--kinds={kinds}", "--depth=8", "--batch_size=4", "--steps=1", "--warmup_steps=1",
                                "--repeats=2", f"--results_dir={tmp_path / 'results'}"]) == 0
    (record,) = results.load_all(tmp_path / "results", "resnet")
    final = record["final"]
    assert record["kind"] == "benchmark" and set(final["all_measurements"]) == set(kinds.split(","))
    assert all(len(m) == 2 and min(m) > 0 for m in final["all_measurements"].values())  # every kind, each round
    if "torch" in kinds:
        assert final["best_peer"] == "torch" and "ratio_tensorflow_vs_best_peer" in final
        # the peer is the same network: as many trainable parameters as ours
        assert record["kinds"]["torch"]["parameters"] == record["kinds"]["tensorflow"]["parameters"]
    text = report.report_for(str(tmp_path / "results"), "resnet")
    assert "Speed against a PyTorch peer" in text
    assert all(f"| {kind} | " in text for kind in kinds.split(","))  # one row per kind, its ratio beside it
    assert f"| {bf16} | {final['images_per_s'][bf16]:.0f} | " in text
    if "torch" in kinds:  # each of ours beside the best peer of its own arithmetic
        peer_bf16 = "torch-channels-last-bf16/OMP_NUM_THREADS=1"
        assert final["best_peer_by_precision"] == {"float32": "torch", "bfloat16": peer_bf16}
        assert final[f"ratio_{bf16}_vs_best_peer"] == pytest.approx(
            final["images_per_s"][bf16] / final["images_per_s"][peer_bf16])
        assert record["kinds"][peer_bf16]["threads"] == 1 and record["kinds"]["torch"]["threads"] > 1
    assert [record["kinds"][k]["config"]["precision"] for k in kinds.split(",")[:2]] == ["float32", "mixed_bfloat16"]
    inherited = {name: os.environ[name] for name in ("XLA_FLAGS",) if name in os.environ}  # tests/conftest.py's
    assert record["kinds"][bf16]["environment"] == {"TF_NUM_INTEROP_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "1",
                                                    **inherited}
    assert "TF_NUM_INTEROP_THREADS" not in record["kinds"]["tensorflow"]["environment"]
    assert peer_benchmark.main(["--kinds=tensorflow/depth=9", "--steps=1", "--warmup_steps=1", "--repeats=1",
                                f"--results_dir={tmp_path / 'results'}"]) == 2  # a setting train.py refuses
    assert capsys.readouterr().err.startswith("error: tensorflow/depth=9: --depth")
    for bad in ("mxnet", "torch/deterministic=false", "tensorflow/no_such_field=1", "jax/depth",
                "tensorflow/TF_NUM_INTRAOP_THREADS", "torch/LD_PRELOAD=x"):
        assert peer_benchmark.main([f"--kinds=tensorflow,{bad}"]) == 2
        assert f"--kinds: {bad}; choose from tensorflow, jax, torch, torch-channels-last" in capsys.readouterr().err


def test_a_data_error_during_the_run_is_one_line_and_exit_2(tmp_path, capsys):
    assert train.main(["--preset=smoke", f"--data_dir={tmp_path}", "--download=false",
                       f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 (python version): ") and err.count("\n") == 1 and "Traceback" not in err
    assert train.main(["--preset=smoke", "--val_size=55"]) == 2
    assert "--val_size=55 must be a multiple of 10" in capsys.readouterr().err


# The paper's recipe, read from what train.py builds with the paper preset (He et al. 2016, §4.2, Table 6).

@pytest.fixture(scope="module")
def paper_plan(cifar_root, tmp_path_factory):
    return recipe_plan(tmp_path_factory, train, ResNetConfig, PRESETS, cifar_root)


def _inputs_of(model) -> dict[str, list[str]]:
    """Each layer's input layers, by name, from the functional model's graph."""
    def history(node):
        if isinstance(node, dict):
            if "keras_history" in node:
                return [node["keras_history"][0]]
            return [n for v in node.values() for n in history(v)]
        if isinstance(node, (list, tuple)):
            return [n for v in node for n in history(v)]
        return []

    return {la["name"]: history(la["inbound_nodes"]) for la in model.get_config()["layers"]}


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_recipe_resnet20_layer_by_layer(paper_plan):
    model = paper_plan.model
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    # §4.2: a 3x3 convolution of 16 filters, then 3 stages of n = 3 blocks of two 3x3 convolutions on
    # 32x32, 16x16 and 8x8 maps with 16, 32, 64 filters; subsampling by stride 2 at each stage's first block
    assert [(c.filters, c.kernel_size, c.strides, c.use_bias) for c in convs] == (
        [(16, (3, 3), (1, 1), False)] + [(16, (3, 3), (1, 1), False)] * 6
        + [(32, (3, 3), (2, 2), False)] + [(32, (3, 3), (1, 1), False)] * 5
        + [(64, (3, 3), (2, 2), False)] + [(64, (3, 3), (1, 1), False)] * 5)
    # BN right after each convolution, before its activation ([16]; §3.4)
    sources = _inputs_of(model)
    bns = [la.name for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert sorted(sources[bn] for bn in bns) == sorted([c.name] for c in convs)
    # block: conv-BN-ReLU-conv-BN, added to the shortcut, then ReLU (Fig. 2); option A shortcuts where the
    # shape changes (§3.3), identity elsewhere
    adds = [la.name for la in model.layers if isinstance(la, keras.layers.Add)]
    assert len(adds) == 9
    shortcuts = []
    for add in adds:
        residual, shortcut = sources[add]
        assert residual == add.replace("_add", "_bn2") and sources[add.replace("_add", "_relu2")] == [add]
        shortcuts.append(shortcut)
    assert [s for s in shortcuts if s.endswith("_shortcut")] == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert all(s == "stem_relu" or s.endswith("_relu2") for s in shortcuts if not s.endswith("_shortcut"))
    # option A: the input subsampled to every other pixel, its 16 channels in the middle of 32, zeros around
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    probe = keras.Model(model.input, [model.get_layer("stage1_block3_relu2").output,
                                      model.get_layer("stage2_block1_shortcut").output])
    before, after = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_array_equal(after[..., 8:24], before[:, ::2, ::2, :])
    assert after.shape == (2, 16, 16, 32) and not after[..., :8].any() and not after[..., 24:].any()
    # ... global average pooling, a 10-way fully connected layer with softmax: 6n + 2 = 20 weighted layers
    assert isinstance(model.layers[-2], keras.layers.GlobalAveragePooling2D)
    assert model.layers[-1].units == 10 and model.layers[-1].activation.__name__ == "softmax"
    # option A shortcuts are parameter-free (§4.2): convolutions, BN gain and shift, classifier only
    expected = 27 * 16 + 2 * 16 + 64 * 10 + 10
    for c_in, f in [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2 + [(32, 64)] + [(64, 64)] * 2:
        expected += 9 * c_in * f + 9 * f * f + 4 * f
    assert _trainable(model) == expected and f"{expected / 1e6:.2f}M" == "0.27M"  # Table 6


def test_recipe_float32_arithmetic_unless_mixed_bfloat16_is_asked_for(paper_plan):
    """§4.2 trains in float32; --precision=mixed_bfloat16 (ours) computes in bfloat16 with float32 weights, and
    keeps the classifier's softmax in float32."""
    assert {la.compute_dtype for la in paper_plan.model.layers} == {"float32"}
    assert {w.dtype for w in paper_plan.model.weights} == {"float32"}
    mixed = build_model(8, precision="mixed_bfloat16")
    convs = [la for la in mixed.layers if isinstance(la, keras.layers.Conv2D)]
    assert {c.compute_dtype for c in convs} == {"bfloat16"} and {c.kernel.dtype for c in convs} == {"float32"}
    assert mixed.get_layer("fc").compute_dtype == "float32" and keras.config.dtype_policy().name == "float32"
    with pytest.raises(ConfigError, match="--precision must be one of float32, mixed_bfloat16"):
        make_config(ResNetConfig, PRESETS, precision="float16")


def test_recipe_he_initialisation_and_weight_decay_on_every_parameter(paper_plan):
    model = paper_plan.model
    for layer in model.layers:  # "we initialize the weights as in [13]": N(0, 2 / fan_in)
        if isinstance(layer, keras.layers.Conv2D):
            init = layer.kernel_initializer
            assert (type(init).__name__, init.scale, init.mode, init.distribution) == (
                "VarianceScaling", 2.0, "fan_in", "untruncated_normal")
    # §4.2: weight decay 0.0001, the Caffe update's wd * w, i.e. a loss term of 0.0001 / 2 * sum(w^2)
    squares = sum(float(np.sum(keras.ops.convert_to_numpy(w) ** 2)) for w in model.trainable_weights)
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert penalty == pytest.approx(0.5 * 1e-4 * squares, rel=1e-4)
    assert len(model.losses) == len(model.trainable_weights)


def test_recipe_sgd_with_momentum_and_the_step_schedule(paper_plan):
    opt = paper_plan.model.optimizer
    # §4.2: SGD, momentum 0.9, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k
    assert type(opt).__name__ == "SGD" and opt.momentum == pytest.approx(0.9) and not opt.nesterov
    rate = {i: float(keras.ops.convert_to_numpy(opt._learning_rate(i)))
            for i in (0, 31_999, 32_000, 47_999, 48_000, 63_999)}
    assert rate == pytest.approx({0: 0.1, 31_999: 0.1, 32_000: 0.01, 47_999: 0.01, 48_000: 0.001, 63_999: 0.001})
    assert paper_plan.max_steps == 64_000
    assert type(paper_plan.model.loss).__name__ == "SparseCategoricalCrossentropy"


def test_recipe_minibatch_split_mean_and_augmentation(paper_plan):
    data, run = paper_plan.data, paper_plan.run
    # §4.2: minibatch 128; a 45k/5k train/val split; the per-pixel mean subtracted
    assert data.batch_size == paper_plan.images_per_step == 128
    assert (run.data["train"], run.data["val"]) == (45_000, 5_000)
    np.testing.assert_allclose(data.x.mean(axis=0), 0.0, atol=1e-5)
    # 4 pixels padded on each side, a random 32x32 crop of the padded image or its horizontal flip; the crops
    # reach every offset from 0 to 8 on both axes
    offsets = crop_offsets(data.augment, pad=4)
    assert {dy for dy, _, _ in offsets} == {dx for _, dx, _ in offsets} == set(range(9))
    assert {flip for _, _, flip in offsets} == {False, True}


def test_recipe_fast_preset_is_resnet20_on_a_sixth_of_the_papers_training_images(cifar_root, tmp_path, monkeypatch):
    """The fast preset is ours (#23: the paper's number with at most a sixth of its training images); its
    settings, read from what train.py builds."""
    plan = planned_training(monkeypatch, train, ResNetConfig, PRESETS, tmp_path, preset="fast",
                            data_dir=str(cifar_root))
    model, opt = plan.model, plan.model.optimizer
    assert _trainable(model) == 269_722  # ResNet-20 itself (Table 6: 0.27M)
    assert (plan.run.data["train"], plan.run.data["val"]) == (50_000, 0)  # no validation split
    assert plan.images_per_step == plan.data.batch_size == 256
    images = plan.max_steps * 256
    assert images <= 30 * 50_000 and images * 6 <= 64_000 * 128 and plan.max_steps == 5_333
    # one cycle: linear from 0 up to 0.2 at 20 % of the iterations (update 1,067), then linear down to 0
    rate = {i: float(keras.ops.convert_to_numpy(opt._learning_rate(i))) for i in (0, 1066, 3199, 5332)}
    assert rate == pytest.approx({0: 0.2 / 1067, 1066: 0.2, 3199: 0.2 * 2133 / 4266, 5332: 0.0}, abs=1e-6)
    assert type(opt).__name__ == "SGD" and opt.nesterov and opt.momentum == pytest.approx(0.9)
    squares = sum(float(np.sum(keras.ops.convert_to_numpy(w) ** 2)) for w in model.trainable_weights)
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert penalty == pytest.approx(0.5 * 5e-4 * squares, rel=1e-4)  # weight decay 5e-4
    # label smoothing 0.1: the target is 0.9 on the label plus 0.01 on each of the 10 classes
    probs = np.array([[0.7, 0.2, 0.1] + [0.0] * 7], np.float32)
    target = np.full(10, 0.01)
    target[0] += 0.9
    expected = -np.sum(target * np.log(np.clip(probs[0], 1e-7, 1.0)))
    assert float(model.loss(np.array([0]), probs)) == pytest.approx(expected, rel=1e-5)
    assert plan.config.flip_test
    # the test error after every epoch, mirror-averaged, for the time-to-accuracy curve
    (tested,) = [cb for cb in plan.callbacks if isinstance(cb, train.TestEachEpoch)]
    assert tested.flip and len(tested.y) == 10_000


def test_time_to_accuracy_figure_leaves_out_the_test_evaluations_and_stopped_time(tmp_path, monkeypatch):
    drawn = {}
    import matplotlib.axes

    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, x, y, **kw: drawn.update(x=list(x), y=list(y))
                        or plot(ax, x, y, **kw))
    history = [{"epoch": 1, "epoch_time_s": 70.0, "test_eval_s": 10.0, "test_accuracy": 0.5, "stopped_s": None},
               {"epoch": 2, "epoch_time_s": 190.0, "test_eval_s": 10.0, "test_accuracy": 0.8, "stopped_s": 60.0}]
    train.time_to_accuracy_figure(tmp_path / "t.png", history, 0.0875, "toy")
    assert (tmp_path / "t.png").stat().st_size > 0
    assert drawn == {"x": pytest.approx([1.0, 3.0]), "y": pytest.approx([50.0, 20.0])}


def test_recipe_fast_flip_test_averages_each_image_with_its_mirror():
    inputs = keras.Input((1, 2, 1))
    # class 1 when the left pixel is brighter; an image and its mirror then disagree, and their mean decides
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[-1, 1], [1, -1]]),
                                use_bias=False)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    x = np.array([[[[3.0], [1.0]]], [[[1.0], [2.0]]]], np.float32)
    assert train.flip_averaged_accuracy(model, x, np.array([1, 0]), 2) == 0.5  # each pair averages to a tie -> 0
    assert np.argmax(model.predict(x, verbose=0), 1).tolist() == [1, 0]


def test_recipe_resnet110_warms_up_at_0_01_for_400_iterations(cifar_root, tmp_path, monkeypatch):
    plan = planned_training(monkeypatch, train, ResNetConfig, PRESETS, tmp_path, data_dir=str(cifar_root), depth=110)
    opt = plan.model.optimizer
    rate = {i: float(keras.ops.convert_to_numpy(opt._learning_rate(i))) for i in (0, 399, 400, 32_000)}
    assert rate == pytest.approx({0: 0.01, 399: 0.01, 400: 0.1, 32_000: 0.01})  # §4.2
    assert f"{_trainable(plan.model) / 1e6:.1f}M" == "1.7M"  # Table 6


def test_a_padding_that_leaves_no_image_is_refused_in_one_line():
    """Crops of a 32x32 image padded by 32 or more pixels can miss the image entirely: refused by the config
    (one line on the command line), not by the augmentation's worker thread."""
    make_config(ResNetConfig, PRESETS, pad=31)
    with pytest.raises(ConfigError, match="--pad=32 is out of range: it must be >= 0 and < 32"):
        make_config(ResNetConfig, PRESETS, pad=32)

import math

import keras
import numpy as np
import pytest

from common import report
from papers.unet import augment, weight_maps
from papers.unet.model import build_unet, check_tile, mirror_pad, output_size, predict_tiled, valid_tiles
from tests.conftest import smoke_config, smoke_record
from tests.recipe import recipe_plan


def test_output_size_arithmetic_of_the_paper():
    assert output_size(572) == 388 and check_tile(572) == 388
    assert valid_tiles(180, 240) == [188, 204, 220, 236]
    assert output_size(188) == 4


@pytest.mark.parametrize(("tile", "nearest"), [(570, "556 and 572"), (512, "508 and 524"), (100, "larger")])
def test_invalid_tiles_are_rejected_naming_the_nearest_valid_ones(tile, nearest):
    with pytest.raises(ValueError, match=nearest):
        check_tile(tile)
    with pytest.raises(ValueError, match="nearest valid"):
        build_unet(tile)


def test_architecture_of_figure_1():
    model = build_unet(572)
    assert model.output_shape == (None, 388, 388, 2)
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D | keras.layers.Conv2DTranspose)]
    assert len(convs) == 23
    assert [c.filters for c in convs if isinstance(c, keras.layers.Conv2DTranspose)] == [512, 256, 128, 64]
    assert max(c.filters for c in convs) == 1024 and convs[-1].kernel_size == (1, 1)
    assert all(c.padding == "valid" for c in convs)
    assert model.count_params() == 31_030_658


@pytest.mark.jax
def test_small_unet_trains_one_step():
    keras.utils.set_random_seed(0)
    model = build_unet(188, filters=4)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.99),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(size=(1, 188, 188, 1)).astype(np.float32)
    y = (x[:, 92:96, 92:96, 0] > 0.5).astype(np.int32)
    before = model.evaluate(x, y, verbose=0)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert model.evaluate(x, y, verbose=0) < before


def _identity_like(tile, out):
    """A 'model' whose output is the centre of its input: it shows where each output pixel comes from."""
    margin = (tile - out) // 2
    return lambda tiles: tiles[:, margin:margin + out, margin:margin + out, :]


@pytest.mark.parametrize("shape", [(512, 512), (300, 450)])
def test_overlap_tile_prediction_reproduces_the_input_layout(shape):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    out = predict_tiled(_identity_like(572, 388), image, 572, 388, batch=3)
    assert out.shape == (*shape, 1)
    np.testing.assert_array_equal(out[..., 0], image)


def test_mirror_padding_reflects_at_the_border():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    padded = mirror_pad(image, (1, 5), (2, 2))
    assert padded.shape == (9, 8)
    np.testing.assert_array_equal(padded[1:4, 2:6], image)
    np.testing.assert_array_equal(padded[0, 2:6], image[1])  # reflected, the border row not repeated


def test_weight_map_peaks_between_touching_cells_and_is_w_c_far_from_borders():
    labels = np.zeros((60, 90), np.int64)
    labels[10:50, 5:30] = 1  # two cells separated by a 2-pixel membrane
    labels[10:50, 32:57] = 1
    w = weight_maps.weight_map(labels)
    w_c = weight_maps.class_balance(labels)
    gap = w[30, 30:32]
    # In the gap d1 + d2 = 1 + 2 pixels: w = w_c + 10 exp(-9 / 50), the highest weight of the image.
    np.testing.assert_allclose(gap, w_c[30, 30] + 10 * np.exp(-9 / 50), rtol=1e-5)
    assert np.isclose(w.max(), gap.max())
    assert w[30, 85] == pytest.approx(w_c[30, 85], abs=1e-6)  # membrane far from both cells
    assert w[30, 17] == pytest.approx(w_c[30, 17])  # inside a cell
    # Class balance: each class carries half of the total weight.
    assert w_c[labels == 1].sum() == pytest.approx(w_c[labels == 0].sum(), rel=1e-5)


def test_elastic_deformation_identity_same_warp_and_binary_labels():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(64, 64)).astype(np.float32)
    labels = (rng.uniform(size=(64, 64)) > 0.5).astype(np.uint8)
    zero = augment.dense_displacement(np.zeros((2, 3, 3)), image.shape)
    np.testing.assert_allclose(augment.warp(image, zero, 3), image, atol=1e-6)
    np.testing.assert_array_equal(augment.warp(labels, zero, 0), labels)
    disp = augment.dense_displacement(augment.coarse_displacement(rng), image.shape)
    assert np.abs(disp).max() > 1  # a real deformation
    # The same warp: the label image warped as labels equals the label image warped as an image (nearest).
    np.testing.assert_array_equal(augment.warp(labels.astype(np.float32), disp, 0), augment.warp(labels, disp, 0))
    img, lab, wts = augment.elastic(image, labels, np.ones_like(image), np.random.default_rng(1))
    assert set(np.unique(lab).tolist()) <= {0, 1} and lab.dtype == np.uint8 and np.allclose(wts, 1, atol=1e-5)
    # Coarse grid points land on the image's corners and centre: displacement there is the drawn vector.
    coarse = augment.coarse_displacement(np.random.default_rng(2))
    dense = augment.dense_displacement(coarse, (65, 65))
    np.testing.assert_allclose(dense[:, ::32, ::32], coarse, atol=1e-6)


def test_augment_keeps_shapes_ranges_and_label_values():
    rng = np.random.default_rng(0)
    image, labels = rng.uniform(size=(40, 40)).astype(np.float32), (rng.uniform(size=(40, 40)) > 0.3).astype(np.uint8)
    img, lab, w = augment.augment(image, labels, weight_maps.weight_map(labels), rng)
    assert img.shape == lab.shape == w.shape == (40, 40) and 0 <= img.min() and img.max() <= 1
    assert set(np.unique(lab).tolist()) <= {0, 1}


def test_smoke_run_writes_results_figures_and_report(isbi_root, tmp_path):
    from papers.unet import train
    from papers.unet.config import PRESETS, UNetConfig

    config = smoke_config(UNetConfig, PRESETS, isbi_root, tmp_path, fold=4)
    record = smoke_record(train, config)
    final = record["final"]
    assert record["status"] == "completed"
    assert record["data"]["held_out_slices"] == [24, 25, 26, 27, 28, 29] and final["iterations"] == 2
    assert final["inference_s_per_slice"] > 0 and math.isfinite(final["rand_error"])
    pixels = 6 * 512 * 512  # the pixel error is a share of the held-out slices' pixels
    assert final["pixel_error"] * pixels == pytest.approx(round(final["pixel_error"] * pixels), abs=1e-3)
    assert {"val_rand_error", "val_pixel_error", "loss"} <= set(record["history"][0])
    folder = tmp_path / "results" / "unet"
    assert set(record["figures"]) == {"figure3", "elastic"}
    assert all((folder / rel).exists() for rel in record["figures"].values())
    assert "| unet-isbi2012 | smoke (not the paper's recipe) |" in report.report_for(config.results_dir, "unet")


def test_training_tiles_are_a_function_of_seed_epoch_and_index(isbi_root):
    from common.data import isbi2012
    from common.lifecycle.config import make_config
    from papers.unet.config import PRESETS, UNetConfig
    from papers.unet.data import TileBatches

    config = make_config(UNetConfig, PRESETS, "smoke")
    data = isbi2012.load(str(isbi_root), verify=False)
    images, labels = data.train_images[:3].astype(np.float32) / 255, data.train_labels[:3]
    wmaps = [weight_maps.weight_map(lab) for lab in labels]
    ds = TileBatches(images, labels, wmaps, config)
    x, y, w = ds[1]
    assert x.shape == (1, 380, 380, 1) and y.shape == w.shape == (1, 196, 196)
    assert set(np.unique(y).tolist()) <= {0, 1} and w.min() > 0
    ds.set_epoch(3)
    again = TileBatches(images, labels, wmaps, config)
    again.set_epoch(3)
    np.testing.assert_array_equal(ds[1][0], again[1][0])
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[1][0], x)


def test_inference_benchmark_writes_a_record_and_a_report_section(tmp_path):
    from common.lifecycle import results
    from common.lifecycle.config import make_config
    from papers.unet import benchmark

    config = make_config(benchmark.UNetBenchmarkConfig, {**benchmark.PRESETS}, "smoke", repeats=1, train_steps=1,
                         results_dir=str(tmp_path / "results"))
    assert benchmark.run(config) == 0
    (record,) = results.load_all(config.results_dir, "unet")
    final = record["final"]
    assert final["tiles_per_slice"] == 9 and final["slice_s"] > 0
    # the kernel syncs a thread's RSS counters lazily (every 64 page faults), so the peak it reports can
    # trail the VmRSS read just before by a fraction of a MB (seen: 1764.63 against 1764.79)
    assert final["peak_rss_mb"] >= final["rss_before_slice_mb"] - 1.0
    assert "## Inference and train-step cost" in report.report_for(config.results_dir, "unet")


def test_submission_is_a_float_tiff_stack(tmp_path):
    import tifffile

    from papers.unet.train import write_submission

    probs = np.random.default_rng(0).uniform(size=(30, 64, 64)).astype(np.float32)
    path = write_submission(tmp_path / "sub" / "test-prediction.tif", probs)
    stack = tifffile.imread(path)
    assert stack.shape == (30, 64, 64) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack, probs)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["test-prediction.tif"]


def test_config_errors_and_folds():
    from common.lifecycle.config import ConfigError, make_config, parse_args
    from papers.unet.config import PRESETS, UNetConfig

    with pytest.raises(ConfigError, match="556 and 572"):
        make_config(UNetConfig, PRESETS, tile=570)
    with pytest.raises(ConfigError, match="--fold=5 is out of range: it must be >= 0 and <= 4"):
        make_config(UNetConfig, PRESETS, fold=5)
    config = make_config(UNetConfig, PRESETS, fold=2)
    assert config.held_out == [12, 13, 14, 15, 16, 17] and len(config.training_slices) == 24
    assert not set(config.held_out) & set(config.training_slices)
    assert parse_args(UNetConfig, PRESETS, ["--fold=3", "--seed=1"])[0] == "paper"
    assert parse_args(UNetConfig, PRESETS, ["--preset=quick", "--steps=10"])[0] == "quick-custom"


# The paper's recipe, read from what train.py builds with the paper preset (Ronneberger et al. 2015,
# Fig. 1, §3, §3.1).

@pytest.fixture(scope="module")
def paper_plan(isbi_root, tmp_path_factory):
    from papers.unet import train
    from papers.unet.config import PRESETS, UNetConfig

    return recipe_plan(tmp_path_factory, train, UNetConfig, PRESETS, isbi_root)


def test_recipe_figure_1_layer_by_layer(paper_plan):
    model = paper_plan.model
    convs = [la for la in model.layers if isinstance(la, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    # Fig. 1: two unpadded 3x3 convolutions with ReLU per level, 64 -> 1024 filters down, 512 -> 64 up;
    # 2x2 up-convolutions halving the channels; a final 1x1 convolution to 2 classes (23 in all)
    three = [(f, (3, 3), (1, 1), "valid", "relu") for f in (64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024)]
    up = []
    for f in (512, 256, 128, 64):
        up += [(f, (2, 2), (2, 2), "valid", "linear"), (f, (3, 3), (1, 1), "valid", "relu"),
               (f, (3, 3), (1, 1), "valid", "relu")]
    assert [(c.filters, c.kernel_size, c.strides, c.padding, c.activation.__name__) for c in convs] == (
        three + up + [(2, (1, 1), (1, 1), "valid", "linear")])
    pools = [la for la in model.layers if isinstance(la, keras.layers.MaxPooling2D)]
    assert [(p.pool_size, p.strides) for p in pools] == [((2, 2), (2, 2))] * 4
    # 572x572 tiles give 388x388 outputs (Fig. 1); four concatenations with the cropped contracting maps
    assert model.input_shape == (None, 572, 572, 1) and model.output_shape == (None, 388, 388, 2)
    assert sum(isinstance(la, keras.layers.Concatenate) for la in model.layers) == 4
    crops = [la.cropping for la in model.layers if isinstance(la, keras.layers.Cropping2D)]
    assert crops == [((c, c), (c, c)) for c in (4, 16, 40, 88)]  # centre crops: 64 -> 56, ..., 568 -> 392
    assert model.count_params() == 31_030_658
    # §3.1: drop-out (0.5) at the end of the contracting path: after the 1024-filter convolutions
    names = [la.name for la in model.layers]
    dropout = model.get_layer("dropout")
    assert dropout.rate == 0.5 and names.index("dropout") == names.index(convs[9].name) + 1


def test_recipe_initialisation_sgd_and_the_weighted_loss(paper_plan, isbi_root):
    model = paper_plan.model
    for layer in model.layers:  # §3: Gaussian with standard deviation sqrt(2 / N), N the inputs of a unit
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            init = layer.kernel_initializer
            assert (type(init).__name__, init.scale, init.mode, init.distribution) == (
                "VarianceScaling", 2.0, "fan_in", "untruncated_normal")
    # §3: SGD with momentum 0.99, one tile per batch; README, Deviations: learning rate 0.001
    opt = model.optimizer
    assert type(opt).__name__ == "SGD" and opt.momentum == pytest.approx(0.99)
    assert float(opt.learning_rate) == pytest.approx(0.001)
    # Eq. 1: pixel-wise softmax and cross-entropy, weighted per pixel by the map of Eq. 2 (w0 = 10, sigma = 5)
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy" and model.loss.from_logits
    data = paper_plan.data
    x, y, w = data[0]
    assert (x.shape, y.shape, w.shape) == ((1, 572, 572, 1), (1, 388, 388), (1, 388, 388))
    assert paper_plan.images_per_step == 1
    from common.data import isbi2012

    labels = isbi2012.load(str(isbi_root), verify=False).train_labels
    first = paper_plan.config.training_slices[0]
    np.testing.assert_allclose(data.weights[0], weight_maps.weight_map(labels[first], 10.0, 5.0), rtol=1e-6)


def test_recipe_a_tile_its_labels_and_its_loss_weights_are_one_window(paper_plan, monkeypatch):
    # Without the random deformation, a training tile is a 572x572 window of a slice (mirrored beyond its
    # border, Fig. 2), and its labels and loss weights are the 388x388 window at its centre.
    monkeypatch.setattr(augment, "augment", lambda image, labels, wmap, *args: (image, labels, wmap))
    data = paper_plan.data
    x, y, w = data.tile(np.random.default_rng(3))
    found = []
    for k, wk in enumerate(data.weights):
        padded = mirror_pad(data.images[k], (92, 92), (92, 92))
        for r, c in np.argwhere(wk[:125, :125] == w[0, 0]):
            if (np.array_equal(wk[r:r + 388, c:c + 388], w) and np.array_equal(data.labels[k][r:r + 388, c:c + 388], y)
                    and np.array_equal(padded[r:r + 572, c:c + 572], x[..., 0])):
                found.append((k, r, c))
    assert len(found) == 1
    assert w.max() > 2 * w.min()  # the border term of Eq. 2 is inside the window


def test_recipe_elastic_deformation_on_a_3x3_grid_of_10_pixels(paper_plan, monkeypatch):
    drawn = []
    coarse = augment.coarse_displacement

    def spy(rng, grid=3, sigma=10.0):
        drawn.append((grid, sigma))
        return coarse(rng, grid, sigma)

    monkeypatch.setattr(augment, "coarse_displacement", spy)
    paper_plan.data.tile(np.random.default_rng(0))
    assert drawn == [(3, 10.0)]  # §3.1: random displacements on a coarse 3x3 grid, 10 pixels standard deviation
